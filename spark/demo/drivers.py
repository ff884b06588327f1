"""Demo drivers: driver1-10@spark.test (active, in Nashville, the demo logins) and twenty others
in every onboarding state in both zones, each with its DriverEvent trail; and the demo drivers
put on duty so dispatch has someone to offer to.
"""

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.utils import timezone

from accounts.models import User
from drivers.models import Driver
from drivers.services import driver_go_online, driver_set_status
from drivers.slot_services import slot_claim
from spark.demo.bookkeeping import SEED_REASON, Counter
from spark.demo.metros import ZONES
from spark.demo.people import DemoPassword, seed_user
from spark.errors import DomainError
from stores.models import DeliverySlot, Store, Zone

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


# --- Plan -------------------------------------------------------------------------------------


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


def _plate(rng: random.Random, state: str) -> str:
    letters = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(3))
    return f"{letters}-{rng.randrange(1000, 10000)}" if state == "TN" else f"{letters} {rng.randrange(100, 1000)}"


def plan_drivers(rng: random.Random, days: dict[str, date]) -> list[DriverPlan]:
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


# --- Apply ------------------------------------------------------------------------------------


def _birth_date(spec: DriverPlan) -> date:
    """A date of birth past the sign-up age check (27 to 56 years old), the same on every seed
    and drawn without the random stream, so the rest of the demo stays as it was."""
    return date(1970 + len(spec.email) * 7 % 30, 1 + len(spec.first_name) % 12, 1 + len(spec.last_name) % 28)


def seed_drivers(
    counter: Counter, password: DemoPassword, zones: dict[str, Zone], drivers: list[DriverPlan], ops: User
) -> None:
    """New drivers walk their status path from applicant (through the services, so each has its
    DriverEvent trail); an existing demo login that is no longer active is brought back."""
    for spec in drivers:
        is_demo = spec.email.endswith("@spark.test")
        user = seed_user(counter, password, spec.email, spec.first_name, spec.last_name, phone=spec.fields["phone"])
        driver = Driver.objects.filter(user=user).first()
        if driver is None:
            fields = dict(spec.fields)
            consent_days_ago = fields.pop("_consent_days_ago")
            if spec.status != S.APPLICANT:
                consented = timezone.now() - timedelta(days=consent_days_ago)
                fields.update(
                    background_check_consent_at=consented, phone_verified_at=consented, birth_date=_birth_date(spec)
                )
            driver = Driver.objects.create(user=user, home_zone=zones[spec.zone_slug], **fields)
            counter.add("drivers")
            path: list[str] = list(STATUS_PATHS[spec.status])
            if spec.status == S.DEACTIVATED and spec.reason_code in DEACTIVATED_AFTER_ACTIVE:
                path = [S.SCREENING, S.ACTIVE, S.DEACTIVATED]
            for step in path:
                final = step == spec.status
                driver_set_status(
                    driver=driver,
                    to=step,
                    actor=ops,
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
                driver_set_status(driver=driver, to=step, actor=ops, note="demo reset (seed_demo)")
            counter.add("drivers", created=False)


def put_on_duty(store: Store, warn: Callable[[str], None]) -> None:
    """So dispatch has someone to offer to in the demo: driver1-3 hold a seat in the slot
    running now at `store` (the first Nashville store), driver4-6 are online near it. Services
    are idempotent, so a re-run changes nothing; outside slot hours there is no seat to take."""
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
            warn(f"demo duty for driver{n}: {exc.message}")
