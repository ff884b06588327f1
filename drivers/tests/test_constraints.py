"""Database constraints of drivers, routes and slot claims (writes bypass the services)."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from drivers.models import Driver, Route, SlotClaim
from drivers.tests.factories import DriverFactory, RouteFactory, SlotClaimFactory

pytestmark = pytest.mark.django_db


# --- Driver --------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["applicant", "screening", "suspended", "deactivated"])
def test_driver_online_only_when_active(status):
    # given an active driver who is online
    driver = DriverFactory(status=Driver.Status.ACTIVE, is_online=True, online_since=timezone.now())
    # when a writer moves them off active without taking them offline, then the database refuses it
    with pytest.raises(IntegrityError), transaction.atomic():
        Driver.objects.filter(pk=driver.pk).update(status=status)
    driver.refresh_from_db()
    assert driver.status == Driver.Status.ACTIVE
    # and a non-active driver cannot go online
    Driver.objects.filter(pk=driver.pk).update(status=status, is_online=False)
    with pytest.raises(IntegrityError), transaction.atomic():
        Driver.objects.filter(pk=driver.pk).update(is_online=True)


def test_driver_created_online_while_applicant_is_refused():
    with pytest.raises(IntegrityError), transaction.atomic():
        DriverFactory(status=Driver.Status.APPLICANT, is_online=True)


def test_driver_status_check_rejects_unknown_status():
    driver = DriverFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Driver.objects.filter(pk=driver.pk).update(status="banned")


def test_driver_contractor_id_unique_when_set():
    DriverFactory(contractor_id="acct_1")
    with pytest.raises(IntegrityError), transaction.atomic():
        DriverFactory(contractor_id="acct_1")
    # many drivers may not have one yet
    DriverFactory(contractor_id="")
    DriverFactory(contractor_id="")


# --- Route ---------------------------------------------------------------------------


def test_one_active_route_per_driver():
    route = RouteFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        RouteFactory(driver=route.driver)
    # inactive routes are history and do not block a new one
    Route.objects.filter(pk=route.pk).update(is_active=False)
    RouteFactory(driver=route.driver)
    RouteFactory(driver=route.driver, is_active=False)
    assert Route.objects.filter(driver=route.driver, is_active=True).count() == 1


def test_route_reactivation_blocked_while_another_is_active():
    route = RouteFactory(is_active=False)
    RouteFactory(driver=route.driver)
    with pytest.raises(IntegrityError), transaction.atomic():
        Route.objects.filter(pk=route.pk).update(is_active=True)


def test_trip_route_needs_a_destination():
    route = RouteFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Route.objects.filter(pk=route.pk).update(dest_lat=None)
    # an online route has none
    Route.objects.filter(pk=route.pk).update(mode=Route.Mode.ONLINE, dest_lat=None, dest_lng=None)


def test_route_arrive_after_leave():
    now = timezone.now()
    route = RouteFactory(leave_after=now, arrive_by=now + timedelta(hours=1))
    with pytest.raises(IntegrityError), transaction.atomic():
        Route.objects.filter(pk=route.pk).update(arrive_by=F("leave_after"))


# --- SlotClaim -----------------------------------------------------------------------


@pytest.mark.parametrize("live", ["claimed", "checked_in"])
def test_one_live_claim_per_driver_and_slot(live):
    # given a driver with a live claim on a slot
    claim = SlotClaimFactory(status=live)
    # when a second live claim on the same slot is written, then the database refuses it
    with pytest.raises(IntegrityError), transaction.atomic():
        SlotClaimFactory(driver=claim.driver, slot=claim.slot)
    # other drivers may claim the slot, and the same driver other slots
    SlotClaimFactory(slot=claim.slot)
    SlotClaimFactory(driver=claim.driver)


@pytest.mark.parametrize("closed", ["cancelled", "late_cancelled", "released"])
def test_closed_claim_does_not_block_a_new_one(closed):
    claim = SlotClaimFactory()
    SlotClaim.objects.filter(pk=claim.pk).update(status=closed)
    SlotClaimFactory(driver=claim.driver, slot=claim.slot)
    assert SlotClaim.objects.filter(driver=claim.driver, slot=claim.slot).count() == 2
