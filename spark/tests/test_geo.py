import pytest
from django.template import Context, Template

from spark import geo

NASHVILLE = geo.Point(36.1627, -86.7816)
NEW_ORLEANS = geo.Point(29.9511, -90.0715)


def test_haversine_matches_known_distance():
    # Nashville to New Orleans is about 756 km as the crow flies.
    assert 750_000 < geo.haversine_m(NASHVILLE, NEW_ORLEANS) < 762_000


def test_distance_is_symmetric_and_zero_on_the_spot():
    assert geo.distance_m(NASHVILLE, NEW_ORLEANS) == geo.distance_m(NEW_ORLEANS, NASHVILLE)
    assert geo.distance_m(NASHVILLE, NASHVILLE) == 0


def test_road_distance_is_longer_than_straight_line():
    assert geo.distance_m(NASHVILLE, NEW_ORLEANS) > geo.haversine_m(NASHVILLE, NEW_ORLEANS)


def test_insertion_detour_zero_on_the_way_and_positive_off_it():
    a, b = geo.Point(36.0, -86.0), geo.Point(36.0, -86.2)
    on_the_way = geo.Point(36.0, -86.1)
    off_the_way = geo.Point(36.1, -86.1)
    assert abs(geo.insertion_detour_m(a, b, on_the_way)) <= 2
    assert geo.insertion_detour_m(a, b, off_the_way) > 10_000


def test_route_sums_legs():
    pts = [geo.Point(36.0, -86.0), geo.Point(36.0, -86.1), geo.Point(36.0, -86.2)]
    assert geo.route_m(pts) == geo.distance_m(pts[0], pts[1]) + geo.distance_m(pts[1], pts[2])
    assert geo.route_s(pts) > 0


def test_backend_is_replaceable_by_configuration(settings):
    class Fixed:
        def distance_m(self, a, b):
            return 1234

        def duration_s(self, a, b):
            return 56

    import sys
    import types

    module = types.ModuleType("fake_geo_backend")
    module.Fixed = Fixed
    sys.modules["fake_geo_backend"] = module
    settings.SPARK_GEO_BACKEND = "fake_geo_backend.Fixed"
    geo.backend.cache_clear()
    try:
        assert geo.distance_m(NASHVILLE, NEW_ORLEANS) == 1234
        assert geo.duration_s(NASHVILLE, NEW_ORLEANS) == 56
    finally:
        geo.backend.cache_clear()
        del sys.modules["fake_geo_backend"]


def test_meters_to_miles():
    assert str(geo.meters_to_miles(1609)) == "1.0"


@pytest.mark.parametrize(
    ("meters", "text"),
    [
        (0, "0 ft"),
        (3, "10 ft"),
        (137, "450 ft"),
        (160, "520 ft"),  # just under a tenth of a mile
        (161, "0.1 mi"),
        (3700, "2.3 mi"),
        (8047, "5 mi"),  # a whole number of miles reads without ".0"
        (160_934, "100 mi"),
        (1_609_344, "1,000 mi"),
    ],
)
def test_format_distance_in_miles_and_feet(meters, text):
    assert geo.format_distance(meters) == text


def test_the_distance_filter_is_the_same_helper():
    assert Template("{% load spark %}{{ m|distance }}").render(Context({"m": 137})) == "450 ft"


def test_in_a_sentence_the_units_are_words():
    assert geo.format_distance(120, words=True) == "390 feet"
    assert geo.format_distance(10_000, words=True) == "6.2 miles"
    assert geo.feet_text(250) == "820 feet"  # a check-in radius, in feet whatever its size
