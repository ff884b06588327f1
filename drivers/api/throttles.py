from rest_framework.throttling import SimpleRateThrottle


class ClaimThrottle(SimpleRateThrottle):
    """Claim attempts per driver per minute, at the rate of the driver's zone. Bots that hammer
    the claim button gain nothing: inside the fair window every claim is pooled anyway, and
    past this rate they get 429 with Retry-After."""

    scope = "claim"
    rate = "30/min"

    def allow_request(self, request, view):
        driver = getattr(request, "driver", None)
        if driver is not None:
            self.num_requests, self.duration = driver.home_zone.claim_rate_per_minute, 60
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        if not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}
