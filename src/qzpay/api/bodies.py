"""What every request and response body of the API shares, said once.

Request bodies refuse unknown fields (a typo is a 422, not a silently ignored field) and show
one example; a create body is the parameter object of the library call it feeds (its fields
are that call's keyword arguments); a PATCH body passes on only the fields the client sent;
list answers are one ``Page``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from qzpay.page import Page

METADATA_RULES = (
    "At most 50 keys; keys 1–40 characters without `[` or `]`; values strings of at most "
    "500 characters."
)

T = TypeVar("T")


def request_config(example: dict[str, JsonValue]) -> ConfigDict:
    """A request body's config: unknown fields refused, ``example`` in the OpenAPI schema."""
    examples: list[JsonValue] = [example]
    return ConfigDict(extra="forbid", json_schema_extra={"examples": examples})


def arguments(body: BaseModel, *, leave_out: Collection[str] = ()) -> dict[str, Any]:
    """``body``'s fields as keyword arguments, values as parsed (an ``Address`` stays one)."""
    return {name: getattr(body, name) for name in type(body).model_fields if name not in leave_out}


class PartialUpdate(BaseModel):
    """A PATCH body: ``None`` defaults stand for "not sent" (``model_fields_set`` tells an
    absent field from an explicit ``null``, which the library clears or reports)."""

    def changes(self) -> dict[str, Any]:
        """The fields the client sent, as keyword arguments for the library's ``update``."""
        return {name: getattr(self, name) for name in self.model_fields_set}


def page_fields(page: Page[Any]) -> dict[str, Any]:
    """``page``'s fields by name, for a response body that holds them (and maybe more)."""
    return {name: getattr(page, name) for name in Page.model_fields}


class PageBody(BaseModel, Generic[T]):
    """One page of records, newest first. A subclass names its records: it repeats ``total``
    with its own description (the field keeps its place in the schema)."""

    data: list[T]
    total: int
    limit: int
    offset: int
    has_more: bool = Field(description="Whether more matches follow this page.")

    @classmethod
    def from_page(cls, page: Page[T]) -> Self:
        return cls(**page_fields(page))
