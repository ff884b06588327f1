"""Each domain constant is defined once and imported everywhere (issue 9, item 4): a copy that
drifts makes the dashboard, the driver app, the tracking ETA and the batcher disagree."""

import re
from pathlib import Path

from spark import geo

ROOT = Path(__file__).resolve().parents[2]
APPS = ("accounts", "stores", "drivers", "orders", "payments", "dispatch", "spark", "bench")


def sources():
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" not in path.parts:
                yield path, path.read_text(encoding="utf-8")


def test_metres_per_mile_is_written_only_in_spark_geo():
    # Tests may spell the number out (they check the helpers against it); code may not.
    copies = [
        str(path.relative_to(ROOT))
        for path, text in sources()
        if "tests" not in path.parts and path != ROOT / "spark/geo.py" and re.search(r"1609\.344", text)
    ]
    assert copies == []
    assert geo.METERS_PER_MILE == 1609.344


def test_time_at_each_door_is_defined_once_in_spark_geo():
    definitions = [
        str(path.relative_to(ROOT))
        for path, text in sources()
        if re.search(r"^\s*STOP_SERVICE_SECONDS\s*=", text, re.M)
    ]
    assert definitions == ["spark/geo.py"]


def test_the_area_a_driver_sees_before_the_claim_is_rounded_in_one_place():
    copies = [
        str(path.relative_to(ROOT))
        for path, text in sources()
        if "tests" not in path.parts and re.search(r"round\(float\([^)]*\.(lat|lng)\), 2\)", text)
    ]
    assert copies == []
    assert geo.area_coordinate("36.161234") == 36.16
