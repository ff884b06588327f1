"""Dispatch tests run in the same dispatch-ready zone (and its store) as the orders tests."""

from orders.tests.conftest import store, zone  # noqa: F401 - pytest fixtures, shared on purpose
