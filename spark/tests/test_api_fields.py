"""Decimal fields of the API that round extra decimals (spark.api.fields), and what the
OpenAPI schema says about them."""

from decimal import Decimal

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework import serializers

from spark.api.fields import CoordinateField, RoundedDecimalField


class Point(serializers.Serializer):
    lat = CoordinateField(axis="lat")
    lng = CoordinateField(axis="lng", required=False, allow_null=True)
    weight = RoundedDecimalField(
        max_digits=6, decimal_places=1, min_value=Decimal("0.1"), max_value=Decimal(500), required=False
    )


def errors(data) -> dict:
    s = Point(data=data)
    assert not s.is_valid()
    return s.errors


def valid(data) -> dict:
    s = Point(data=data)
    assert s.is_valid(), s.errors
    return s.validated_data


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (36.16123456789, Decimal("36.161235")),
        ("36.1612344999", Decimal("36.161234")),
        (-90, Decimal("-90.000000")),
        ("90.0000000", Decimal("90.000000")),
        (1e-9, Decimal("0.000000")),
    ],
)
def test_coordinates_keep_six_decimals(sent, kept):
    assert valid({"lat": sent})["lat"] == kept


@pytest.mark.parametrize(
    ("sent", "message"),
    [
        (90.0000001, "less than or equal"),
        ("-90.1", "greater than or equal"),
        (1e300, "less than or equal"),
        ("1e999999", "less than or equal"),
        (200, "less than or equal"),
    ],
)
def test_the_range_applies_to_the_value_as_sent(sent, message):
    assert message in str(errors({"lat": sent})["lat"])


@pytest.mark.parametrize("sent", ["north", "", "NaN", "Infinity", True, [], {}])
def test_not_a_number_is_refused(sent):
    assert "lat" in errors({"lat": sent})


def test_optional_and_null():
    assert valid({"lat": 1, "lng": None})["lng"] is None
    assert valid({"lat": 1, "weight": 0.14})["weight"] == Decimal("0.1")
    assert "weight" in errors({"lat": 1, "weight": 0.09})  # below 0.1 as sent, even if it would round up
    assert "weight" in errors({"lat": 1, "weight": 500.04})  # above 500 as sent


def test_output_keeps_the_decimal_field_shape():
    assert Point({"lat": Decimal("36.1"), "lng": Decimal("-86.5"), "weight": Decimal("2")}).data == {
        "lat": "36.100000",
        "lng": "-86.500000",
        "weight": "2.0",
    }


@pytest.mark.django_db
def test_schema_requests_take_any_number_in_range_responses_say_what_is_written():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    assert components["AddressRequest"]["properties"]["lat"] == {"type": "number", "minimum": -90, "maximum": 90}
    assert components["RouteRequest"]["properties"]["dest_lng"] == {"type": "number", "minimum": -180, "maximum": 180}
    weight = components["OrderIntakeRequest"]["properties"]["weight_lb"]
    assert (weight["type"], weight["minimum"], weight["maximum"]) == ("number", 0.1, 500)
    assert "pattern" not in weight and "multipleOf" not in weight
    assert components["PositionInRequest"]["properties"]["lat"]["nullable"] is True
    assert components["Route"]["properties"]["origin_lat"] == {
        "type": "string",
        "format": "decimal",
        "pattern": r"^-?\d{1,3}\.\d{6}$",
    }
