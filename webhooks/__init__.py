"""Webhooks: what outside providers post to us, each checked on its raw body and handled once
per event id. Mounted at /webhooks/ (spark/urls.py)."""
