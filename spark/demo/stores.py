"""The demo zones with their pay policies, the stores, the demo store API key, and delivery
slots: today and tomorrow at every store, in 2-hour blocks from 08:00 to 20:00 local."""

import random
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.conf import settings

from accounts.models import User
from payments.models import PayPolicy
from spark.demo.bookkeeping import Counter
from spark.demo.metros import ZONES
from stores.models import DeliverySlot, Store, StoreApiKey, Zone, hash_api_key

SLOT_HOURS = (8, 10, 12, 14, 16, 18)  # 2-hour blocks from 08:00 to 20:00 local

# (store number, starts at, ends at, capacity)
SlotPlan = tuple[str, datetime, datetime, int]


def window(day: date, tz: ZoneInfo, index: int) -> tuple[datetime, datetime]:
    """The `index`th 2-hour block of `day`: a delivery slot, and an order's delivery window."""
    hour = SLOT_HOURS[index]
    start = datetime.combine(day, time(hour), tzinfo=tz)
    return start, datetime.combine(day, time(hour + 2), tzinfo=tz)


def plan_slots(rng: random.Random, store: dict, day: date, tz: ZoneInfo) -> list[SlotPlan]:
    """Today's and tomorrow's slots at `store`, each with a capacity of 4-8 drivers."""
    slots = []
    for offset in (0, 1):
        for i in range(len(SLOT_HOURS)):
            start, end = window(day + timedelta(days=offset), tz, i)
            slots.append((store["number"], start, end, rng.randint(4, 8)))
    return slots


def seed_zones(counter: Counter) -> dict[str, Zone]:
    zones = {}
    for spec in ZONES:
        zone, created = Zone.objects.get_or_create(
            slug=spec["slug"],
            defaults={
                "name": spec["name"],
                "timezone": spec["timezone"],
                "center_lat": Decimal(spec["center"][0]),
                "center_lng": Decimal(spec["center"][1]),
            },
        )
        counter.add("zones", int(created))
        _, created = PayPolicy.objects.get_or_create(zone=zone, defaults=spec["pay"])
        counter.add("pay policies", int(created))
        zones[spec["slug"]] = zone
    return zones


def seed_stores(counter: Counter, zones: dict[str, Zone]) -> dict[str, Store]:
    stores = {}
    for spec in ZONES:
        zone = zones[spec["slug"]]
        for s in spec["stores"]:
            store, created = Store.objects.get_or_create(
                number=s["number"],
                defaults={
                    "zone": zone,
                    "name": s["name"],
                    "address_line1": s["address_line1"],
                    "city": spec["city"],
                    "state": spec["state"],
                    "postal_code": s["postal_code"],
                    "lat": Decimal(s["lat"]),
                    "lng": Decimal(s["lng"]),
                    "phone": s["phone"],
                    "pickup_instructions": s["pickup_instructions"],
                    "store_rules": s["store_rules"],
                },
            )
            counter.add("stores", int(created))
            stores[s["number"]] = store
    return stores


def seed_api_key(counter: Counter, store: Store, created_by: User) -> None:
    """The demo e-commerce integration's key (settings.SPARK_DEMO_API_KEY), for `store`."""
    raw = settings.SPARK_DEMO_API_KEY
    key, created = StoreApiKey.objects.get_or_create(
        key_hash=hash_api_key(raw),
        defaults={"store": store, "name": "Demo e-commerce integration", "prefix": raw[:8], "created_by": created_by},
    )
    counter.add("store API keys", int(created))
    if not created and (key.store_id != store.pk or key.revoked_at is not None):
        key.store, key.revoked_at = store, None
        key.save(update_fields=["store", "revoked_at"])
        counter.add("store API keys", created=False)


def seed_slots(counter: Counter, stores: dict[str, Store], slots: list[SlotPlan]) -> None:
    existing = set(
        DeliverySlot.objects.filter(store__in=stores.values()).values_list("store_id", "starts_at", "ends_at")
    )
    new = [
        DeliverySlot(store=stores[number], starts_at=start, ends_at=end, capacity=capacity)
        for number, start, end, capacity in slots
        if (stores[number].pk, start, end) not in existing
    ]
    DeliverySlot.objects.bulk_create(new)
    counter.add("delivery slots", len(new))
