"""The staff dashboard (dashboard): server-rendered pages + htmx, scoped by StoreMembership.

Surfaces sit above the apps: these views call the services and selectors of orders and
payments (stores' models and services never import them).
"""
