"""The demo world of `python manage.py seed_demo`: the two pilot metros, Nashville and New Orleans.

Idempotent: every row is looked up by a natural key (zone slug, store number, user email,
order (store, external id), slot (store, start, end), the orders of a batch) and only created
when missing, so a second run on the same day changes nothing. Rows that people may have moved
on during a demo (order and batch statuses, slot claims) are left as they are; only the demo
logins are put back into a usable state (password, verified email, active driver).

The data comes from a fixed random seed, so every run draws the same world; dated rows
(slots, delivery windows, document expiry dates) are placed relative to "today" in each zone's
timezone, and the day is part of each demo order's external id.

The command (spark/management/commands/seed_demo.py) draws the plan (plan.py), then applies it
in one transaction with the builders here:
- metros.py: the fixed part of the world, the zones and their stores, streets and pay;
- stores.py: zones with their pay policies, stores, the demo store API key, delivery slots;
- people.py: the demo logins and the store staff with their memberships;
- orders.py: orders with their first event and tip, and published batches;
- drivers.py: drivers in every onboarding state, and the demo drivers put on duty;
- bookkeeping.py: the tally of created and restored rows that the command reports.
"""
