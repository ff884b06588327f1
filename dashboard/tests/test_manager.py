"""Managers: slot templates -> slots for 14 days, memberships and API keys."""

from datetime import date, time

import pytest
from django.utils import timezone

from orders.batch_editing import batch_create, batch_publish
from orders.tests.factories import OrderFactory
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
    assert res.status_code == 302 and res.url == url(store, "team/")
    raw = client.get(res.url).context["new_key"]
    key = StoreApiKey.objects.get(store=store)
    assert raw.startswith("spk_") and key.key_hash == hash_api_key(raw) and raw not in key.key_hash
    assert raw not in client.get(url(store, "team/")).content.decode()  # shown once only
    api = client.__class__()
    assert api.get("/api/v1/orders/", HTTP_AUTHORIZATION=f"Api-Key {raw}").status_code == 200
    client.post(url(store, "team/"), {"key": key.pk, "action": "revoke_key", "confirmed": "1"})
    assert api.get("/api/v1/orders/", HTTP_AUTHORIZATION=f"Api-Key {raw}").status_code == 401


def test_reloading_after_creating_a_key_creates_no_second_key(client, manager, store):
    client.force_login(manager)
    res = client.post(url(store, "team/"), {"k-name": "checkout", "action": "create_key"}, follow=True)
    assert res.redirect_chain == [(url(store, "team/"), 302)]  # the browser's reload is a GET now
    assert 'id="new-key"' in res.content.decode()
    assert 'id="new-key"' not in client.get(url(store, "team/")).content.decode()
    assert StoreApiKey.objects.filter(store=store).count() == 1


def test_new_key_is_shown_only_on_its_own_stores_page(client, manager, store):
    other = StoreFactory()
    StoreMembership.objects.create(user=manager, store=other, role="manager")
    client.force_login(manager)
    client.post(url(store, "team/"), {"k-name": "checkout", "action": "create_key"})
    assert 'id="new-key"' not in client.get(url(other, "team/")).content.decode()


@pytest.mark.parametrize(
    ("action", "field"), [("revoke_key", "key"), ("remove_member", "membership")], ids=["revoke", "remove"]
)
def test_revoke_and_remove_ask_first(client, manager, associate, store, action, field):
    key = StoreApiKey.objects.create(store=store, name="pos", prefix="spk_x", key_hash="x")
    target = {"key": key.pk, "membership": StoreMembership.objects.get(user=associate, store=store).pk}[field]
    client.force_login(manager)
    asked = client.post(url(store, "team/"), {field: target, "action": action})
    page = asked.content.decode()
    assert asked.status_code == 200 and 'id="confirm"' in page
    assert f'name="{field}" value="{target}"' in page and 'name="confirmed" value="1"' in page
    assert StoreApiKey.objects.get(pk=key.pk).revoked_at is None
    assert StoreMembership.objects.filter(user=associate, store=store).exists()
    done = client.post(url(store, "team/"), {field: target, "action": action, "confirmed": "1"})
    assert done.status_code == 302
    if field == "key":
        assert StoreApiKey.objects.get(pk=key.pk).revoked_at is not None
    else:
        assert not StoreMembership.objects.filter(user=associate, store=store).exists()


def test_team_page_forms_carry_the_confirmation(client, manager, store):
    StoreApiKey.objects.create(store=store, name="pos", prefix="spk_x", key_hash="x")
    client.force_login(manager)
    page = client.get(url(store, "team/")).content.decode()
    assert page.count('name="confirmed" value=""') == 2  # one member (the manager), one key
    assert "Revoke the key “pos”? It stops working at once." in page


def test_a_driver_account_cannot_be_added_as_store_staff(client, manager, store, driver):
    client.force_login(manager)
    res = client.post(
        url(store, "team/"), {"m-email": driver.user.email, "m-role": "associate", "action": "add_member"}
    )
    assert res.status_code == 400
    assert "is a driver&#x27;s account, and a driver cannot be store staff" in res.content.decode()
    assert not StoreMembership.objects.filter(user=driver.user).exists()
    with pytest.raises(services.DomainError):
        services.membership_add(store=store, email=driver.user.email, role="manager")


def test_discarding_or_cancelling_a_batch_asks_first(client, associate, store):
    batch = batch_create(store=store, orders=[OrderFactory(store=store)])
    client.force_login(associate)
    page = client.get(url(store, f"batches/{batch.pk}/")).content.decode()
    assert "Discard this batch? Its orders go back to the queue." in page
    asked = client.post(url(store, f"batches/{batch.pk}/discard/"))
    assert 'id="confirm"' in asked.content.decode() and f"Discard batch {batch.pk}?" in asked.content.decode()
    batch_publish(batch=batch)
    asked = client.post(url(store, f"batches/{batch.pk}/discard/"))
    assert f"Cancel batch {batch.pk}? Drivers can no longer take it" in asked.content.decode()
    batch.refresh_from_db()
    assert batch.status == "published"
    client.post(url(store, f"batches/{batch.pk}/discard/"), {"confirmed": "1"})
    batch.refresh_from_db()
    assert batch.status == "cancelled"


def _slot_template(store, **kw):
    fields = {"weekdays": "0123456", "start_time": time(10), "end_time": time(12), "capacity": 4, **kw}
    return services.slot_template_create(store=store, **fields)


def test_editing_a_template_moves_its_empty_slots_and_keeps_taken_ones(client, manager, store):
    template = _slot_template(store)
    taken = DeliverySlot.objects.filter(store=store).order_by("starts_at").last()
    DeliverySlot.objects.filter(pk=taken.pk).update(claimed=1)
    client.force_login(manager)
    form = client.get(url(store, f"slots/?edit={template.pk}")).content.decode()
    assert f'name="template" value="{template.pk}"' in form and 'value="10:00"' in form
    res = client.post(
        url(store, "slots/"),
        {
            "template": template.pk,
            "weekdays": ["0", "1", "2", "3", "4", "5", "6"],
            "start_time": "14:00",
            "end_time": "16:00",
            "capacity": "6",
            "action": "update",
        },
    )
    assert res.status_code == 302
    template.refresh_from_db()
    assert (template.start_time, template.end_time, template.capacity) == (time(14), time(16), 6)
    slots = DeliverySlot.objects.filter(store=store)
    assert slots.filter(capacity=6).count() == 14
    # Of the old slots only the one a driver holds a seat in is still to come (one of today may be over).
    assert list(slots.filter(capacity=4, starts_at__gt=timezone.now()).values_list("pk", flat=True)) == [taken.pk]
    assert SlotTemplate.objects.count() == 1


def test_editing_a_template_with_bad_times_changes_nothing(client, manager, store):
    template = _slot_template(store)
    client.force_login(manager)
    res = client.post(
        url(store, "slots/"),
        {
            "template": template.pk,
            "weekdays": ["0"],
            "start_time": "12:00",
            "end_time": "10:00",
            "capacity": "6",
            "action": "update",
        },
    )
    assert "end after it starts" in res.content.decode()
    template.refresh_from_db()
    assert template.start_time == time(10) and DeliverySlot.objects.filter(store=store).count() == 14


def test_deleting_a_template_asks_first_then_drops_its_empty_slots(client, manager, store):
    template = _slot_template(store)
    keep = _slot_template(store, start_time=time(14), end_time=time(16), capacity=3)
    taken = DeliverySlot.objects.filter(store=store, capacity=4).order_by("starts_at").last()
    DeliverySlot.objects.filter(pk=taken.pk).update(claimed=1)
    client.force_login(manager)
    asked = client.post(url(store, "slots/"), {"template": template.pk, "action": "delete"})
    assert 'id="confirm"' in asked.content.decode() and SlotTemplate.objects.filter(pk=template.pk).exists()
    res = client.post(url(store, "slots/"), {"template": template.pk, "action": "delete", "confirmed": "1"})
    assert res.status_code == 302
    assert list(SlotTemplate.objects.values_list("pk", flat=True)) == [keep.pk]
    # Still to come: the other template's slots, and the one a driver holds a seat in.
    to_come = DeliverySlot.objects.filter(store=store, starts_at__gt=timezone.now())
    assert list(to_come.filter(capacity=4).values_list("pk", flat=True)) == [taken.pk]
    assert to_come.filter(capacity=3).count() >= 13
    # Twice changes nothing.
    again = client.post(url(store, "slots/"), {"template": template.pk, "action": "delete", "confirmed": "1"})
    assert again.status_code == 404


def test_cannot_edit_or_delete_another_stores_template(client, manager, store):
    theirs = _slot_template(StoreFactory())
    client.force_login(manager)
    assert client.get(url(store, f"slots/?edit={theirs.pk}")).status_code == 404
    res = client.post(url(store, "slots/"), {"template": theirs.pk, "action": "delete", "confirmed": "1"})
    assert res.status_code == 404 and SlotTemplate.objects.filter(pk=theirs.pk).exists()


def test_batches_list_refreshes_its_rows(client, associate, store):
    client.force_login(associate)
    page = client.get(url(store, "batches/")).content.decode()
    assert 'id="batch-rows"' in page and 'hx-trigger="every 15s"' in page
    rows = client.get(url(store, "batches/"), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="batch-rows")
    assert (
        rows.status_code == 200 and "<nav" not in rows.content.decode() and "No open batches." in rows.content.decode()
    )
