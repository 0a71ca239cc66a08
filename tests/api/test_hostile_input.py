"""Hostile input over real HTTP, on memory, SQLite and PostgreSQL.

A JSON body may hold a lone surrogate, escaped (``"\\ud800"``) or as raw UTF-8-style bytes
(``b"\\xed\\xa0\\x80"``, which ``json.loads`` decodes with surrogatepass): both once got past the
route's schema and the library's checks and failed in the storage or in the response (500, and
on memory the customer was stored first). Both are a 422 validation problem now, with nothing
written. A problem lists at most 100 field errors and says how many more there were.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from qzpay import Billing
from qzpay.api import APIKeyAuth, create_app
from qzpay.api.problems import PROBLEM_MEDIA_TYPE
from qzpay.errors import MAX_FIELD_ERRORS
from tests.api.live import API_KEY, LiveServer, serving

UNICODE_ERROR = "must be valid Unicode text (no lone surrogates)"

# (JSON body fields with "{s}" where the surrogate goes, reported field, reported code)
BODY_FIELDS = [
    ({"email": "a{s}@example.com"}, "email", "invalid_unicode"),
    ({"name": "Jo{s}hn"}, "name", "invalid_unicode"),
    ({"phone": "+14155552671{s}"}, "phone", "invalid_unicode"),
    ({"address": {"line1": "1 Main{s} St"}}, "address.line1", "invalid_unicode"),
    ({"address": {"line2": "{s}"}}, "address.line2", "invalid_unicode"),
    ({"address": {"city": "San{s}"}}, "address.city", "invalid_unicode"),
    ({"address": {"state": "C{s}A"}}, "address.state", "invalid_unicode"),
    ({"address": {"postal_code": "94{s}105"}}, "address.postal_code", "invalid_unicode"),
    ({"address": {"country": "U{s}"}}, "address.country", "invalid_unicode"),
    ({"metadata": {"k{s}": "v"}}, "metadata.k\\ud800", "invalid_unicode"),
    ({"metadata": {"k": "v{s}"}}, "metadata.k", "invalid_unicode"),
    # Caught by the route's own schema, which cannot read such a key of a model at all: it
    # reports the object holding it.
    ({"x{s}": "y"}, "body", "invalid_unicode"),
    ({"address": {"x{s}": "y"}}, "address", "invalid_unicode"),
]
IDS = [f"{field}:{code}" for _, field, code in BODY_FIELDS]


def fill(template: Any) -> Any:
    if isinstance(template, str):
        return template.replace("{s}", "\ud800")
    if isinstance(template, dict):
        return {fill(key): fill(value) for key, value in template.items()}
    return template


def encode(document: dict[str, Any], encoding: str) -> bytes:
    """The body as a client sends it: ``\\ud800`` escapes, or the surrogate's own bytes."""
    if encoding == "escaped":
        text = json.dumps(document)  # ensure_ascii: "\ud800" stays an escape
        assert "\\ud800" in text
        return text.encode("ascii")
    raw = json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass")
    assert b"\xed\xa0\x80" in raw
    return raw


def send(client: httpx.Client, method: str, url: str, body: bytes) -> httpx.Response:
    return client.request(method, url, content=body, headers={"content-type": "application/json"})


def assert_validation_problem(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = response.json()
    assert body["code"] == "validation_error"
    assert body["status"] == 422
    return body


def stored(client: httpx.Client) -> tuple[int, int]:
    """(customers, events) in the store."""
    customers = client.get("/customers", params={"include_deleted": "true", "limit": 100})
    events = client.get("/events", params={"limit": 1000})
    assert customers.status_code == events.status_code == 200
    return customers.json()["total"], len(events.json()["data"])


# Creates send the surrogate escaped, updates as raw bytes; the all-fields test sends both.


@pytest.mark.parametrize(("fields", "field", "code"), BODY_FIELDS, ids=IDS)
def test_lone_surrogate_in_a_json_body_is_a_422_on_create(
    client: httpx.Client, fields: dict[str, Any], field: str, code: str
) -> None:
    document = {"email": "user@example.com", **fill(fields)}
    response = send(client, "POST", "/customers", encode(document, "escaped"))
    body = assert_validation_problem(response)
    assert [(e["field"], e["code"]) for e in body["errors"]] == [(field, code)]
    if field not in ("body", "address"):  # the library's own message
        assert body["errors"][0]["message"] == UNICODE_ERROR
    assert body["omitted"] == 0
    assert stored(client) == (0, 0)


@pytest.mark.parametrize(("fields", "field", "code"), BODY_FIELDS, ids=IDS)
def test_lone_surrogate_in_a_json_body_is_a_422_on_update(
    client: httpx.Client, fields: dict[str, Any], field: str, code: str
) -> None:
    created = client.post(
        "/customers", json={"email": "user@example.com", "name": "Ann", "metadata": {"k": "v"}}
    )
    assert created.status_code == 201, created.text
    url = f"/customers/{created.json()['id']}"
    body = assert_validation_problem(send(client, "PATCH", url, encode(fill(fields), "raw")))
    assert [(e["field"], e["code"]) for e in body["errors"]] == [(field, code)]
    assert client.get(url).json() == created.json()
    assert stored(client) == (1, 1)


@pytest.mark.parametrize("encoding", ["escaped", "raw"])
def test_lone_surrogate_in_a_key_the_schema_rejects_is_reported_encodable(
    client: httpx.Client, encoding: str
) -> None:
    document = {"email": "user@example.com", "metadata": {"k\ud800": 5}}
    body = assert_validation_problem(send(client, "POST", "/customers", encode(document, encoding)))
    [error] = body["errors"]
    assert error["field"].startswith("metadata.k")
    assert error["code"] == "invalid_type"
    assert stored(client) == (0, 0)


@pytest.mark.parametrize("encoding", ["escaped", "raw"])
def test_lone_surrogates_in_every_field_are_all_reported(
    client: httpx.Client, encoding: str
) -> None:
    document = fill(
        {
            "email": "a{s}@example.com",
            "name": "{s}",
            "phone": "{s}",
            "address": {"city": "{s}"},
            "metadata": {"k{s}": "v", "k": "{s}"},
        }
    )
    body = assert_validation_problem(send(client, "POST", "/customers", encode(document, encoding)))
    assert {e["field"] for e in body["errors"]} == {
        "email",
        "name",
        "phone",
        "address.city",
        "metadata.k\\ud800",
        "metadata.k",
    }
    assert body["detail"] == "The request has 6 invalid fields."
    assert stored(client) == (0, 0)


def test_a_body_that_is_not_utf8_at_all_is_a_client_error(client: httpx.Client) -> None:
    response = send(client, "POST", "/customers", b'{"email": "a@example.com", "name": "\xff"}')
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert stored(client) == (0, 0)


# -- at most MAX_FIELD_ERRORS field errors in a problem -------------------------------------


@pytest.fixture(scope="module")
def memory_server() -> Iterator[LiveServer]:
    billing = Billing("memory://")
    with serving(create_app(billing, auth=APIKeyAuth(API_KEY)), billing) as server:
        yield server


@pytest.fixture
def memory_client(memory_server: LiveServer) -> Iterator[httpx.Client]:
    with memory_server.client() as http:
        yield http


@pytest.mark.parametrize(
    ("metadata", "code"),
    [
        ({f"key{i}[": "v" for i in range(5000)}, "invalid_key"),  # the library's checks
        ({f"key{i}": "v\ud800" for i in range(5000)}, "invalid_unicode"),
        ({f"key{i}": i for i in range(5000)}, "invalid_type"),  # the route's schema
    ],
    ids=["invalid_key", "invalid_unicode", "invalid_type"],
)
def test_5000_bad_metadata_keys_give_100_errors_and_the_count_of_the_rest(
    memory_client: httpx.Client, metadata: dict[str, Any], code: str
) -> None:
    request = json.dumps({"email": "user@example.com", "metadata": metadata}).encode()
    response = send(memory_client, "POST", "/customers", request)
    body = assert_validation_problem(response)
    assert len(body["errors"]) == MAX_FIELD_ERRORS
    assert {e["code"] for e in body["errors"]} == {code}
    assert body["omitted"] == 5000 - MAX_FIELD_ERRORS
    assert body["detail"] == "The request has 5000 invalid fields. The first 100 are listed."
    assert len(response.content) < 20_000 < len(request)
    assert stored(memory_client) == (0, 0)


def test_100_bad_fields_omit_nothing(memory_client: httpx.Client) -> None:
    metadata = {f"key{i}[": "v" for i in range(MAX_FIELD_ERRORS)}
    response = memory_client.post(
        "/customers", json={"email": "user@example.com", "metadata": metadata}
    )
    body = assert_validation_problem(response)
    assert (len(body["errors"]), body["omitted"]) == (MAX_FIELD_ERRORS, 0)


def test_the_problem_schema_documents_omitted() -> None:
    document = create_app(Billing("memory://"), auth=APIKeyAuth(API_KEY)).openapi()
    problem = document["paths"]["/customers"]["post"]["responses"]["422"]["content"][
        PROBLEM_MEDIA_TYPE
    ]["schema"]
    assert problem["properties"]["omitted"]["anyOf"][0] == {"type": "integer", "minimum": 0}
    assert "at most 100" in problem["properties"]["errors"]["description"]
