"""Two questions every surface asks of a request, answered in one place.

Who sent it: `client_ip`. X-Forwarded-For is written by whoever talks to us, so it is believed
for exactly settings.SPARK_TRUSTED_PROXIES hops (default 0: not at all) and no more. Each proxy
appends the address it received the request from, so with N proxies of ours in front the
client is the Nth entry from the right; anything left of it is what the client chose to send.
Every per-IP rate limit (allauth's login limits, the API token throttle, the tracking page) and
every recorded IP (background-check consent) goes through it, so one setting moves them all.

Where it may send the browser: `safe_next`. A redirect target taken from the request (`next`,
HX-Current-URL, ...) is followed only when it stays on this site, over https when the request
came over https; anything else (another host, `//host`, `/\\host`, `javascript:`) gets the
view's own default.
"""

import ipaddress

from django.conf import settings
from django.utils.http import url_has_allowed_host_and_scheme


def trusted_proxies() -> int:
    return max(0, int(getattr(settings, "SPARK_TRUSTED_PROXIES", 0) or 0))


def _clean_ip(value: str) -> str | None:
    """`value` as a canonical IP address (a port some proxies add is dropped), or None."""
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [2001:db8::1]:443
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # 203.0.113.7:443
        value = value.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def client_ip(request) -> str:
    """The client's IP address, trusting X-Forwarded-For for SPARK_TRUSTED_PROXIES hops only."""
    remote = request.META.get("REMOTE_ADDR", "") or ""
    proxies = trusted_proxies()
    if proxies:
        hops = [h for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
        if hops:
            # Fewer entries than proxies: the request entered behind the outer ones; the
            # leftmost entry was still written by a proxy of ours.
            forwarded = _clean_ip(hops[-min(proxies, len(hops))])
            if forwarded:
                return forwarded
        # No usable header from our own proxy: everything shares the proxy's address, which
        # errs on the side of limiting, never of letting through.
    return _clean_ip(remote) or remote or "unknown"


def is_safe_redirect(request, url: str | None) -> bool:
    """Whether `url` stays on this site: a path of ours, or an absolute URL of this host."""
    if not url:
        return False
    if not url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return False
    # Django also accepts scheme-less relative references ("alert(1)"): only an absolute path
    # or a full URL of ours is a place to send someone.
    return url.startswith("/") or url.lower().startswith(("http://", "https://"))


def safe_next(request, default: str, *, url: str | None = None) -> str:
    """`url` (by default the request's `next`, POST before GET) when it is safe, else `default`."""
    if url is None:
        url = request.POST.get("next") or request.GET.get("next") or ""
    return url if is_safe_redirect(request, url) else default
