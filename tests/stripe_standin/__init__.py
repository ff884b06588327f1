"""A local stand-in for Stripe's Connect API, for tests and local development (see server.py).

Tests get it from the `stripe_standin` fixture (conftest.py); by hand:
`python -m tests.stripe_standin --port 12111`, then STRIPE_API_BASE=http://127.0.0.1:12111 and
STRIPE_SECRET_KEY=sk_test_anything.
"""

from .server import DEFAULT_API_KEY, Recorded, StripeStandin, parse_form

__all__ = ["DEFAULT_API_KEY", "Recorded", "StripeStandin", "parse_form"]
