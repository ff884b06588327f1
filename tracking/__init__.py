"""The customer's tracking page `/t/<token>` (no login: the unguessable token is the credential).

Five views share one lookup, one rate limit and one set of privacy headers:
- `tracking`: the phone-first page;
- `tracking_status`: the same facts as JSON, polled by static/js/tracking.js every 15 s;
- `tracking_photo`: the proof-of-delivery photo, streamed from storage only for the right
  token and only once the order is delivered (never a guessable media URL);
- `tracking_tip`: the customer raises their tip (CSRF-checked POST, its own idempotency key),
  offered only for a tip on a card saved with the order (payments.tips_selectors.tip_can_raise);
- `tracking_rate`: the customer rates the delivery 1-5 with a note, once, after delivery
  (orders.ratings).

What the customer may see (the page and the JSON follow the same rules, both built from
`tracking_state`): the driver's first name and vehicle once a driver has the batch (never the
last name, phone or plate); the driver's position, rounded to a ~200 m grid, only while the batch
is picked up and this order's stop is the next one in sequence (never at other customers' stops,
never before pickup, never after delivery); nothing about the other stops but how many come first.
"""
