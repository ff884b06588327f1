"""Serializer fields shared by every API surface."""

from decimal import Decimal

from rest_framework import serializers

from spark import geo


class CoordinateField(serializers.DecimalField):
    """A latitude (axis "lat") or longitude ("lng"). Phones and store systems send as many
    decimals as they have; the columns keep six (about 10 cm), so extra digits are rounded
    half-up (spark.geo.round_coordinate) instead of refused. Range and "not a number" are
    still the field's own 400 messages."""

    def __init__(self, *, axis: geo.Axis, **kwargs):
        limit = geo.COORDINATE_LIMITS[axis]
        super().__init__(max_digits=9, decimal_places=6, min_value=Decimal(-limit), max_value=Decimal(limit), **kwargs)

    def to_internal_value(self, data):
        if data not in (None, "") and not isinstance(data, bool):
            try:
                data = geo.round_coordinate(data)
            except ValueError:
                pass  # the field itself says "A valid number is required."
        return super().to_internal_value(data)
