"""Auto-batching: PyVRP proposes trips from one store.

The store is the depot; each order is a client with its delivery window (seconds from a
reference time), a load in two dimensions (totes, and 1 per stop, so that a vehicle's
capacity [max_totes, max_stops] caps both), and a service time at the door. Every trip
returns to the store, so routed distance includes the drive back. Orders that cannot be
served inside their window are optional with a large prize: PyVRP leaves them out rather
than returning an infeasible plan, and we report them.
"""

from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from spark import geo

# Each extra batch costs as much as this many metres: fewer, fuller trips are preferred
# when the distance saved is small, which is what stores and drivers both want.
BATCH_FIXED_COST_M = 8_000
UNSERVED_PRIZE = 10_000_000


@dataclass
class ProposedBatch:
    order_ids: list[int]
    route_meters: int
    route_seconds: int
    totes: int


@dataclass
class Proposal:
    batches: list[ProposedBatch] = field(default_factory=list)
    unassigned: list[int] = field(default_factory=list)
    distance_m: int = 0
    runtime_s: float = 0.0


def propose_batches(
    *,
    store,
    orders: list,
    max_totes: int,
    max_stops: int,
    time_limit_s: float = 3.0,
    start: datetime | None = None,
    seed: int = 1,
) -> Proposal:
    """Solve one store's batching problem. `orders` need lat/lng, totes, window_start/end."""
    from pyvrp import Model
    from pyvrp.stop import MaxRuntime

    if not orders:
        return Proposal()
    t0 = start or timezone.now()

    def secs(dt: datetime) -> int:
        return max(0, int((dt - t0).total_seconds()))

    horizon = max(secs(o.window_end) for o in orders) + 4 * 3600
    m = Model()
    depot_point = geo.Point.of(store.lat, store.lng)
    # Distances and durations come from our geo helper as explicit edges, so the
    # coordinates PyVRP keeps for each location are only labels.
    depot_location = m.add_location(x=0, y=0, name="store")
    depot = m.add_depot(depot_location, tw_early=0, tw_late=horizon, name="store")
    m.add_vehicle_type(
        num_available=len(orders),
        capacity=[max_totes, max_stops],
        start_depot=depot,
        end_depot=depot,
        fixed_cost=BATCH_FIXED_COST_M,
        tw_early=0,
        tw_late=horizon,
    )
    locations = [depot_location]
    points = [depot_point]
    for o in orders:
        fits = o.totes <= max_totes
        location = m.add_location(x=0, y=0, name=str(o.pk))
        locations.append(location)
        m.add_client(
            location,
            delivery=[o.totes, 1],
            service_duration=geo.STOP_SERVICE_SECONDS,
            tw_early=secs(o.window_start),
            tw_late=secs(o.window_end),
            prize=UNSERVED_PRIZE if fits else 0,
            required=False,
            name=str(o.pk),
        )
        points.append(geo.Point.of(o.lat, o.lng))
    for i, frm in enumerate(locations):
        for j, to in enumerate(locations):
            if i != j:  # self loops are zero already
                m.add_edge(
                    frm,
                    to,
                    distance=geo.distance_m(points[i], points[j]),
                    duration=geo.duration_s(points[i], points[j]),
                )

    result = m.solve(stop=MaxRuntime(time_limit_s), seed=seed, display=False, collect_stats=False)
    proposal = Proposal(runtime_s=result.runtime)
    served: set[int] = set()
    for route in result.best.routes():
        visits = [activity.idx for activity in route if activity.is_client()]  # client indices, in order
        ids = [orders[v].pk for v in visits]
        served.update(ids)
        proposal.batches.append(
            ProposedBatch(
                order_ids=ids,
                route_meters=route.distance(),
                route_seconds=route.duration(),
                totes=sum(orders[v].totes for v in visits),
            )
        )
    proposal.unassigned = [o.pk for o in orders if o.pk not in served]
    proposal.distance_m = sum(b.route_meters for b in proposal.batches)
    return proposal
