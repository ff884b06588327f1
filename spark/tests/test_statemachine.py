"""spark.statemachine.transition: the generic guarded status change every service uses.

Exercised through Order/OrderEvent (any model with `status` and an event table would do).
"""

from unittest import mock

import pytest
from django.db.models import QuerySet

from orders.models import Order, OrderEvent
from orders.tests.factories import OrderFactory
from spark.errors import Conflict, InvalidTransition
from spark.statemachine import TransitionResult, transition

pytestmark = pytest.mark.django_db

S = Order.Status


def _go(order, to, **kwargs):
    return transition(order, to=to, allowed=Order.TRANSITIONS, event_model=OrderEvent, event_fk="order", **kwargs)


def _state(order):
    row = Order.objects.get(pk=order.pk)
    return row.status, row.status_changed_at, row.cancel_reason, OrderEvent.objects.filter(order=order).count()


def test_allowed_transition_updates_refreshes_and_writes_an_event(ops_user):
    order = OrderFactory()
    result = _go(
        order, S.CANCELLED, actor=ops_user, reason="customer called", updates={"cancel_reason": "customer called"}
    )
    assert result == TransitionResult(True, S.RECEIVED, S.CANCELLED)
    # the instance was refreshed from the row, including the extra columns
    assert (order.status, order.cancel_reason) == (S.CANCELLED, "customer called")
    event = OrderEvent.objects.get(order=order)
    assert (event.from_status, event.to_status, event.actor, event.reason) == (
        "received",
        "cancelled",
        ops_user,
        "customer called",
    )


def test_guard_not_matching_is_a_conflict_and_writes_nothing():
    # given an order, and a guard condition that the row does not meet (as if a concurrent
    # writer had changed what the guard checks between our read and our UPDATE)
    order = OrderFactory()
    before = _state(order)
    # when we transition with that guard
    with pytest.raises(Conflict):
        _go(order, S.CANCELLED, updates={"cancel_reason": "x"}, extra_filter={"tip_cents": -1})
    # then nothing was written: status, timestamp, other columns, events
    assert _state(order) == before


def test_guard_matching_lets_the_change_through():
    order = OrderFactory(tip_cents=500)
    assert _go(order, S.CANCELLED, extra_filter={"tip_cents": 500}).changed


def _racing_update(pk, concurrent_status):
    """Patch QuerySet.update so that a 'concurrent writer' sets `concurrent_status` just before
    our guarded UPDATE runs: the race, made deterministic. (It shares our connection, so its
    write is rolled back with ours when transition() raises; a real writer's would stand.)"""
    original = QuerySet.update
    state = {"raced": False}

    def update(self, **kwargs):
        if not state["raced"] and self.model is Order:
            state["raced"] = True
            original(Order.objects.filter(pk=pk), status=concurrent_status)
        return original(self, **kwargs)

    return mock.patch.object(QuerySet, "update", update)


def test_status_changed_in_between_is_a_conflict():
    order = OrderFactory()
    with _racing_update(order.pk, S.BATCHED), pytest.raises(Conflict):
        _go(order, S.CANCELLED)
    # our change was not applied and we wrote no event
    assert Order.objects.get(pk=order.pk).status != S.CANCELLED
    assert OrderEvent.objects.filter(order=order).count() == 0


def test_concurrent_writer_reaching_the_same_status_is_a_no_op():
    order = OrderFactory()
    with _racing_update(order.pk, S.CANCELLED):
        result = _go(order, S.CANCELLED)
    assert result == TransitionResult(False, S.CANCELLED, S.CANCELLED)
    assert order.status == S.CANCELLED
    assert OrderEvent.objects.filter(order=order).count() == 0


def test_forbidden_transition_raises_and_writes_nothing():
    order = OrderFactory()
    before = _state(order)
    with pytest.raises(InvalidTransition) as exc:
        _go(order, S.DELIVERED)
    assert exc.value.code == "invalid_transition"
    assert "received" in exc.value.message and "delivered" in exc.value.message
    assert _state(order) == before


def test_same_status_is_a_no_op_even_from_a_terminal_status():
    order = OrderFactory(status=S.CANCELLED)
    before = _state(order)
    assert _go(order, S.CANCELLED) == TransitionResult(False, S.CANCELLED, S.CANCELLED)
    assert _state(order) == before


def test_stale_instance_is_judged_by_the_row():
    # given two copies of one order; one of them moves it on
    order = OrderFactory()
    stale = Order.objects.get(pk=order.pk)
    _go(order, S.CANCELLED)
    # when the stale copy asks for a move allowed only from its old status
    with pytest.raises(InvalidTransition):
        _go(stale, S.BATCHED)
    # then the row decided, and the stale copy did not change it
    assert Order.objects.get(pk=order.pk).status == S.CANCELLED


def test_deleted_row_is_a_conflict():
    order = OrderFactory()
    Order.objects.filter(pk=order.pk).delete()
    with pytest.raises(Conflict):
        _go(order, S.CANCELLED)
    assert OrderEvent.objects.count() == 0


def test_event_failure_rolls_back_the_status_change():
    order = OrderFactory()
    before = _state(order)
    with mock.patch.object(OrderEvent.objects, "create", side_effect=RuntimeError("disk full")):
        with pytest.raises(RuntimeError):
            _go(order, S.CANCELLED)
    assert _state(order) == before
