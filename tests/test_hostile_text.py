"""Hostile text through the Python API and the CLI, on memory, SQLite and PostgreSQL.

A lone surrogate (``"\\ud800"``: valid in JSON and in Python strings, but not Unicode text, so
UTF-8 cannot encode it) once passed validation and failed inside the storage with
UnicodeEncodeError (an HTTP 500), sometimes after memory had stored it. It is a ValidationError
now, with code ``invalid_unicode``, exactly where NUL is one with ``invalid_character``, and
nothing is written. A ValidationError reports at most ``MAX_FIELD_ERRORS`` problems and counts
the rest.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from qzpay import Billing
from qzpay.cli import app
from qzpay.config import ENVIRONMENT_VARIABLES
from qzpay.customers.validation import Problems, text_problem
from qzpay.errors import MAX_FIELD_ERRORS, UnknownArgumentError, ValidationError, encodable

# One from each corner: the first and last surrogate, a high + low pair kept as two code points
# (what a JSON "\ud83d\ude00" is not, but a Python string can be), and what surrogateescape
# makes of an undecodable byte (a command-line argument that is not UTF-8).
SURROGATES = ["\ud800", "\udfff", "\ud83d\ude00", b"\xff".decode("utf-8", "surrogateescape")]
RAW_SURROGATE = b"\xed\xa0\x80".decode("utf-8", "surrogatepass")  # what json.loads makes of it

# (keyword argument, value with a "{s}" where the surrogate goes, reported field)
CREATE_FIELDS = [
    ("email", "a{s}@example.com", "email"),
    ("name", "Jo{s}hn", "name"),
    ("phone", "+14155552671{s}", "phone"),
    ("address", {"line1": "1 Main{s} St"}, "address.line1"),
    ("address", {"line2": "{s}"}, "address.line2"),
    ("address", {"city": "San{s}"}, "address.city"),
    ("address", {"state": "C{s}A"}, "address.state"),
    ("address", {"postal_code": "94{s}105"}, "address.postal_code"),
    ("address", {"country": "U{s}"}, "address.country"),
    ("metadata", {"k{s}": "v"}, "metadata.k{s}"),
    ("metadata", {"k": "v{s}"}, "metadata.k"),
    ("idempotency_key", "key-{s}", "idempotency_key"),
]
UPDATE_FIELDS = [f for f in CREATE_FIELDS if f[0] != "idempotency_key"]


def fill(template: Any, surrogate: str) -> Any:
    if isinstance(template, str):
        return template.replace("{s}", surrogate)
    return {fill(key, surrogate): fill(value, surrogate) for key, value in template.items()}


def field_name(template: str, surrogate: str) -> str:
    """The field path as reported: a lone surrogate in it is escaped (``\\ud800``)."""
    return encodable(fill(template, surrogate))


async def assert_nothing_written(billing: Billing, *, customers: int = 0, events: int = 0) -> None:
    page = await billing.customers.list(include_deleted=True, limit=100)
    assert page.total == customers
    assert len(await billing.events.list(limit=1000)) == events


def assert_unicode_error(error: ValidationError, field: str) -> None:
    assert error.errors == [
        {
            "field": field,
            "code": "invalid_unicode",
            "message": "must be valid Unicode text (no lone surrogates)",
        }
    ]
    assert error.omitted == 0
    str(error).encode("utf-8")  # the message itself can be printed and logged
    json.dumps(error.errors, ensure_ascii=False).encode("utf-8")


class TestLoneSurrogates:
    @pytest.mark.parametrize("surrogate", SURROGATES, ids=ascii)
    @pytest.mark.parametrize(
        ("argument", "template", "field"), CREATE_FIELDS, ids=[f[2] for f in CREATE_FIELDS]
    )
    async def test_lone_surrogate_in_a_text_field_is_a_validation_error_on_create(
        self, billing: Billing, argument: str, template: Any, field: str, surrogate: str
    ) -> None:
        arguments: dict[str, Any] = {
            "email": "user@example.com",
            argument: fill(template, surrogate),
        }
        with pytest.raises(ValidationError) as caught:
            await billing.customers.create(**arguments)
        assert_unicode_error(caught.value, field_name(field, surrogate))
        await assert_nothing_written(billing)

    @pytest.mark.parametrize("surrogate", SURROGATES, ids=ascii)
    @pytest.mark.parametrize(
        ("argument", "template", "field"), UPDATE_FIELDS, ids=[f[2] for f in UPDATE_FIELDS]
    )
    async def test_lone_surrogate_in_a_text_field_is_a_validation_error_on_update(
        self, billing: Billing, argument: str, template: Any, field: str, surrogate: str
    ) -> None:
        created = await billing.customers.create(
            email="user@example.com", name="Ann", address={"city": "Lima"}, metadata={"k": "v"}
        )
        with pytest.raises(ValidationError) as caught:
            await billing.customers.update(created.id, **{argument: fill(template, surrogate)})
        assert_unicode_error(caught.value, field_name(field, surrogate))
        assert await billing.customers.get(created.id) == created
        await assert_nothing_written(billing, customers=1, events=1)

    async def test_metadata_key_removal_with_a_lone_surrogate_is_a_validation_error(
        self, billing: Billing
    ) -> None:
        created = await billing.customers.create(email="user@example.com", metadata={"k": "v"})
        with pytest.raises(ValidationError) as caught:
            await billing.customers.update(created.id, metadata={"k\ud800": None})
        assert_unicode_error(caught.value, "metadata.k\\ud800")
        await assert_nothing_written(billing, customers=1, events=1)

    async def test_raw_utf8_surrogate_bytes_decode_to_the_same_error(
        self, billing: Billing
    ) -> None:
        # json.loads(bytes) decodes with surrogatepass: b"\xed\xa0\x80" arrives as "\ud800".
        assert json.loads(b'"\xed\xa0\x80"') == RAW_SURROGATE == "\ud800"
        with pytest.raises(ValidationError) as caught:
            await billing.customers.create(email="user@example.com", name=RAW_SURROGATE)
        assert_unicode_error(caught.value, "name")
        await assert_nothing_written(billing)

    async def test_every_field_at_once_is_reported_and_nothing_is_written(
        self, billing: Billing
    ) -> None:
        with pytest.raises(ValidationError) as caught:
            await billing.customers.create(
                email="a\ud800@example.com",
                name="N\ud800",
                phone="+1415\udc00",
                address={"city": "C\ud800", "country": "\udfff"},
                metadata={"k\ud800": "v", "k": "v\ud800"},
                idempotency_key="i\ud800",
            )
        assert {e["field"]: e["code"] for e in caught.value.errors} == {
            "email": "invalid_unicode",
            "name": "invalid_unicode",
            "phone": "invalid_unicode",
            "address.city": "invalid_unicode",
            "address.country": "invalid_unicode",
            "metadata.k\\ud800": "invalid_unicode",
            "metadata.k": "invalid_unicode",
            "idempotency_key": "invalid_unicode",
        }
        await assert_nothing_written(billing)

    async def test_lone_surrogate_in_an_id_or_filter_is_a_validation_error(
        self, billing: Billing
    ) -> None:
        created = await billing.customers.create(email="user@example.com")
        calls: list[tuple[Callable[[], Awaitable[object]], str]] = [
            (lambda: billing.customers.get("cus_\ud800"), "customer_id"),
            (lambda: billing.customers.update("cus_\ud800", name="x"), "customer_id"),
            (lambda: billing.customers.delete("cus_\ud800"), "customer_id"),
            (
                lambda: billing.customers.link(
                    "cus_\ud800", provider="stripe", provider_customer_id="cus_x"
                ),
                "customer_id",
            ),
            (lambda: billing.customers.unlink("cus_\ud800", provider="stripe"), "customer_id"),
            (
                lambda: billing.customers.get_by_external_id("cus_\ud800"),
                "provider_customer_id",
            ),
            (lambda: billing.customers.list(metadata={"k\ud800": "v"}), "metadata.k\\ud800"),
            (lambda: billing.customers.list(metadata={"k": "v\ud800"}), "metadata.k"),
            (lambda: billing.events.list(after="evt_\ud800"), "after"),
            (lambda: billing.customers.list(email="a\ud800@example.com"), "email"),
            (
                lambda: billing.customers.link(
                    created.id, provider="stripe", provider_customer_id="cus_\ud800"
                ),
                "provider_customer_id",
            ),
            (lambda: billing.events.get("evt_\ud800"), "event_id"),
        ]
        for call, field in calls:
            with pytest.raises(ValidationError) as caught:
                await call()
            assert_unicode_error(caught.value, field)
        assert_iterate = billing.customers.iterate
        with pytest.raises(ValidationError) as caught:
            assert_iterate(metadata={"k": "\udfff"})
        assert_unicode_error(caught.value, "metadata.k")
        with pytest.raises(ValidationError) as caught:
            assert_iterate(email="\udfff@example.com")
        assert_unicode_error(caught.value, "email")
        assert await billing.customers.get(created.id) == created
        await assert_nothing_written(billing, customers=1, events=1)

    async def test_nul_and_surrogates_are_one_check_with_one_code_each(self) -> None:
        assert text_problem("plain, ascii") is None
        assert text_problem("ünïcødé 😀 ✓") is None
        assert text_problem("a\x00b") == ("invalid_character", "must not contain the NUL character")
        assert text_problem("a\ud800b") == (
            "invalid_unicode",
            "must be valid Unicode text (no lone surrogates)",
        )
        assert text_problem("\x00\ud800") is not None


class TestUnknownArguments:
    async def test_lone_surrogate_in_an_unknown_keyword_is_reported_encodable(
        self, billing: Billing
    ) -> None:
        with pytest.raises(UnknownArgumentError) as caught:
            await billing.customers.create(email="user@example.com", **{"x\ud800": "y"})  # type: ignore[arg-type]
        assert [e["field"] for e in caught.value.errors] == ["x\\ud800"]
        str(caught.value).encode("utf-8")
        await assert_nothing_written(billing)


# -- at most MAX_FIELD_ERRORS problems ----------------------------------------------------


class TestProblemCap:
    def test_the_cap_is_100(self) -> None:
        assert MAX_FIELD_ERRORS == 100

    def test_validation_error_keeps_100_and_counts_the_rest(self) -> None:
        errors = [{"field": f"f{i}", "code": "c", "message": "m"} for i in range(250)]
        error = ValidationError(errors)  # type: ignore[arg-type]
        assert error.errors == errors[:MAX_FIELD_ERRORS]
        assert error.omitted == 150
        assert error.message.endswith("; ... and 150 more")
        assert "f99: m" in error.message
        assert "f100" not in error.message

    def test_validation_error_under_the_cap_omits_nothing(self) -> None:
        error = ValidationError([{"field": "f", "code": "c", "message": "m"}])
        assert (error.omitted, error.message) == (0, "invalid input: f: m")

    def test_validation_error_takes_an_iterator_and_an_omitted_count(self) -> None:
        produced = 0

        def many() -> Any:
            nonlocal produced
            for i in range(10_000):
                produced += 1
                yield {"field": f"f{i}", "code": "c", "message": "m"}

        error = ValidationError(many(), omitted=5)
        assert len(error.errors) == MAX_FIELD_ERRORS
        assert error.omitted == 10_000 - MAX_FIELD_ERRORS + 5
        assert produced == 10_000

    def test_problems_stores_at_most_100_entries(self) -> None:
        problems = Problems()
        for i in range(100_000):
            problems.add(f"f{i}", "c", "m")
        assert len(problems.errors) == MAX_FIELD_ERRORS
        assert problems.omitted == 100_000 - MAX_FIELD_ERRORS
        with pytest.raises(ValidationError) as caught:
            problems.raise_if_any()
        assert len(caught.value.errors) == MAX_FIELD_ERRORS
        assert caught.value.omitted == 100_000 - MAX_FIELD_ERRORS

    async def test_5000_bad_metadata_keys_give_100_errors_and_the_count_of_the_rest(
        self, billing: Billing
    ) -> None:
        metadata = {f"key{i}[": "v" for i in range(5000)}
        with pytest.raises(ValidationError) as caught:
            await billing.customers.create(email="user@example.com", metadata=metadata)
        error = caught.value
        assert len(error.errors) == MAX_FIELD_ERRORS
        assert error.omitted == 5000 - MAX_FIELD_ERRORS
        assert error.errors[0] == {
            "field": "metadata.key0[",
            "code": "invalid_key",
            "message": "keys must not contain '[' or ']'",
        }
        assert error.message.endswith("; ... and 4900 more")
        assert len(error.message) < 10_000
        await assert_nothing_written(billing)

    async def test_5000_bad_metadata_values_on_update_are_capped_too(
        self, billing: Billing
    ) -> None:
        created = await billing.customers.create(email="user@example.com")
        metadata = {f"key{i}": "v\ud800" for i in range(5000)}
        with pytest.raises(ValidationError) as caught:
            await billing.customers.update(created.id, metadata=metadata)
        assert len(caught.value.errors) == MAX_FIELD_ERRORS
        assert caught.value.omitted == 5000 - MAX_FIELD_ERRORS
        assert {e["code"] for e in caught.value.errors} == {"invalid_unicode"}
        await assert_nothing_written(billing, customers=1, events=1)


# -- the command line ----------------------------------------------------------------------


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ENVIRONMENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("QZPAY_DATABASE_URL", url)
    return url


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def count_customers(url: str) -> tuple[int, int]:
    async def count() -> tuple[int, int]:
        async with Billing(url) as billing:
            page = await billing.customers.list(include_deleted=True)
            return page.total, len(await billing.events.list())

    return asyncio.run(count())


class TestCommandLine:
    @pytest.mark.parametrize(
        ("options", "field"),
        [
            (["--email", "a\ud800@example.com"], "email"),
            (["--email", "a@example.com", "--name", "N\ud800"], "name"),
            (["--email", "a@example.com", "--city", "\udfff"], "address.city"),
            (["--email", "a@example.com", "-m", "k\ud800=v"], "metadata.k\\ud800"),
            (["--email", "a@example.com", "-m", "k=\ud800"], "metadata.k"),
        ],
    )
    def test_lone_surrogate_in_an_option_is_a_usage_error(
        self, cli_db: str, options: list[str], field: str
    ) -> None:
        result = run_cli("customers", "create", *options, "--json")
        assert result.exit_code == 2, result.output
        assert result.stdout == ""
        error = json.loads(result.stderr)["error"]
        assert error["code"] == "validation_error"
        assert [(e["field"], e["code"]) for e in error["errors"]] == [(field, "invalid_unicode")]
        human = run_cli("customers", "create", *options)
        assert human.exit_code == 2
        assert f"{field}: must be valid Unicode text" in human.stderr
        assert count_customers(cli_db) == (0, 0)

    def test_lone_surrogate_on_update_and_get_is_a_usage_error(self, cli_db: str) -> None:
        created = run_cli("customers", "create", "--email", "a@example.com", "--json")
        assert created.exit_code == 0, created.output
        customer_id = json.loads(created.stdout)["id"]
        update = run_cli("customers", "update", customer_id, "--name", "N\ud800", "--json")
        assert update.exit_code == 2, update.output
        assert json.loads(update.stderr)["error"]["errors"][0]["code"] == "invalid_unicode"
        get = run_cli("customers", "get", "cus_\ud800", "--json")
        assert get.exit_code == 2, get.output
        assert json.loads(get.stderr)["error"]["errors"][0]["code"] == "invalid_unicode"
        assert count_customers(cli_db) == (1, 1)

    def test_undecodable_argument_bytes_are_a_usage_error(
        self, cli_db: str, tmp_path: Path
    ) -> None:
        """A real process: argv bytes that are not UTF-8 reach Python as lone surrogates
        (surrogateescape), and once failed in the storage (exit 1, "UnicodeEncodeError")."""
        env = {**os.environ, "QZPAY_DATABASE_URL": cli_db, "LC_ALL": "C.UTF-8"}
        result = subprocess.run(
            [
                sys.executable.encode(),
                b"-m",
                b"qzpay",
                b"customers",
                b"create",
                b"--email",
                b"a@example.com",
                b"--name",
                b"N\xed\xa0\x80\xff",
                b"--json",
            ],
            capture_output=True,
            timeout=120,
            env=env,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        assert result.stdout == b""
        error = json.loads(result.stderr)["error"]
        assert [(e["field"], e["code"]) for e in error["errors"]] == [("name", "invalid_unicode")]
        assert count_customers(cli_db) == (0, 0)
