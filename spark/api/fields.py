"""Serializer fields shared by the API surfaces."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from rest_framework import serializers
from rest_framework.settings import api_settings

from spark import geo


class RoundedDecimalField(serializers.DecimalField):
    """A decimal in a range, sent as a JSON number (or a numeric string), with any number of
    decimals: extra digits are rounded half up to `decimal_places` instead of refused (a GPS
    or a scale gives more than the column keeps). The range applies to the value as sent, so
    the schema's minimum/maximum say exactly what is accepted.

    Output stays what DecimalField gives (a string unless coerce_to_string=False), so
    responses keep their shape.
    """

    def __init__(self, *, max_digits: int, decimal_places: int, min_value: Decimal, max_value: Decimal, **kwargs):
        super().__init__(
            max_digits=max_digits, decimal_places=decimal_places, min_value=min_value, max_value=max_value, **kwargs
        )
        # DecimalField keeps these as optional; here they are required, so keep them typed.
        self._range = (min_value, max_value)
        self._step = Decimal(1).scaleb(-decimal_places)

    def to_internal_value(self, data):
        if isinstance(data, int | float | str | Decimal) and not isinstance(data, bool):
            try:
                number = Decimal(str(data).strip())
            except InvalidOperation:
                number = None  # DecimalField says "A valid number is required."
            if number is not None and number.is_finite():
                min_value, max_value = self._range
                if number > max_value:
                    self.fail("max_value", max_value=max_value)
                if number < min_value:
                    self.fail("min_value", min_value=min_value)
                data = number.quantize(self._step, rounding=ROUND_HALF_UP)
        return super().to_internal_value(data)


class CoordinateField(RoundedDecimalField):
    """A latitude (axis "lat") or longitude ("lng") in degrees, kept to six decimals (about
    10 cm), the precision of our coordinate columns; rounded half-up like spark.geo.coordinate,
    the rule every service applies to coordinates that reach it another way."""

    def __init__(self, *, axis: geo.Axis, **kwargs):
        limit = geo.COORDINATE_LIMITS[axis]
        super().__init__(max_digits=9, decimal_places=6, min_value=Decimal(-limit), max_value=Decimal(limit), **kwargs)


def _json_number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


class RoundedDecimalFieldSchema(OpenApiSerializerFieldExtension):
    """In a request: any number in the range (decimals are rounded, see above). In a response:
    what the field writes."""

    target_class = RoundedDecimalField
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        field = self.target
        writes_strings = getattr(field, "coerce_to_string", api_settings.COERCE_DECIMAL_TO_STRING)
        if direction == "response" and writes_strings:
            whole = field.max_digits - field.decimal_places
            return {
                "type": "string",
                "format": "decimal",
                "pattern": rf"^-?\d{{1,{whole}}}\.\d{{{field.decimal_places}}}$",
            }
        return {"type": "number", "minimum": _json_number(field.min_value), "maximum": _json_number(field.max_value)}
