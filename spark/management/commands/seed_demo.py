"""`python manage.py seed_demo`: the demo world of the two pilot metros, Nashville and New Orleans.

Idempotent: every row is looked up by a natural key (zone slug, store number, user email,
order (store, external id), slot (store, start, end), the orders of a batch) and only created
when missing, so a second run on the same day changes nothing. Rows that people may have moved
on during a demo (order and batch statuses, slot claims) are left as they are; only the demo
logins are put back into a usable state (password, verified email, active driver).

The data comes from a fixed random seed, so every run draws the same world; dated rows
(slots, delivery windows, document expiry dates) are placed relative to "today" in each zone's
timezone, and the day is part of each demo order's external id.
"""

import math
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password, make_password
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from drivers.models import Driver
from drivers.services import driver_set_status
from orders.batch_editing import batch_create, batch_publish
from orders.models import Batch, Order, OrderEvent, Stop
from payments.models import PayPolicy, Tip
from spark.errors import DomainError
from stores.models import DeliverySlot, Store, StoreApiKey, StoreMembership, Zone, hash_api_key

SEED = 20261121
DEMO_PASSWORD = "spark-demo"
SLOT_HOURS = (8, 10, 12, 14, 16, 18)  # 2-hour blocks from 08:00 to 20:00 local
ORDER_WINDOW_WEIGHTS = (0.9, 1.1, 1.2, 1.1, 1.4, 1.3)
SEED_REASON = "demo data (seed_demo)"
BATCH_MAX_TOTES = 16  # below the stores' default vehicle limit (Store.batch_max_totes)

# --- The fixed part of the world ------------------------------------------------------------

ZONES: list[dict[str, Any]] = [
    {
        "slug": "nashville",
        "name": "Nashville",
        "timezone": "America/Chicago",
        "center": ("36.162700", "-86.781600"),
        "state": "TN",
        "city": "Nashville",
        "area_code": "615",
        "max_km": 12.0,
        "pay": {"base_cents": 400, "per_stop_cents": 150, "per_mile_cents": 60, "heavy_order_cents": 200},
        "postal_codes": [
            "37203",
            "37204",
            "37205",
            "37206",
            "37207",
            "37208",
            "37209",
            "37210",
            "37211",
            "37212",
            "37214",
            "37215",
            "37216",
            "37217",
            "37218",
            "37220",
        ],
        "streets": [
            "Gallatin Ave",
            "Belmont Blvd",
            "Charlotte Ave",
            "West End Ave",
            "Nolensville Pike",
            "Murfreesboro Pike",
            "Lebanon Pike",
            "Shelby Ave",
            "Woodland St",
            "Eastland Ave",
            "Riverside Dr",
            "Granny White Pike",
            "Hillsboro Pike",
            "Harding Pl",
            "Old Hickory Blvd",
            "Clarksville Pike",
            "Whites Creek Pike",
            "Trinity Ln",
            "Porter Rd",
            "Douglas Ave",
            "McGavock Pike",
            "Sharpe Ave",
            "Richland Ave",
            "Acklen Ave",
            "Blair Blvd",
            "12th Ave S",
            "8th Ave S",
            "Wedgewood Ave",
            "Thompson Ln",
            "Antioch Pike",
            "Bell Rd",
            "Dickerson Pike",
            "Ewing Dr",
            "Brick Church Pike",
            "White Bridge Pike",
            "Annex Ave",
            "Robertson Ave",
            "Elm Hill Pike",
            "Donelson Pike",
            "Lealand Ln",
        ],
        "stores": [
            {
                "number": "5260",
                "name": "Dickerson Pike Supercenter",
                "address_line1": "3458 Dickerson Pike",
                "postal_code": "37207",
                "lat": "36.251020",
                "lng": "-86.758310",
                "phone": "+16155550141",
                "pickup_instructions": (
                    "Park in the marked Online Pickup spaces on the north side of the building and check in "
                    "with the pickup code. An associate brings the totes out; cold totes are labelled blue."
                ),
                "store_rules": (
                    "Show your pickup code and driver app at the Online Pickup door. Alcohol orders are "
                    "handed over only after you confirm you will check the customer's ID."
                ),
            },
            {
                "number": "5275",
                "name": "Charlotte Pike Supercenter",
                "address_line1": "7044 Charlotte Pike",
                "postal_code": "37209",
                "lat": "36.137240",
                "lng": "-86.899580",
                "phone": "+16155550142",
                "pickup_instructions": (
                    "Use the Online Pickup lane by the garden center (east side). Stay with your vehicle; "
                    "associates load totes in route order."
                ),
                "store_rules": "No pickups inside the store. Frozen totes must go in the car last.",
            },
            {
                "number": "5281",
                "name": "Powell Ave Supercenter",
                "address_line1": "2421 Powell Ave",
                "postal_code": "37204",
                "lat": "36.113070",
                "lng": "-86.765950",
                "phone": "+16155550143",
                "pickup_instructions": (
                    "Enter from Powell Ave and follow the orange Pickup signs to the back lot. Ring the bell "
                    "at the pickup door if nobody is outside."
                ),
                "store_rules": "Pickup code required. Wait in the marked spaces; do not block the loading dock.",
            },
        ],
    },
    {
        "slug": "new-orleans",
        "name": "New Orleans",
        "timezone": "America/Chicago",
        "center": ("29.951100", "-90.071500"),
        "state": "LA",
        "city": "New Orleans",
        "area_code": "504",
        "max_km": 9.0,  # a little less: the lake and the river are not delivery addresses
        "pay": {"base_cents": 425, "per_stop_cents": 150, "per_mile_cents": 65, "heavy_order_cents": 250},
        "postal_codes": [
            "70112",
            "70113",
            "70114",
            "70115",
            "70116",
            "70117",
            "70118",
            "70119",
            "70122",
            "70124",
            "70125",
            "70126",
            "70130",
            "70131",
        ],
        "streets": [
            "Magazine St",
            "Prytania St",
            "St Charles Ave",
            "Napoleon Ave",
            "Louisiana Ave",
            "Esplanade Ave",
            "Elysian Fields Ave",
            "Canal St",
            "N Broad St",
            "S Carrollton Ave",
            "Freret St",
            "Oak St",
            "Maple St",
            "Burgundy St",
            "Dauphine St",
            "Royal St",
            "Chartres St",
            "Desire St",
            "Gentilly Blvd",
            "Paris Ave",
            "Franklin Ave",
            "Tulane Ave",
            "Orleans Ave",
            "Bienville St",
            "Banks St",
            "Constance St",
            "Annunciation St",
            "Laurel St",
            "General Pershing St",
            "Jefferson Ave",
            "Washington Ave",
            "Jackson Ave",
            "General de Gaulle Dr",
            "Holiday Dr",
            "Newton St",
            "Opelousas Ave",
            "Teche St",
            "Elysian Fields Ave",
            "Mirabeau Ave",
            "Robert E Lee Blvd",
        ],
        "stores": [
            {
                "number": "5309",
                "name": "Tchoupitoulas Supercenter",
                "address_line1": "1901 Tchoupitoulas St",
                "postal_code": "70130",
                "lat": "29.932550",
                "lng": "-90.064940",
                "phone": "+15045550151",
                "pickup_instructions": (
                    "Pickup is on the upper parking deck: take the ramp on the Orange St side and park in the "
                    "green Pickup bays. Totes come out on carts."
                ),
                "store_rules": "Show your pickup code. Alcohol is handed over only to drivers who will check ID.",
            },
            {
                "number": "5311",
                "name": "Behrman Place Supercenter",
                "address_line1": "4001 Behrman Pl",
                "postal_code": "70114",
                "lat": "29.921810",
                "lng": "-90.014270",
                "phone": "+15045550152",
                "pickup_instructions": (
                    "Online Pickup is at the left of the main entrance. Back into a marked space so totes can "
                    "be loaded from the trunk."
                ),
                "store_rules": "Pickup code required; one driver per batch at the door.",
            },
            {
                "number": "5324",
                "name": "Chef Menteur Supercenter",
                "address_line1": "4301 Chef Menteur Hwy",
                "postal_code": "70126",
                "lat": "29.989020",
                "lng": "-90.036790",
                "phone": "+15045550153",
                "pickup_instructions": (
                    "Follow the Pickup signs to the side lot facing Chef Menteur Hwy and call the number on the "
                    "sign if no associate comes out within five minutes."
                ),
                "store_rules": "Pickup code and photo ID at the handoff. Keep frozen totes out of the sun.",
            },
        ],
    },
]

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

# (type, make, model, tote capacity)
VEHICLES = [
    (Driver.Vehicle.CAR, "Toyota", "Camry", 18),
    (Driver.Vehicle.CAR, "Honda", "Civic", 16),
    (Driver.Vehicle.SUV, "Honda", "CR-V", 26),
    (Driver.Vehicle.SUV, "Toyota", "RAV4", 26),
    (Driver.Vehicle.SUV, "Ford", "Explorer", 30),
    (Driver.Vehicle.VAN, "Chrysler", "Pacifica", 40),
    (Driver.Vehicle.VAN, "Honda", "Odyssey", 40),
    (Driver.Vehicle.TRUCK, "Ford", "F-150", 32),
    (Driver.Vehicle.CAR, "Nissan", "Altima", 18),
    (Driver.Vehicle.CAR, "Hyundai", "Elantra", 16),
    (Driver.Vehicle.SUV, "Chevrolet", "Equinox", 26),
    (Driver.Vehicle.TRUCK, "Chevrolet", "Silverado", 32),
]
VEHICLE_COLORS = ["Silver", "White", "Black", "Gray", "Blue", "Red", "Green", "Maroon"]

DEMO_DRIVER_NAMES = [
    ("Dana", "Whitfield"),
    ("Marcus", "Bell"),
    ("Lena", "Ortiz"),
    ("Terrence", "Goodwin"),
    ("Amy", "Huang"),
    ("Jorge", "Castillo"),
    ("Shanice", "Carter"),
    ("Brian", "Kowalski"),
    ("Priya", "Raman"),
    ("Eddie", "Dawson"),
]
S = Driver.Status
R = Driver.ReasonCode
# The other drivers: (first, last, zone slug, status, reason code, note). Every onboarding state,
# in both zones.
OTHER_DRIVERS = [
    ("Kim", "Alvarez", "nashville", S.APPLICANT, R.NONE, ""),
    ("Travis", "Mercer", "nashville", S.APPLICANT, R.NONE, ""),
    ("Yolanda", "Price", "nashville", S.SCREENING, R.NONE, ""),
    ("Owen", "Fitzgerald", "nashville", S.SCREENING, R.NONE, ""),
    ("Grace", "Oyelaran", "nashville", S.ACTIVE, R.NONE, ""),
    ("Derek", "Sutton", "nashville", S.SUSPENDED, R.DOCUMENTS_EXPIRED, "Insurance card expired; upload the new one."),
    ("Nicole", "Baptiste", "nashville", S.SUSPENDED, R.QUALITY, "Three undeliverable stops in one week."),
    ("Russell", "Crane", "nashville", S.DEACTIVATED, R.SCREENING_FAILED, "Background check not passed."),
    ("Angelique", "Fontenot", "new-orleans", S.APPLICANT, R.NONE, ""),
    ("Tremaine", "Batiste", "new-orleans", S.APPLICANT, R.NONE, ""),
    ("Minh", "Pham", "new-orleans", S.SCREENING, R.NONE, ""),
    ("Claire", "Arceneaux", "new-orleans", S.SCREENING, R.NONE, ""),
    ("Jerome", "Dupre", "new-orleans", S.ACTIVE, R.NONE, ""),
    ("Tasha", "Robichaux", "new-orleans", S.ACTIVE, R.NONE, ""),
    ("Luis", "Mendoza", "new-orleans", S.ACTIVE, R.NONE, ""),
    ("Bernadette", "Comeaux", "new-orleans", S.ACTIVE, R.NONE, ""),
    ("Wayne", "Labiche", "new-orleans", S.ACTIVE, R.NONE, ""),
    ("Keith", "Marchand", "new-orleans", S.SUSPENDED, R.SAFETY, "Customer safety report under review."),
    ("Renee", "Savoie", "new-orleans", S.DEACTIVATED, R.FRAUD, "Deliveries marked done far from the address."),
    ("Paul", "Trahan", "new-orleans", S.DEACTIVATED, R.INACTIVE, "No deliveries for over a year."),
]
# How each status is reached from applicant, so every driver has its DriverEvent trail.
STATUS_PATHS: dict[str, list[str]] = {
    S.APPLICANT: [],
    S.SCREENING: [S.SCREENING],
    S.ACTIVE: [S.SCREENING, S.ACTIVE],
    S.SUSPENDED: [S.SCREENING, S.ACTIVE, S.SUSPENDED],
    S.DEACTIVATED: [S.SCREENING, S.DEACTIVATED],
}
DEACTIVATED_AFTER_ACTIVE = {R.FRAUD, R.INACTIVE, R.QUALITY, R.SAFETY}
BACK_TO_ACTIVE: dict[str, list[str]] = {
    S.APPLICANT: [S.SCREENING, S.ACTIVE],
    S.SCREENING: [S.ACTIVE],
    S.SUSPENDED: [S.ACTIVE],
    S.DEACTIVATED: [S.ACTIVE],
}


# --- Plan: everything drawn from the fixed seed, before touching the database ---------------


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


@dataclass
class DriverPlan:
    email: str
    first_name: str
    last_name: str
    zone_slug: str
    status: str
    reason_code: str
    note: str
    fields: dict
    appeal: str = ""


@dataclass
class Plan:
    days: dict[str, date]
    slots: list[tuple[str, datetime, datetime, int]] = field(default_factory=list)
    orders: list[OrderPlan] = field(default_factory=list)
    batches: list[BatchPlan] = field(default_factory=list)
    drivers: list[DriverPlan] = field(default_factory=list)


def _dec6(value: float) -> Decimal:
    return Decimal(f"{value:.6f}")


def _haversine_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    r = 6_371_000.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


def _window(day: date, tz: ZoneInfo, index: int) -> tuple[datetime, datetime]:
    hour = SLOT_HOURS[index]
    start = datetime.combine(day, time(hour), tzinfo=tz)
    return start, datetime.combine(day, time(hour + 2), tzinfo=tz)


def build_plan(days: dict[str, date]) -> Plan:
    rng = random.Random(SEED)
    plan = Plan(days=days)
    store_index = 0
    for zone in ZONES:
        tz = ZoneInfo(zone["timezone"])
        day = days[zone["slug"]]
        for store in zone["stores"]:
            # Slots: today and tomorrow.
            for offset in (0, 1):
                for i in range(len(SLOT_HOURS)):
                    start, end = _window(day + timedelta(days=offset), tz, i)
                    plan.slots.append((store["number"], start, end, rng.randint(4, 8)))
            # Orders.
            store_orders = []
            for n in range(1, ORDERS_PER_STORE[store_index] + 1):
                store_orders.append(_plan_order(rng, zone, store, day, tz, n))
            plan.orders.extend(store_orders)
            plan.batches.extend(_plan_batches(rng, store, store_orders, BATCHES_PER_STORE[store_index]))
            store_index += 1
    plan.drivers = _plan_drivers(rng, days)
    return plan


def _plan_order(rng: random.Random, zone: dict, store: dict, day: date, tz: ZoneInfo, n: int) -> OrderPlan:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    distance_km = rng.uniform(1.0, zone["max_km"])
    bearing = rng.uniform(0, 2 * math.pi)
    s_lat, s_lng = float(store["lat"]), float(store["lng"])
    lat = s_lat + distance_km * math.cos(bearing) / 111.32
    lng = s_lng + distance_km * math.sin(bearing) / (111.32 * math.cos(math.radians(s_lat)))
    window_index = rng.choices(range(len(SLOT_HOURS)), weights=ORDER_WINDOW_WEIGHTS)[0]
    window_start, window_end = _window(day, tz, window_index)
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


def _plan_batches(rng: random.Random, store: dict, orders: list[OrderPlan], count: int) -> list[BatchPlan]:
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


def _plate(rng: random.Random, state: str) -> str:
    letters = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(3))
    return f"{letters}-{rng.randrange(1000, 10000)}" if state == "TN" else f"{letters} {rng.randrange(100, 1000)}"


def _plan_drivers(rng: random.Random, days: dict[str, date]) -> list[DriverPlan]:
    zone_state = {z["slug"]: (z["state"], z["area_code"]) for z in ZONES}
    rows = [
        (first, last, f"driver{i}@spark.test", "nashville", S.ACTIVE, R.NONE, "")
        for i, (first, last) in enumerate(DEMO_DRIVER_NAMES, start=1)
    ]
    for first, last, zone_slug, status, reason, note in OTHER_DRIVERS:
        rows.append((first, last, f"{first}.{last}@drivers.spark.test".lower(), zone_slug, status, reason, note))
    plans = []
    for first, last, email, zone_slug, status, reason, note in rows:
        today = days[zone_slug]
        state, area = zone_state[zone_slug]
        vtype, make, model, capacity = rng.choice(VEHICLES)
        license_expires = today + timedelta(days=rng.randint(90, 1400))
        insurance_expires = today + timedelta(days=rng.randint(25, 330))
        if reason == R.DOCUMENTS_EXPIRED:
            insurance_expires = today - timedelta(days=rng.randint(3, 20))
        fields = {
            "phone": f"+1{area}55501{rng.randrange(100):02d}",
            "vehicle_type": vtype,
            "vehicle_make": make,
            "vehicle_model": model,
            "vehicle_color": rng.choice(VEHICLE_COLORS),
            "vehicle_plate": _plate(rng, state),
            "vehicle_tote_capacity": capacity,
            "license_number": f"{rng.randrange(10**8, 10**9)}",
            "license_state": state,
            "license_expires_on": license_expires,
            "insurance_expires_on": insurance_expires,
        }
        consent_days_ago = rng.randint(3, 400)
        appeal = ""
        if status == S.SUSPENDED and reason == R.QUALITY:
            appeal = "Two of those addresses did not exist; I have photos of the street signs."
        plans.append(
            DriverPlan(
                email=email,
                first_name=first,
                last_name=last,
                zone_slug=zone_slug,
                status=status,
                reason_code=reason,
                note=note,
                fields={**fields, "_consent_days_ago": consent_days_ago},
                appeal=appeal,
            )
        )
    return plans


# --- Apply: upsert the plan ------------------------------------------------------------------


class _Counter:
    def __init__(self) -> None:
        self.created: dict[str, int] = {}
        self.updated: dict[str, int] = {}

    def add(self, kind: str, n: int = 1, *, created: bool = True) -> None:
        target = self.created if created else self.updated
        target[kind] = target.get(kind, 0) + n


class _DemoPassword:
    """Every demo login uses the same password. Hashing is slow on purpose, so hash it once,
    and check each distinct stored hash once."""

    def __init__(self) -> None:
        self._hash: str | None = None
        self._checked: dict[str, bool] = {}

    def needs_reset(self, stored: str) -> bool:
        if stored not in self._checked:
            self._checked[stored] = bool(stored) and check_password(DEMO_PASSWORD, stored)
        return not self._checked[stored]

    @property
    def hash(self) -> str:
        if self._hash is None:
            self._hash = make_password(DEMO_PASSWORD)
            self._checked[self._hash] = True
        return self._hash


class Command(BaseCommand):
    help = "Load the idempotent demo world (Nashville and New Orleans). Safe to run any number of times."

    def add_arguments(self, parser):
        parser.add_argument(
            "--date",
            help="Treat this day (YYYY-MM-DD) as today in every zone instead of the real local date.",
        )

    def handle(self, *args, **options):
        started = timezone.now()
        if options.get("date"):
            try:
                forced = date.fromisoformat(options["date"])
            except ValueError as exc:
                raise CommandError(f"--date must be YYYY-MM-DD: {exc}") from None
            days = {z["slug"]: forced for z in ZONES}
        else:
            days = {z["slug"]: timezone.localdate(timezone=ZoneInfo(z["timezone"])) for z in ZONES}
        plan = build_plan(days)
        self.counter = _Counter()
        self.password = _DemoPassword()
        with transaction.atomic():
            self.zones = self._zones()
            self.stores = self._stores()
            self.ops = self._user("ops@spark.test", "Olivia", "Ops", is_staff=True, is_superuser=True)
            self.associate = self._user("associate@spark.test", "Andre", "Associate")
            self.manager = self._user("manager@spark.test", "Monica", "Manager")
            self.first_store = self.stores[ZONES[0]["stores"][0]["number"]]
            self._membership(self.associate, self.first_store, StoreMembership.Role.ASSOCIATE)
            self._membership(self.manager, self.first_store, StoreMembership.Role.MANAGER)
            self._api_key(self.first_store)
            self._slots(plan)
            self._orders(plan)
            self._batches(plan)
            self._drivers(plan)
            self._on_duty()
        self._summary(plan, (timezone.now() - started).total_seconds())

    # zones, stores -----------------------------------------------------------------------

    def _zones(self) -> dict[str, Zone]:
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
            self.counter.add("zones", int(created))
            _, created = PayPolicy.objects.get_or_create(zone=zone, defaults=spec["pay"])
            self.counter.add("pay policies", int(created))
            zones[spec["slug"]] = zone
        return zones

    def _stores(self) -> dict[str, Store]:
        stores = {}
        for spec in ZONES:
            zone = self.zones[spec["slug"]]
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
                self.counter.add("stores", int(created))
                stores[s["number"]] = store
        return stores

    # people ------------------------------------------------------------------------------

    def _user(self, email: str, first: str, last: str, *, is_staff=False, is_superuser=False, phone=""):
        """A demo login that works: password, active, verified primary email."""
        User = get_user_model()
        user = User.objects.filter(email__iexact=email).first()
        if user is None:
            user = User(
                email=email,
                first_name=first,
                last_name=last,
                phone=phone,
                is_staff=is_staff,
                is_superuser=is_superuser,
                password=self.password.hash,
            )
            user.save()
            self.counter.add("users")
        else:
            changed = []
            if self.password.needs_reset(user.password):
                user.password = self.password.hash
                changed.append("password")
            wanted = {"is_active": True}
            if is_staff:
                wanted["is_staff"] = True
            if is_superuser:
                wanted["is_superuser"] = True
            for name, value in wanted.items():
                if getattr(user, name) != value:
                    setattr(user, name, value)
                    changed.append(name)
            if changed:
                user.save(update_fields=changed)
                self.counter.add("users", created=False)
        self._verified_email(user)
        return user

    def _verified_email(self, user) -> None:
        address = EmailAddress.objects.filter(user=user, email__iexact=user.email).first()
        if address is not None and address.verified and address.primary:
            return
        EmailAddress.objects.filter(user=user, primary=True).exclude(pk=getattr(address, "pk", None)).update(
            primary=False
        )
        if address is None:
            EmailAddress.objects.create(user=user, email=user.email.lower(), verified=True, primary=True)
            self.counter.add("verified emails")
        else:
            address.verified = address.primary = True
            address.save(update_fields=["verified", "primary"])
            self.counter.add("verified emails", created=False)

    def _membership(self, user, store: Store, role: str) -> None:
        membership, created = StoreMembership.objects.get_or_create(user=user, store=store, defaults={"role": role})
        self.counter.add("store memberships", int(created))
        if not created and membership.role != role:
            membership.role = role
            membership.save(update_fields=["role"])
            self.counter.add("store memberships", created=False)

    def _api_key(self, store: Store) -> None:
        raw = settings.SPARK_DEMO_API_KEY
        key, created = StoreApiKey.objects.get_or_create(
            key_hash=hash_api_key(raw),
            defaults={"store": store, "name": "Demo e-commerce integration", "prefix": raw[:8], "created_by": self.ops},
        )
        self.counter.add("store API keys", int(created))
        if not created and (key.store_id != store.pk or key.revoked_at is not None):
            key.store, key.revoked_at = store, None
            key.save(update_fields=["store", "revoked_at"])
            self.counter.add("store API keys", created=False)

    # slots, orders, batches ----------------------------------------------------------------

    def _slots(self, plan: Plan) -> None:
        existing = set(
            DeliverySlot.objects.filter(store__in=self.stores.values()).values_list("store_id", "starts_at", "ends_at")
        )
        new = [
            DeliverySlot(store=self.stores[number], starts_at=start, ends_at=end, capacity=capacity)
            for number, start, end, capacity in plan.slots
            if (self.stores[number].pk, start, end) not in existing
        ]
        DeliverySlot.objects.bulk_create(new)
        self.counter.add("delivery slots", len(new))

    def _orders(self, plan: Plan) -> None:
        existing = set(
            Order.objects.filter(
                store__in=self.stores.values(), external_id__in=[o.external_id for o in plan.orders]
            ).values_list("store_id", "external_id")
        )
        new = [
            Order(store=self.stores[o.store_number], external_id=o.external_id, **o.fields)
            for o in plan.orders
            if (self.stores[o.store_number].pk, o.external_id) not in existing
        ]
        Order.objects.bulk_create(new)
        self.counter.add("orders", len(new))
        if not new:
            return
        # What intake writes besides the order: its first event, and the tip authorised with it
        # (the sandbox payment backend has no real payment intent).
        created = Order.objects.filter(
            store__in=self.stores.values(), external_id__in=[o.external_id for o in new]
        ).values_list("pk", "tip_cents")
        OrderEvent.objects.bulk_create(
            [
                OrderEvent(order_id=pk, from_status="", to_status=Order.Status.RECEIVED, reason=SEED_REASON)
                for pk, _ in created
            ]
        )
        tips = [Tip(order_id=pk, amount_cents=cents, authorized_cents=cents) for pk, cents in created if cents > 0]
        Tip.objects.bulk_create(tips)
        self.counter.add("tips", len(tips))

    def _batches(self, plan: Plan) -> None:
        """Published batches, built and published through the same services as the dashboard
        (draft with stops and route, orders batched -> ready, events, dispatch queued on commit)."""
        orders = {
            (o.store.number, o.external_id): o
            for o in Order.objects.select_related("store").filter(
                store__in=self.stores.values(), external_id__in=[x for b in plan.batches for x in b.external_ids]
            )
        }
        for spec in plan.batches:
            found = [orders.get((spec.store_number, ext)) for ext in spec.external_ids]
            stops = [o for o in found if o is not None]
            if len(stops) != len(found):
                continue
            # Already batched (by an earlier run or by someone in the demo), or moved on: leave it.
            if any(o.status != Order.Status.RECEIVED for o in stops):
                continue
            if Stop.objects.filter(order__in=stops).exclude(status=Stop.Status.REMOVED).exists():
                continue
            store = self.stores[spec.store_number]
            actor = self.associate if store.pk == self.first_store.pk else self.ops
            try:
                with transaction.atomic():
                    batch = batch_create(store=store, orders=stops, actor=actor)
                    batch_publish(batch=batch, actor=actor)
            except DomainError as exc:  # e.g. a store whose limits were lowered in the admin
                self.stderr.write(f"  Skipped a demo batch at store #{store.number}: {exc.message}")
                continue
            self.counter.add("published batches")
            self.counter.add("stops", len(stops))

    # drivers -----------------------------------------------------------------------------

    def _drivers(self, plan: Plan) -> None:
        for spec in plan.drivers:
            is_demo = spec.email.endswith("@spark.test")
            user = self._user(spec.email, spec.first_name, spec.last_name, phone=spec.fields["phone"])
            driver = Driver.objects.filter(user=user).first()
            if driver is None:
                fields = dict(spec.fields)
                consent_days_ago = fields.pop("_consent_days_ago")
                if spec.status != S.APPLICANT:
                    consented = timezone.now() - timedelta(days=consent_days_ago)
                    fields.update(background_check_consent_at=consented, phone_verified_at=consented)
                driver = Driver.objects.create(user=user, home_zone=self.zones[spec.zone_slug], **fields)
                self.counter.add("drivers")
                path: list[str] = list(STATUS_PATHS[spec.status])
                if spec.status == S.DEACTIVATED and spec.reason_code in DEACTIVATED_AFTER_ACTIVE:
                    path = [S.SCREENING, S.ACTIVE, S.DEACTIVATED]
                for step in path:
                    final = step == spec.status
                    driver_set_status(
                        driver=driver,
                        to=step,
                        actor=self.ops,
                        reason_code=spec.reason_code if final else "",
                        note=spec.note if final and spec.note else SEED_REASON,
                    )
                if spec.appeal:
                    Driver.objects.filter(pk=driver.pk).update(
                        appeal_text=spec.appeal, appeal_submitted_at=timezone.now() - timedelta(hours=20)
                    )
            elif is_demo and driver.status != S.ACTIVE:
                # Demo logins must stay usable: bring the driver back to active.
                for step in BACK_TO_ACTIVE[driver.status]:
                    driver_set_status(driver=driver, to=step, actor=self.ops, note="demo reset (seed_demo)")
                self.counter.add("drivers", created=False)

    def _on_duty(self) -> None:
        """So dispatch has someone to offer to in the demo: driver1-3 hold a seat in the slot
        running now at the first Nashville store, driver4-6 are online near it. Services are
        idempotent, so a re-run changes nothing; outside slot hours there is no seat to take."""
        from drivers.services import driver_go_online, slot_claim

        store = self.first_store
        now = timezone.now()
        running = DeliverySlot.objects.filter(store=store, starts_at__lte=now, ends_at__gt=now).first()
        for n in range(1, 7):
            driver = Driver.objects.filter(user__email=f"driver{n}@spark.test").first()
            if driver is None:
                continue
            try:
                if n <= 3 and running is not None:
                    slot_claim(driver=driver, slot=running)
                elif n > 3 and not driver.is_online:
                    offset = Decimal("0.004") * n  # a few hundred metres apart
                    driver_go_online(driver=driver, lat=store.lat + offset, lng=store.lng - offset)
            except DomainError as exc:
                self.stderr.write(f"demo duty for driver{n}: {exc.message}")

    # summary -----------------------------------------------------------------------------

    def _summary(self, plan: Plan, seconds: float) -> None:
        created = ", ".join(f"{n} {k}" for k, n in self.counter.created.items() if n) or "nothing new"
        updated = ", ".join(f"{n} {k}" for k, n in self.counter.updated.items() if n)
        day = ", ".join(f"{slug} {d.isoformat()}" for slug, d in plan.days.items())
        out = self.stdout
        out.write(self.style.SUCCESS(f"Demo world ready in {seconds:.1f}s (today: {day})."))
        out.write(f"  Created: {created}.")
        if updated:
            out.write(f"  Restored: {updated}.")
        drivers = Driver.objects.filter(home_zone__in=self.zones.values())
        by_status = ", ".join(f"{s} {drivers.filter(status=s).count()}" for s in Driver.Status.values)
        out.write(
            f"  In the demo zones: {Store.objects.filter(zone__in=self.zones.values()).count()} stores, "
            f"{Order.objects.filter(store__in=self.stores.values()).count()} orders, "
            f"{Batch.objects.filter(store__in=self.stores.values(), status=Batch.Status.PUBLISHED).count()} "
            f"published batches, {drivers.count()} drivers ({by_status})."
        )
        out.write(
            f"  Logins (password {DEMO_PASSWORD}): ops@spark.test, associate@spark.test, manager@spark.test, "
            "driver1@spark.test ... driver10@spark.test"
        )
        out.write(f"  Store API key (store #{ZONES[0]['stores'][0]['number']}): {settings.SPARK_DEMO_API_KEY}")
