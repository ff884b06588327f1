"""Managers: slot templates -> slots for 14 days, memberships and API keys."""

from datetime import date, time

import pytest

from stores import services
from stores.models import DeliverySlot, SlotTemplate, StoreApiKey, StoreMembership, hash_api_key
from stores.tests.factories import StoreFactory, UserFactory


def url(store, path):
    return f"/dashboard/s/{store.pk}/{path}"


def test_associates_cannot_reach_manager_pages(client, associate, store):
    client.force_login(associate)
    assert client.get(url(store, "slots/")).status_code == 404
    assert client.get(url(store, "team/")).status_code == 404
    assert "Team &amp; keys" not in client.get(url(store, "")).content.decode()


def test_template_creates_slots_for_14_days_idempotently(store):
    services.slot_template_create(store=store, weekdays="0123456", start_time=time(10), end_time=time(12), capacity=8)
    assert DeliverySlot.objects.filter(store=store).count() == 14
    assert services.slots_generate() == 0  # a second run creates nothing
    weekdays_only = services.slot_template_create(
        store=store, weekdays="01234", start_time=time(14), end_time=time(16), capacity=4
    )
    assert DeliverySlot.objects.filter(store=store, capacity=4).count() == 10
    assert weekdays_only.weekday_names == "Mon, Tue, Wed, Thu, Fri"


def test_slots_keep_local_time_across_dst(store):
    # US DST ends on Sunday 2026-11-01: 10:00 local stays 10:00 local (UTC offset changes).
    SlotTemplate.objects.create(store=store, weekdays="0123456", start_time=time(10), end_time=time(12), capacity=2)
    services.slots_generate(today=date(2026, 10, 30), days=4)
    import zoneinfo

    tz = zoneinfo.ZoneInfo("America/Chicago")
    local_starts = {s.starts_at.astimezone(tz).time() for s in DeliverySlot.objects.filter(store=store)}
    assert local_starts == {time(10)}
    assert len({s.starts_at.utcoffset() for s in DeliverySlot.objects.all()}) == 1  # stored in UTC


@pytest.mark.parametrize(("weekdays", "start", "end", "cap"), [("", 10, 12, 5), ("0", 12, 10, 5), ("0", 10, 12, 0)])
def test_bad_templates_are_refused(store, weekdays, start, end, cap):
    with pytest.raises(services.DomainError):
        services.slot_template_create(
            store=store, weekdays=weekdays, start_time=time(start), end_time=time(end), capacity=cap
        )
    assert not SlotTemplate.objects.exists() and not DeliverySlot.objects.exists()


def test_paused_templates_make_no_new_slots(store):
    t = SlotTemplate.objects.create(store=store, weekdays="0123456", start_time=time(8), end_time=time(10), capacity=2)
    services.slot_template_set_active(template=t, active=False)
    assert services.slots_generate() == 0


def test_slots_page_flow(client, manager, store):
    client.force_login(manager)
    res = client.post(
        url(store, "slots/"),
        {"weekdays": ["0", "2", "4"], "start_time": "10:00", "end_time": "12:00", "capacity": "6", "action": "create"},
    )
    assert res.status_code == 302
    assert SlotTemplate.objects.get().weekdays == "024"
    page = client.get(url(store, "slots/")).content.decode()
    assert "0/6 seats taken" in page
    res = client.post(
        url(store, "slots/"),
        {"weekdays": ["0"], "start_time": "12:00", "end_time": "10:00", "capacity": "6", "action": "create"},
    )
    assert res.status_code == 200 and "end after it starts" in res.content.decode()
    assert SlotTemplate.objects.count() == 1


def test_team_add_and_remove_members(client, manager, store):
    client.force_login(manager)
    newcomer = UserFactory(email="new.associate@example.test")
    client.post(
        url(store, "team/"), {"m-email": "New.Associate@example.test", "m-role": "associate", "action": "add_member"}
    )
    membership = StoreMembership.objects.get(user=newcomer, store=store)
    assert membership.role == "associate"
    res = client.post(
        url(store, "team/"), {"m-email": "nobody@example.test", "m-role": "associate", "action": "add_member"}
    )
    assert "sign up first" in res.content.decode()
    client.post(url(store, "team/"), {"membership": membership.pk, "action": "remove_member", "confirmed": "1"})
    assert not StoreMembership.objects.filter(pk=membership.pk).exists()
    # The last manager stays.
    mine = StoreMembership.objects.get(user=manager, store=store)
    res = client.post(
        url(store, "team/"), {"membership": mine.pk, "action": "remove_member", "confirmed": "1"}, follow=True
    )
    assert "at least one manager" in res.content.decode()
    assert StoreMembership.objects.filter(pk=mine.pk).exists()


def test_team_cannot_touch_another_stores_members(client, manager, store):
    other = StoreFactory()
    theirs = StoreMembership.objects.create(user=UserFactory(), store=other, role="associate")
    client.force_login(manager)
    res = client.post(url(store, "team/"), {"membership": theirs.pk, "action": "remove_member", "confirmed": "1"})
    assert res.status_code == 404
    assert StoreMembership.objects.filter(pk=theirs.pk).exists()


def test_api_key_created_once_shown_and_revoked(client, manager, store):
    client.force_login(manager)
    res = client.post(url(store, "team/"), {"k-name": "checkout", "action": "create_key"})
    raw = res.context["new_key"]
    key = StoreApiKey.objects.get(store=store)
    assert raw.startswith("spk_") and key.key_hash == hash_api_key(raw) and raw not in key.key_hash
    assert raw not in client.get(url(store, "team/")).content.decode()  # shown once only
    api = client.__class__()
    assert api.get("/api/v1/orders/", HTTP_AUTHORIZATION=f"Api-Key {raw}").status_code == 200
    client.post(url(store, "team/"), {"key": key.pk, "action": "revoke_key", "confirmed": "1"})
    assert api.get("/api/v1/orders/", HTTP_AUTHORIZATION=f"Api-Key {raw}").status_code == 401
