"""Hostile request bodies on the JSON API: too large (413), too deeply nested, not a JSON object,
not JSON at all. Each is a clear 4xx in the one error body, for anonymous callers (the token
endpoint), store integrations (order intake) and drivers alike; nothing is changed."""

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import ParseError
from rest_framework.test import APIClient

from orders.models import Order
from orders.tests.helpers import jpeg, make_batch, snapshot
from spark.api.parsers import MAX_JSON_DEPTH, JSONParser, RequestTooLarge
from stores.tests.factories import StoreApiKeyFactory

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/v1/auth/token/"
INTAKE_URL = "/api/v1/orders/"
LOCATION_URL = "/api/v1/driver/location/"
ERROR_KEYS = {"detail", "code", "fields"}


@pytest.fixture
def store_api(store):
    StoreApiKeyFactory(store=store, raw_key="bodies-store-key-0123456789")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Api-Key bodies-store-key-0123456789")
    return client


@pytest.fixture
def driver_api(driver):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=driver.user).key}")
    return client


@pytest.fixture
def callers(store_api, driver_api):
    """(client, url) for each kind of caller: anonymous, store integration, driver."""
    return [(APIClient(), TOKEN_URL), (store_api, INTAKE_URL), (driver_api, LOCATION_URL)]


def error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == ERROR_KEYS and body["code"] == code, body
    return body


def post_raw(client, url, raw: bytes | str, content_type="application/json", **extra):
    return client.post(url, data=raw, content_type=content_type, **extra)


def nested_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


# --- size (413) -----------------------------------------------------------------------------


def test_a_10_mb_intake_body_is_refused_with_413_and_creates_nothing(store_api, store):
    body = json.dumps({"store": store.number, "external_id": "BIG-1", "notes": "x" * 10_000_000})
    detail = error(post_raw(store_api, INTAKE_URL, body), 413, "request_too_large")["detail"]
    assert "1 MB" in detail
    assert not Order.objects.exists()


def test_the_limit_is_a_setting_and_applies_to_every_caller(callers, settings):
    settings.SPARK_API_MAX_BODY_BYTES = 2048
    for client, url in callers:
        ok_size = json.dumps({"email": "a@example.test", "password": "x" * 1900})
        assert post_raw(client, url, ok_size).status_code != 413, url
        too_big = json.dumps({"email": "a@example.test", "password": "x" * 2100})
        body = error(post_raw(client, url, too_big), 413, "request_too_large")
        assert "2 KB" in body["detail"]


def test_a_declared_content_length_over_the_limit_is_refused_before_reading(store_api, settings):
    settings.SPARK_API_MAX_BODY_BYTES = 2048
    # The body is tiny but the header claims 5 MB: the test client's input stream refuses a read
    # past its real end, so a 413 here proves the parser answered from the header alone.
    response = post_raw(store_api, INTAKE_URL, b"{}", CONTENT_LENGTH=str(5 * 1024 * 1024))
    error(response, 413, "request_too_large")


class _Request:
    META: dict = {}  # a chunked body: no Content-Length


def test_a_streamed_body_without_content_length_is_capped_while_reading(settings):
    settings.SPARK_API_MAX_BODY_BYTES = 1024
    stream = io.BytesIO(b'{"a": "' + b"x" * 10_000 + b'"}')
    with pytest.raises(RequestTooLarge):
        JSONParser().parse(stream, "application/json", {"request": _Request()})
    assert stream.tell() <= 1025  # read one byte past the cap, no more
    small = io.BytesIO(b'{"a": 1}')
    assert JSONParser().parse(small, "application/json", {"request": _Request()}) == {"a": 1}


# --- nesting (400) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 1000 + "]" * 1000,
        nested_object(1000),
        '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}",
        nested_object(MAX_JSON_DEPTH + 1),
    ],
    ids=["list-1000", "object-1000", "list-100000", "just-over-the-limit"],
)
def test_deeply_nested_json_is_a_400_for_every_caller(callers, raw):
    for client, url in callers:
        body = error(post_raw(client, url, raw), 400, "parse_error")
        assert f"nested more than {MAX_JSON_DEPTH} levels" in body["detail"], url
    assert not Order.objects.exists()


def test_nesting_up_to_the_limit_is_parsed_and_validated_as_usual(callers):
    for client, url in callers:
        body = error(post_raw(client, url, nested_object(MAX_JSON_DEPTH)), 400, "invalid")
        assert body["fields"], url  # the serializer ran and named the fields


def test_the_depth_check_sees_through_strings_and_mixed_containers():
    parse = JSONParser().parse
    ok = {"a": [{"b": "[[[[{{{{"}]}
    assert parse(io.BytesIO(json.dumps(ok).encode()), "application/json", {"request": _Request()}) == ok
    mixed = '{"a": [' * 17 + "1" + "]}" * 17  # 34 levels, objects and lists alternating
    with pytest.raises(ParseError):
        parse(io.BytesIO(mixed.encode()), "application/json", {"request": _Request()})


# --- not a JSON object, not JSON, wrong content type ----------------------------------------


@pytest.mark.parametrize("raw", ["null", "[]", "[1, 2]", "5", '"text"', "true"])
def test_a_top_level_value_that_is_not_an_object_is_a_400(callers, raw):
    for client, url in callers:
        body = error(post_raw(client, url, raw), 400, "parse_error")
        assert body["detail"] == "The body must be a JSON object.", url


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b'{"email": "\xff\xfe"}', "UTF-8"),
        (b"{not json", "JSON parse error"),
        (b'{"email": NaN}', "JSON parse error"),
        (b'{"n": ' + b"9" * 5000 + b"}", "JSON parse error"),
    ],
    ids=["invalid-utf8", "malformed", "nan", "int-over-4300-digits"],
)
def test_bodies_that_are_not_json_are_a_400(callers, raw, words):
    for client, url in callers:
        assert words in error(post_raw(client, url, raw), 400, "parse_error")["detail"], url


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        ("hello", "text/plain"),
        ("email=a%40example.test&password=x", "application/x-www-form-urlencoded"),
        (
            '--b\r\nContent-Disposition: form-data; name="email"\r\n\r\na@example.test\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
        ),
    ],
    ids=["text", "form", "multipart"],
)
def test_json_endpoints_take_json_only(callers, raw, content_type):
    for client, url in callers:
        body = error(post_raw(client, url, raw, content_type=content_type), 415, "unsupported_media_type")
        assert content_type.split(";")[0] in body["detail"], url


def test_markup_in_text_fields_is_validated_as_text_and_never_reflected_as_html(store_api, store):
    raw = json.dumps({"store": store.number, "external_id": "<script>alert(1)</script>", "notes": "<b>x</b>"})
    response = post_raw(store_api, INTAKE_URL, raw)
    body = error(response, 400, "invalid")
    assert "external_id" in body["fields"]
    assert not Order.objects.exists()


# --- the photo upload keeps its own, larger cap ---------------------------------------------


def test_the_delivery_photo_upload_is_capped_at_two_photos_plus_the_json_limit(
    store, driver, driver_api, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    batch, (first, _) = make_batch(store, driver)
    photo = jpeg()
    size = len(photo.read())
    photo.seek(0)
    settings.SPARK_PHOTO_MAX_BYTES = size + 100
    settings.SPARK_API_MAX_BODY_BYTES = 1024  # far below one photo: the JSON cap is not the photo cap
    url = f"/api/v1/driver/stops/{first.pk}/deliver/"
    before = snapshot(batch)
    huge = SimpleUploadedFile("door.jpg", b"\xff" * (3 * size + 2048), content_type="image/jpeg")
    response = driver_api.post(url, {"photo": huge}, format="multipart")
    error(response, 413, "request_too_large")
    assert snapshot(batch) == before
    assert driver_api.post(url, {"photo": photo}, format="multipart").status_code == 200
