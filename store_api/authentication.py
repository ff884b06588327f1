"""`Authorization: Api-Key <key>` for a store's e-commerce system.

The request is authenticated as no user (AnonymousUser) and `request.auth` is the
StoreApiKey; views scope every query to `request.auth.store`.
"""

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from stores.models import StoreApiKey, hash_api_key


class StoreApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header.startswith(f"{self.keyword} "):
            return None
        raw = header[len(self.keyword) + 1 :].strip()
        if not raw:
            raise exceptions.AuthenticationFailed("Empty API key.")
        key = (
            StoreApiKey.objects.select_related("store")
            .filter(key_hash=hash_api_key(raw), revoked_at__isnull=True, store__is_active=True)
            .first()
        )
        if key is None:
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        # Cheap "last used" that avoids a write on every request.
        now = timezone.now()
        if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
            StoreApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        return (AnonymousUser(), key)

    def authenticate_header(self, request):
        return self.keyword


class StoreApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = StoreApiKeyAuthentication
    name = "storeApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization", "description": "Api-Key <key>"}
