import json

from django import template
from django.conf import settings
from django.utils.html import escape
from django.utils.translation import gettext_lazy as _

from spark.geo import format_distance
from spark.money import format_cents

register = template.Library()


@register.filter
def cents(value) -> str:
    return format_cents(int(value or 0))


@register.filter
def distance(meters) -> str:
    """Metres as a driver reads them: "450 ft" / "2.3 mi" (spark.geo.format_distance)."""
    return format_distance(meters)


@register.filter
def duration_minutes(value) -> str:
    """A timedelta as "12 min" / "1 h 05 min"."""
    if value is None:
        return "–"
    minutes = int(value.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


@register.filter
def get_item(mapping, key):
    return mapping.get(key, 0)


@register.filter
def json_attr(value) -> str:
    """JSON safe to put inside a single-quoted HTML attribute."""
    return escape(json.dumps(value))


@register.simple_tag
def map_tile_url() -> str:
    """The Leaflet tile URL template every map uses; the Content-Security-Policy allows its host."""
    return settings.SPARK_MAP_TILE_URL


# Where a sign-in leads, by the path it returns to: the login page says which app it opens.
_ENTRANCES = (
    ("/driver/", _("the Spark Driver app")),
    ("/dashboard/", _("the store dashboard")),
    ("/admin/", _("Spark ops (the admin)")),
)


@register.simple_tag
def entrance_app(next_url) -> str:
    """The app a sign-in opens, named for the login page's heading ("" when it is the home
    page, which sends each person on to their own app)."""
    path = str(next_url or "")
    for prefix, name in _ENTRANCES:
        if path.startswith(prefix):
            return str(name)
    return ""
