"""The OpenAPI schema tells clients which errors each operation gives (spark.api.schema), and
what our one error body looks like. tests/test_schemathesis.py checks the answers against it."""

import pytest
from drf_spectacular.generators import SchemaGenerator

ERROR_REF = "#/components/schemas/Error"


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema) -> list[tuple[str, dict]]:
    found = [(f"{method.upper()} {path}", op) for path, item in schema["paths"].items() for method, op in item.items()]
    assert len(found) > 20  # every API operation, not an empty schema
    return found


def documented(operation) -> set[int]:
    return {int(code) for code in operation["responses"]}


def test_every_error_response_is_the_error_body(schema):
    for name, operation in operations(schema):
        for code, response in operation["responses"].items():
            if int(code) >= 400:
                assert response["content"] == {"application/json": {"schema": {"$ref": ERROR_REF}}}, (name, code)
                assert response["description"], (name, code)


def test_common_errors_follow_from_what_the_operation_is(schema):
    for name, operation in operations(schema):
        codes = documented(operation)
        params = operation.get("parameters", [])
        if operation.get("security") and {} not in operation["security"]:
            assert {401, 403} <= codes, name
        if any(p["in"] == "path" for p in params):
            assert 404 in codes, name
        if "requestBody" in operation:
            assert {400, 413, 415} <= codes, name
        if any(p["in"] == "query" for p in params):
            assert 400 in codes, name


@pytest.mark.parametrize(
    ("operation", "codes"),
    [
        ("POST /api/v1/auth/token/", {200, 400, 403, 413, 415, 429}),  # public: no 401
        ("GET /api/v1/me/", {200, 401, 403}),
        ("POST /api/v1/driver/offers/{offer_id}/accept/", {200, 401, 403, 404, 409, 410}),
        ("POST /api/v1/driver/batches/{batch_id}/claim/", {200, 202, 401, 403, 404, 409, 429}),
        ("POST /api/v1/driver/location/", {200, 400, 401, 403, 413, 415, 429}),
        ("POST /api/v1/driver/slots/{slot_id}/claim/", {200, 400, 401, 403, 404, 409, 410}),
        ("POST /api/v1/driver/slots/{slot_id}/check-in/", {200, 400, 401, 403, 404, 409, 410, 413, 415}),
        ("GET /api/v1/driver/batches/active/", {200, 401, 403, 404}),
        ("POST /api/v1/orders/", {200, 201, 400, 401, 403, 404, 409, 413, 415}),
        ("POST /api/v1/orders/{id}/cancel/", {200, 400, 401, 403, 404, 409, 413, 415}),
        ("GET /api/v1/orders/", {200, 400, 401, 403}),
        ("GET /api/v1/driver/earnings/", {200, 401, 403}),
        ("GET /api/v1/driver/earnings/batches/", {200, 400, 401, 403}),
        ("GET /api/v1/driver/earnings/batches/{batch_id}/", {200, 401, 403, 404}),
        ("GET /api/v1/driver/earnings/statements/{week}/", {200, 400, 401, 403, 404}),
        ("GET /api/v1/driver/earnings/payouts/", {200, 400, 401, 403}),
    ],
)
def test_operation_specific_errors(schema, operation, codes):
    assert documented(dict(operations(schema))[operation]) == codes


def test_request_bodies_are_json_except_the_photo_upload(schema):
    for name, operation in operations(schema):
        if "requestBody" in operation:
            expected = ["multipart/form-data"] if name.endswith("/deliver/") else ["application/json"]
            assert list(operation["requestBody"]["content"]) == expected, name


def test_a_form_field_is_never_nullable(schema):
    deliver = schema["components"]["schemas"]["DeliverRequest"]["properties"]
    assert not any("nullable" in prop for prop in deliver.values())
    # the same fields in JSON bodies may be null (location off)
    assert schema["components"]["schemas"]["FailRequest"]["properties"]["lat"]["nullable"] is True


def test_401_and_429_name_their_headers(schema):
    for name, operation in operations(schema):
        responses = operation["responses"]
        if "401" in responses:
            assert "WWW-Authenticate" in responses["401"]["headers"], name
        if "429" in responses:
            assert responses["429"]["headers"]["Retry-After"]["schema"]["type"] == "integer", name


def test_each_operation_lists_the_credentials_it_lets_in(schema):
    security = {name: [next(iter(r)) for r in op.get("security", []) if r] for name, op in operations(schema)}
    assert security["POST /api/v1/orders/"] == ["storeApiKey"]
    assert security["GET /api/v1/driver/offers/"] == ["cookieAuth", "tokenAuth"]
    assert security["GET /api/v1/me/"] == ["cookieAuth", "tokenAuth", "storeApiKey"]
    assert security["POST /api/v1/auth/token/"] == []


def test_the_earnings_statement_is_json_or_csv_and_its_errors_json(schema):
    statement = dict(operations(schema))["GET /api/v1/driver/earnings/statements/{week}/"]
    assert list(statement["responses"]["200"]["content"]) == ["application/json", "text/csv"]
    assert statement["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Statement")
    params = {p["name"]: p for p in statement["parameters"]}
    assert params["week"]["schema"] == {"type": "string", "format": "date"}
    assert sorted(params["format"]["schema"]["enum"]) == ["csv", "json"]
    batches = dict(operations(schema))["GET /api/v1/driver/earnings/batches/"]
    assert batches["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/PaginatedBatchEarningsList"
    )
    assert [next(iter(r)) for r in batches["security"]] == ["cookieAuth", "tokenAuth"]
