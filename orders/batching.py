"""Auto-batching: PyVRP proposes trips from one store.

The store is the depot; each order is a client with its delivery window (seconds from a
reference time), a load in two dimensions (totes, and 1 per stop, so that a vehicle's
capacity [max_totes, max_stops] caps both), and a service time at the door. Every trip
returns to the store, so routed distance includes the drive back.

An order is unservable only when it cannot be delivered even alone (store -> door -> store):
too many totes for one trip, or its window closes before a driver leaving now can get there.
Those are checked up front, kept out of the model and reported. Every other order is a
required client, and the search starts from a plan that already places them all (by window,
nearest next), so the plan it returns always does too: PyVRP's best solution is only ever
replaced by a feasible one that costs less.

The search stops when it has gone a while without finding a better plan, or at a time cap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from django.utils import timezone

from spark import geo

if TYPE_CHECKING:
    from pyvrp import Model, Solution

# Each extra batch costs as much as this many metres: fewer, fuller trips are preferred
# when the distance saved is small, which is what stores and drivers both want.
BATCH_FIXED_COST_M = 8_000
# The search stops after this many iterations without a better plan (an iteration is one
# perturb-and-repair of the current plan; 100 to 300 orders run 400 to 1,000 a second on a
# busy 2-core machine) ...
NO_IMPROVEMENT_ITERATIONS = 2_000
# ... or at this cap on the whole proposal, whichever comes first.
MAX_SOLVE_SECONDS = 10.0
CAP_MARGIN_S = 0.5
# PyVRP's late-acceptance history (default 300): a short one accepts fewer worse plans, which
# on tight-window days of 100-300 orders reaches in a few seconds what the default reaches in a
# minute (bench/bench_batching.py).
HISTORY_LENGTH = 20


@dataclass
class ProposedBatch:
    order_ids: list[int]
    route_meters: int
    route_seconds: int
    totes: int


@dataclass
class Proposal:
    batches: list[ProposedBatch] = field(default_factory=list)
    unassigned: list[int] = field(default_factory=list)  # unservable even alone
    distance_m: int = 0
    runtime_s: float = 0.0


@dataclass(frozen=True)
class BatchingProblem:
    """One store's orders as the solver sees them: the servable ones with their windows in
    seconds from `t0`, a distance and a duration matrix (index 0 is the store, order i is
    i + 1), and the orders that cannot be served even alone."""

    orders: list
    unservable: list
    windows: list[tuple[int, int]]
    distance: list[list[int]]
    duration: list[list[int]]
    max_totes: int
    max_stops: int

    @property
    def horizon(self) -> int:
        # Late enough for any trip to get back to the store after its last stop.
        latest = max((late for _, late in self.windows), default=0)
        return latest + geo.STOP_SERVICE_SECONDS + max(row[0] for row in self.duration) + 1

    def constructive_routes(self) -> list[list[int]]:
        """A plan placing every order: each trip opens with the unplaced order whose window
        closes first, then drives to the nearest unplaced order it can still reach inside
        that order's window, until the trip is full or nothing fits. An order alone always
        fits (that is what servable means), so every order gets a trip."""
        unplaced = sorted(range(len(self.orders)), key=lambda i: (self.windows[i][1], self.windows[i][0]))
        routes: list[list[int]] = []
        while unplaced:
            route: list[int] = []
            clock = totes = here = 0  # leave the store (index 0) empty, now
            while unplaced and len(route) < self.max_stops:
                reachable = [
                    i
                    for i in unplaced
                    if totes + self.orders[i].totes <= self.max_totes
                    and self._arrival(clock, here, i) <= self.windows[i][1]
                ]
                if not reachable:
                    break
                # The first stop is the earliest-closing window; later ones the nearest.
                nxt = reachable[0] if not route else min(reachable, key=lambda i: self.distance[here][i + 1])
                clock = self._arrival(clock, here, nxt) + geo.STOP_SERVICE_SECONDS
                totes += self.orders[nxt].totes
                here = nxt + 1
                route.append(nxt)
                unplaced.remove(nxt)
            routes.append(route)
        return routes

    def _arrival(self, clock: int, here: int, i: int) -> int:
        """When service at order i can start, leaving `here` at `clock` (waiting if early)."""
        return max(clock + self.duration[here][i + 1], self.windows[i][0])

    def model(self) -> Model:
        from pyvrp import Model  # loaded only where a solve runs: it pulls in numpy

        m = Model()
        # Distances and durations are given as explicit edges, so the coordinates PyVRP
        # keeps for each location are only labels.
        locations = [m.add_location(x=0, y=0, name="store")]
        depot = m.add_depot(locations[0], tw_early=0, tw_late=self.horizon, name="store")
        m.add_vehicle_type(
            num_available=len(self.orders),
            capacity=[self.max_totes, self.max_stops],
            start_depot=depot,
            end_depot=depot,
            fixed_cost=BATCH_FIXED_COST_M,
            tw_early=0,
            tw_late=self.horizon,
        )
        for o, (early, late) in zip(self.orders, self.windows, strict=True):
            location = m.add_location(x=0, y=0, name=str(o.pk))
            locations.append(location)
            m.add_client(
                location,
                delivery=[o.totes, 1],
                service_duration=geo.STOP_SERVICE_SECONDS,
                tw_early=early,
                tw_late=late,
                required=True,
                name=str(o.pk),
            )
        for i, frm in enumerate(locations):
            for j, to in enumerate(locations):
                if i != j:  # self loops are zero already
                    m.add_edge(frm, to, distance=self.distance[i][j], duration=self.duration[i][j])
        return m


def batching_problem(*, store, orders: list, max_totes: int, max_stops: int, start: datetime) -> BatchingProblem:
    """Split `orders` into servable and unservable (alone, leaving the store at `start`) and
    measure the servable ones. `orders` need pk, lat/lng, totes, window_start/end."""

    def secs(dt: datetime) -> int:
        return max(0, int((dt - start).total_seconds()))

    store_point = geo.Point.of(store.lat, store.lng)
    servable, unservable, windows = [], [], []
    for o in orders:
        early, late = secs(o.window_start), secs(o.window_end)
        drive = geo.duration_s(store_point, geo.Point.of(o.lat, o.lng))
        if o.totes <= max_totes and max_stops >= 1 and max(drive, early) <= late:
            servable.append(o)
            windows.append((early, late))
        else:
            unservable.append(o)
    points = [store_point] + [geo.Point.of(o.lat, o.lng) for o in servable]
    return BatchingProblem(
        orders=servable,
        unservable=unservable,
        windows=windows,
        distance=[[geo.distance_m(p, q) if p is not q else 0 for q in points] for p in points],
        duration=[[geo.duration_s(p, q) if p is not q else 0 for q in points] for p in points],
        max_totes=max_totes,
        max_stops=max_stops,
    )


def propose_batches(
    *,
    store,
    orders: list,
    max_totes: int,
    max_stops: int,
    time_limit_s: float = MAX_SOLVE_SECONDS,
    no_improvement_iterations: int = NO_IMPROVEMENT_ITERATIONS,
    start: datetime | None = None,
    seed: int = 1,
) -> Proposal:
    """Solve one store's batching problem: every servable order is placed in a trip, the
    unservable ones are listed in `unassigned`."""
    from pyvrp import IteratedLocalSearchParams, Solution, SolveParams, solve
    from pyvrp.stop import MaxRuntime, MultipleCriteria, NoImprovement

    began = time.perf_counter()
    problem = batching_problem(
        store=store, orders=orders, max_totes=max_totes, max_stops=max_stops, start=start or timezone.now()
    )
    proposal = Proposal(unassigned=[o.pk for o in problem.unservable])
    if not problem.orders:
        return proposal
    data = problem.model().data()
    initial = Solution(data, problem.constructive_routes())
    # The cap counts from the call: measuring the orders and building the model are part of
    # the wait an associate sees. The clock is only read between iterations, so a little is
    # kept back for the last one and for reading the plan out.
    cap = max(0.0, time_limit_s - (time.perf_counter() - began) - CAP_MARGIN_S)
    stop = MultipleCriteria([NoImprovement(no_improvement_iterations), MaxRuntime(cap)])
    params = SolveParams(ils=IteratedLocalSearchParams(history_length=HISTORY_LENGTH))
    result = solve(data, stop, seed, collect_stats=False, display=False, params=params, initial_solution=initial)
    # The best plan starts as the (feasible) constructive one and is only replaced by a
    # cheaper feasible one; the check is a guard, not a branch expected to run.
    best = result.best if result.best.is_feasible() else initial
    proposal.runtime_s = time.perf_counter() - began
    proposal.batches = _batches(problem, best)
    proposal.distance_m = sum(b.route_meters for b in proposal.batches)
    return proposal


def _batches(problem: BatchingProblem, solution: Solution) -> list[ProposedBatch]:
    batches = []
    for route in solution.routes():
        visits = [activity.idx for activity in route if activity.is_client()]  # client indices, in order
        batches.append(
            ProposedBatch(
                order_ids=[problem.orders[v].pk for v in visits],
                route_meters=route.distance(),
                route_seconds=route.duration(),
                totes=sum(problem.orders[v].totes for v in visits),
            )
        )
    return batches
