"""Every limit is defined once, in ``qzpay.limits``: the CLI options, the HTTP API's schema and
the library enforce those values, and no module writes a limit's number itself."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from qzpay import Billing, limits
from qzpay.api.server import create_app
from qzpay.cli import app
from qzpay.errors import ValidationError

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "qzpay"

# -- the CLI ----------------------------------------------------------------------------------


def _cli_option(path: str, name: str) -> Any:
    """The Click option behind ``name`` of the command at ``path`` (``"events list"``)."""
    command: Any = typer.main.get_command(app)
    for word in path.split():
        command = command.commands[word]
    return next(p for p in command.params if p.name == name)


@pytest.mark.parametrize(
    ("command", "maximum", "default"),
    [
        ("customers list", limits.MAX_LIST_LIMIT, limits.DEFAULT_LIST_LIMIT),
        ("customers sync-pending", limits.MAX_SYNC_BATCH, limits.DEFAULT_SYNC_BATCH),
        ("events list", limits.MAX_EVENT_PAGE, limits.DEFAULT_EVENT_PAGE),
    ],
)
def test_cli_limit_options(command: str, maximum: int, default: int) -> None:
    option = _cli_option(command, "limit")
    assert (option.min, option.max) == (1, maximum)
    assert option.default == default


# -- the HTTP API -------------------------------------------------------------------------------

SPEC = create_app(Billing("memory://"), auth=None).openapi()


def _parameter(path: str, method: str, name: str) -> dict[str, Any]:
    parameters = SPEC["paths"][path][method]["parameters"]
    found: dict[str, Any] = next(p for p in parameters if p["name"] == name)
    return found


@pytest.mark.parametrize(
    ("path", "name", "maximum", "default"),
    [
        ("/customers", "limit", limits.MAX_LIST_LIMIT, limits.DEFAULT_LIST_LIMIT),
        ("/events", "limit", limits.MAX_EVENT_PAGE, limits.DEFAULT_EVENT_PAGE),
    ],
)
def test_query_parameter_bounds(path: str, name: str, maximum: int, default: int) -> None:
    schema = _parameter(path, "get", name)["schema"]
    assert (schema["minimum"], schema["maximum"], schema["default"]) == (1, maximum, default)


def _max_length(schema: dict[str, Any]) -> int:
    """``maxLength`` of a string schema, or of the string branch of an optional one."""
    for branch in (schema, *schema.get("anyOf", ())):
        if "maxLength" in branch:
            length: int = branch["maxLength"]
            return length
    raise AssertionError(f"no maxLength in {schema}")


@pytest.mark.parametrize(
    ("path", "method", "name", "maximum"),
    [
        ("/customers", "post", "Idempotency-Key", limits.MAX_IDEMPOTENCY_KEY_LENGTH),
        ("/customers", "get", "starting_after", limits.MAX_ID_LENGTH),
        ("/customers/{customer_id}", "get", "customer_id", limits.MAX_ID_LENGTH),
        ("/customers/{customer_id}", "patch", "customer_id", limits.MAX_ID_LENGTH),
        ("/customers/{customer_id}", "delete", "customer_id", limits.MAX_ID_LENGTH),
        (
            "/customers/by-provider-id/{provider_customer_id}",
            "get",
            "provider_customer_id",
            limits.MAX_ID_LENGTH,
        ),
        ("/events", "get", "after", limits.MAX_ID_LENGTH),
        ("/webhooks/{provider}", "post", "provider", limits.MAX_WEBHOOK_PROVIDER_SEGMENT),
    ],
)
def test_string_parameter_lengths(path: str, method: str, name: str, maximum: int) -> None:
    assert _max_length(_parameter(path, method, name)["schema"]) == maximum


# -- the library --------------------------------------------------------------------------------


async def test_event_page_bounds() -> None:
    async with Billing("memory://") as billing:
        assert await billing.events.list(limit=limits.MAX_EVENT_PAGE) == []
        with pytest.raises(ValidationError) as raised:
            await billing.events.list(limit=limits.MAX_EVENT_PAGE + 1)
        assert raised.value.errors[0]["field"] == "limit"


async def test_list_limit_bounds() -> None:
    async with Billing("memory://") as billing:
        page = await billing.customers.list(limit=limits.MAX_LIST_LIMIT)
        assert page.limit == limits.MAX_LIST_LIMIT
        with pytest.raises(ValidationError):
            await billing.customers.list(limit=limits.MAX_LIST_LIMIT + 1)


# -- no number written twice ----------------------------------------------------------------------

LIMIT_VALUES = {
    value
    for name, value in vars(limits).items()
    if name.isupper() and isinstance(value, int) and value > 1
}
BOUND_KEYWORDS = {"le", "lt", "max", "max_length"}  # Query/Path/Header/Field, typer.Option
LIMIT_PARAMETERS = {"limit", "page_size"}
# Not qzpay's limits: SQL (column sizes), id generation, and each provider's own API limits.
EXEMPT = ("limits.py", "ids.py", "storage/", "providers/")
# Modules that still write a limit's number (page sizes, the provider-id length): remove each
# entry once the module imports its limits from qzpay.limits.
PENDING: set[str] = set()


def _literal_limits(tree: ast.AST) -> Iterator[tuple[int, int]]:
    """(line, number) of every limit's number written as a limit: a bound keyword (``le=``,
    ``max=``, ``max_length=``), a ``<=``/``>`` comparison, a ``MAX_*``/``DEFAULT_*`` constant,
    or the default of a ``limit``/``page_size`` parameter."""
    for node in ast.walk(tree):
        values: list[ast.expr | None] = []
        if isinstance(node, ast.keyword) and node.arg in BOUND_KEYWORDS:
            values = [node.value]
        elif isinstance(node, ast.Compare):
            pairs = zip(node.ops, node.comparators, strict=True)
            values = [right for op, right in pairs if isinstance(op, ast.LtE | ast.Gt)]
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            if any(name.startswith(("MAX_", "DEFAULT_")) for name in names):
                values = [node.value]
        elif isinstance(node, ast.arguments):
            positional = [*node.posonlyargs, *node.args]
            with_defaults = positional[len(positional) - len(node.defaults) :]
            defaults = [
                *zip(with_defaults, node.defaults, strict=True),
                *zip(node.kwonlyargs, node.kw_defaults, strict=True),
            ]
            values = [value for arg, value in defaults if arg.arg in LIMIT_PARAMETERS]
        constants = [value for value in values if isinstance(value, ast.Constant)]
        for constant in constants:
            if type(constant.value) is int and constant.value in LIMIT_VALUES:
                yield constant.lineno, constant.value


def test_no_module_writes_a_limit_itself() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(EXEMPT) or relative in PENDING:
            continue
        for line, number in _literal_limits(ast.parse(path.read_text())):
            found.append(f"{relative}:{line}: {number}")
    assert not found, "import these from qzpay.limits:\n" + "\n".join(found)


def test_the_check_finds_a_written_limit() -> None:
    source = """
MAX_X = 255
SIZE: int = 1000
def f(a, *, limit: int = 100, page_size=1000): return 0 < len(a) <= 255
Query(le=1000, max_length=64)
typer.Option(min=1, max=100)
if len(s) > 40 and status >= 500 and port < 65535: pass
"""
    found = sorted(_literal_limits(ast.parse(source)))
    assert found == [(2, 255), (4, 100), (4, 255), (4, 1000), (5, 64), (5, 1000), (6, 100), (7, 40)]
