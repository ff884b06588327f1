"""Demo orders and published batches.

Planned from the seed: about 200 orders spread over the six stores and the delivery windows of
the day, and per store one or two batches of 2-3 nearby orders sharing an afternoon/evening
window, in stop order. Applied: the orders with what intake writes besides each order (its first
event and its tip), then the batches, built and published through the dashboard's services.
"""

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import transaction

from orders.batch_editing import batch_create, batch_publish
from orders.models import Order, OrderEvent, Stop
from payments.models import Tip, TipCharge
from spark.demo.bookkeeping import SEED_REASON, Counter
from spark.demo.people import Staff
from spark.demo.stores import SLOT_HOURS, window
from spark.errors import DomainError
from stores.models import Store

ORDER_WINDOW_WEIGHTS = (0.9, 1.1, 1.2, 1.1, 1.4, 1.3)
BATCH_MAX_TOTES = 16  # below the stores' default vehicle limit (Store.batch_max_totes)

# Orders per store (Nashville stores first): 200 in all.
ORDERS_PER_STORE = (36, 33, 35, 32, 31, 33)
# Published batches per store, same order: two at each Nashville store, one at each New Orleans store.
BATCHES_PER_STORE = (2, 2, 2, 1, 1, 1)

FIRST_NAMES = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "Michael",
    "Jennifer",
    "William",
    "Linda",
    "David",
    "Elizabeth",
    "Marcus",
    "Keisha",
    "Luis",
    "Maria",
    "Tyrone",
    "Ashley",
    "Nguyen",
    "Thuy",
    "Andre",
    "Jasmine",
    "Carlos",
    "Sofia",
    "Darnell",
    "Brittany",
    "Ahmed",
    "Fatima",
    "Cody",
    "Hannah",
    "Jamal",
    "Latoya",
    "Kevin",
    "Rachel",
    "Trevor",
    "Emily",
    "Dwayne",
    "Monique",
    "Brandon",
    "Kayla",
    "Hector",
    "Rosa",
]
LAST_NAMES = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Washington",
    "Jackson",
    "Thomas",
    "Taylor",
    "Moore",
    "Martin",
    "Lee",
    "Thompson",
    "White",
    "Harris",
    "Clark",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Tran",
    "Nguyen",
    "Boudreaux",
    "Landry",
    "Thibodeaux",
    "Broussard",
    "Hebert",
    "Guidry",
    "Patel",
    "Okafor",
]
ORDER_NOTES = [
    "",
    "",
    "",
    "",
    "",
    "",
    "Leave at the side door, please.",
    "Gate code 4417.",
    "Call when you arrive; the doorbell is broken.",
    "Dog in the yard. Please text instead of knocking.",
    "Apartment is around the back, up the stairs.",
    "Please put the cold bags on the porch in the shade.",
]
APARTMENT_LINES = ["", "", "", "", "", "Apt 2B", "Apt 14", "Unit 3", "Apt 210", "Unit C"]


# --- Plan -------------------------------------------------------------------------------------


@dataclass
class OrderPlan:
    store_number: str
    external_id: str
    window_index: int
    fields: dict

    def distance_to(self, other: "OrderPlan") -> float:
        return _haversine_m(
            float(self.fields["lat"]), float(self.fields["lng"]), float(other.fields["lat"]), float(other.fields["lng"])
        )


@dataclass
class BatchPlan:
    store_number: str
    external_ids: list[str]  # in stop sequence


def _dec6(value: float) -> Decimal:
    return Decimal(f"{value:.6f}")


def _haversine_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    r = 6_371_000.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


def plan_order(rng: random.Random, zone: dict, store: dict, day: date, tz: ZoneInfo, n: int) -> OrderPlan:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    distance_km = rng.uniform(1.0, zone["max_km"])
    bearing = rng.uniform(0, 2 * math.pi)
    s_lat, s_lng = float(store["lat"]), float(store["lng"])
    lat = s_lat + distance_km * math.cos(bearing) / 111.32
    lng = s_lng + distance_km * math.sin(bearing) / (111.32 * math.cos(math.radians(s_lat)))
    window_index = rng.choices(range(len(SLOT_HOURS)), weights=ORDER_WINDOW_WEIGHTS)[0]
    window_start, window_end = window(day, tz, window_index)
    totes = rng.choices(range(1, 9), weights=(10, 18, 20, 16, 12, 9, 6, 4))[0]
    is_heavy = rng.random() < 0.15
    weight = totes * rng.uniform(7.0, 19.0) + (rng.uniform(35.0, 70.0) if is_heavy else 0.0)
    contains_alcohol = rng.random() < 0.12
    tip_cents = 0 if rng.random() < 0.2 else rng.randrange(200, 1501, 25)
    with_email = rng.random() < 0.8
    fields = {
        "customer_name": f"{first} {last}",
        "customer_phone": f"+1{zone['area_code']}55501{rng.randrange(100):02d}",
        "customer_email": f"{first}.{last}{rng.randrange(10, 99)}@example.com".lower() if with_email else "",
        "address_line1": f"{rng.randrange(100, 5000)} {rng.choice(zone['streets'])}",
        "address_line2": rng.choice(APARTMENT_LINES),
        "city": zone["city"],
        "state": zone["state"],
        "postal_code": rng.choice(zone["postal_codes"]),
        "lat": _dec6(lat),
        "lng": _dec6(lng),
        "window_start": window_start,
        "window_end": window_end,
        "totes": totes,
        "weight_lb": Decimal(f"{weight:.1f}"),
        "items_count": totes * rng.randint(4, 11) + rng.randint(0, 5),
        "is_heavy": is_heavy,
        "contains_alcohol": contains_alcohol,
        "tip_cents": tip_cents,
        "notes": rng.choice(ORDER_NOTES),
    }
    external_id = f"DEMO-{day:%Y%m%d}-{store['number']}-{n:03d}"
    return OrderPlan(store["number"], external_id, window_index, fields)


def plan_batches(rng: random.Random, store: dict, orders: list[OrderPlan], count: int) -> list[BatchPlan]:
    """`count` batches of 2-3 nearby orders sharing an afternoon/evening window, in stop order."""
    by_window: dict[int, list[OrderPlan]] = {}
    for order in orders:
        by_window.setdefault(order.window_index, []).append(order)
    later = [i for i in range(2, len(SLOT_HOURS)) if len(by_window.get(i, [])) >= 3]
    windows = rng.sample(later, k=min(count, len(later)))
    batches = []
    for w in sorted(windows):
        pool = list(by_window[w])
        size = rng.choice((2, 3, 3))
        first = rng.choice(pool)
        pool.remove(first)
        chosen = [first]
        pool.sort(key=first.distance_to)
        for candidate in pool:
            if len(chosen) == size:
                break
            if sum(o.fields["totes"] for o in chosen) + candidate.fields["totes"] <= BATCH_MAX_TOTES:
                chosen.append(candidate)
        # Stop sequence: nearest neighbour from the store.
        here = OrderPlan(store["number"], "", 0, {"lat": store["lat"], "lng": store["lng"]})
        sequence: list[OrderPlan] = []
        while chosen:
            here = min(chosen, key=here.distance_to)
            chosen.remove(here)
            sequence.append(here)
        if len(sequence) >= 2:
            batches.append(BatchPlan(store_number=store["number"], external_ids=[o.external_id for o in sequence]))
    return batches


# --- Apply ------------------------------------------------------------------------------------


def seed_orders(counter: Counter, stores: dict[str, Store], orders: list[OrderPlan]) -> None:
    existing = set(
        Order.objects.filter(store__in=stores.values(), external_id__in=[o.external_id for o in orders]).values_list(
            "store_id", "external_id"
        )
    )
    new = [
        Order(store=stores[o.store_number], external_id=o.external_id, **o.fields)
        for o in orders
        if (stores[o.store_number].pk, o.external_id) not in existing
    ]
    Order.objects.bulk_create(new)
    counter.add("orders", len(new))
    if not new:
        return
    # What intake writes besides the order: its first event, and the tip authorised with it on
    # a card saved with the order (sandbox ids: the sandbox payment backend moves no money), so
    # a demo customer can raise it from the tracking page (payments.tips).
    created = Order.objects.filter(store__in=stores.values(), external_id__in=[o.external_id for o in new]).values_list(
        "pk", "tip_cents"
    )
    OrderEvent.objects.bulk_create(
        [
            OrderEvent(order_id=pk, from_status="", to_status=Order.Status.RECEIVED, reason=SEED_REASON)
            for pk, _ in created
        ]
    )
    tips = [
        Tip(
            order_id=pk,
            amount_cents=cents,
            authorized_cents=cents,
            stripe_customer_id=f"sandbox_cus_{pk}",
            stripe_payment_method_id=f"sandbox_pm_{pk}",
            stripe_payment_intent_id=f"sandbox_pi_demo_{pk}",
        )
        for pk, cents in created
        if cents > 0
    ]
    Tip.objects.bulk_create(tips)
    TipCharge.objects.bulk_create(
        [
            TipCharge(
                tip=tip,
                kind=TipCharge.Kind.INTAKE,
                status=TipCharge.Status.AUTHORIZED,
                amount_cents=tip.amount_cents,
                stripe_payment_intent_id=tip.stripe_payment_intent_id,
                authorized_at=tip.created_at,
            )
            for tip in tips
        ]
    )
    counter.add("tips", len(tips))


def seed_batches(
    counter: Counter, stores: dict[str, Store], batches: list[BatchPlan], staff: Staff, warn: Callable[[str], None]
) -> None:
    """Published batches, built and published through the same services as the dashboard
    (draft with stops and route, orders batched -> ready, events, dispatch queued on commit).
    Built by the store's associate at the staff's store, by ops elsewhere."""
    orders = {
        (o.store.number, o.external_id): o
        for o in Order.objects.select_related("store").filter(
            store__in=stores.values(), external_id__in=[x for b in batches for x in b.external_ids]
        )
    }
    for spec in batches:
        found = [orders.get((spec.store_number, ext)) for ext in spec.external_ids]
        stops = [o for o in found if o is not None]
        if len(stops) != len(found):
            continue
        # Already batched (by an earlier run or by someone in the demo), or moved on: leave it.
        if any(o.status != Order.Status.RECEIVED for o in stops):
            continue
        if Stop.objects.filter(order__in=stops).exclude(status=Stop.Status.REMOVED).exists():
            continue
        store = stores[spec.store_number]
        actor = staff.associate if store.pk == staff.store.pk else staff.ops
        try:
            with transaction.atomic():
                batch = batch_create(store=store, orders=stops, actor=actor)
                batch_publish(batch=batch, actor=actor)
        except DomainError as exc:  # e.g. a store whose limits were lowered in the admin
            warn(f"  Skipped a demo batch at store #{store.number}: {exc.message}")
            continue
        counter.add("published batches")
        counter.add("stops", len(stops))
