"""The plan: everything drawn from the fixed seed, before touching the database.

One random stream, drawn in a fixed order (per store: its slots, its orders, its batches; then
the drivers), so every run draws the same world for the same days.
"""

import random
from dataclasses import dataclass, field
from datetime import date
from zoneinfo import ZoneInfo

from spark.demo.drivers import DriverPlan, plan_drivers
from spark.demo.metros import ZONES
from spark.demo.orders import BATCHES_PER_STORE, ORDERS_PER_STORE, BatchPlan, OrderPlan, plan_batches, plan_order
from spark.demo.stores import SlotPlan, plan_slots

SEED = 20261121


@dataclass
class Plan:
    days: dict[str, date]
    slots: list[SlotPlan] = field(default_factory=list)
    orders: list[OrderPlan] = field(default_factory=list)
    batches: list[BatchPlan] = field(default_factory=list)
    drivers: list[DriverPlan] = field(default_factory=list)


def build_plan(days: dict[str, date]) -> Plan:
    """The world for `days` (zone slug -> that zone's today)."""
    rng = random.Random(SEED)
    plan = Plan(days=days)
    store_index = 0
    for zone in ZONES:
        tz = ZoneInfo(zone["timezone"])
        day = days[zone["slug"]]
        for store in zone["stores"]:
            plan.slots.extend(plan_slots(rng, store, day, tz))
            store_orders = []
            for n in range(1, ORDERS_PER_STORE[store_index] + 1):
                store_orders.append(plan_order(rng, zone, store, day, tz, n))
            plan.orders.extend(store_orders)
            plan.batches.extend(plan_batches(rng, store, store_orders, BATCHES_PER_STORE[store_index]))
            store_index += 1
    plan.drivers = plan_drivers(rng, days)
    return plan
