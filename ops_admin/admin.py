"""Imported by Django's admin autodiscovery: registers every ops admin page."""

from ops_admin import accounts, dispatch, drivers, orders, outbox, payments, screening, stores, support  # noqa: F401
