"""Hypothesis strategies for text no database can store: lone surrogates.

JSON (``"\\ud800"``) and Python strings allow a lone UTF-16 surrogate, but UTF-8 cannot encode
one, so it must be a validation error before it reaches any storage, provider or response.
Hypothesis (and so schemathesis) never generates them unless asked.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any, Literal, TypeAlias

from hypothesis import strategies as st

Path: TypeAlias = tuple[str | int, ...]
Slot: TypeAlias = tuple[Literal["value", "key", "new_key"], Path]

SURROGATES = st.characters(categories=["Cs"])
"""One lone surrogate, U+D800 to U+DFFF."""


def text_with_lone_surrogate(max_size: int = 10) -> st.SearchStrategy[str]:
    """Ordinary text with one lone surrogate somewhere in it."""
    return st.tuples(st.text(max_size=max_size), SURROGATES, st.text(max_size=max_size)).map(
        "".join
    )


def _slots(value: Any, path: Path = ()) -> Iterator[Slot]:
    """Every place in a JSON document a surrogate can go: strings, object keys, new keys."""
    if isinstance(value, str):
        yield "value", path
    elif isinstance(value, dict):
        yield "new_key", path
        for key, item in value.items():
            yield "key", (*path, key)
            yield from _slots(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _slots(item, (*path, index))


def _insert(text: str, surrogate: str, position: int) -> str:
    at = position % (len(text) + 1)
    return text[:at] + surrogate + text[at:]


def _inject(document: Any, slot: Slot, surrogate: str, position: int) -> Any:
    kind, path = slot
    if kind == "value" and not path:
        return _insert(document, surrogate, position)
    result = copy.deepcopy(document)
    parent = result
    for part in path[:-1] if kind != "new_key" else path:
        parent = parent[part]
    if kind == "new_key":
        parent[_insert("key", surrogate, position)] = "value"
    elif kind == "key":
        key = path[-1]
        assert isinstance(key, str)
        parent[_insert(key, surrogate, position)] = parent.pop(key)
    else:
        parent[path[-1]] = _insert(parent[path[-1]], surrogate, position)
    return result


def with_lone_surrogate(document: Any) -> st.SearchStrategy[Any]:
    """``document`` (JSON-like) with one of its strings or keys given a lone surrogate, or a
    new key made of one; ``document`` itself when it holds no text and no object."""
    slots = list(_slots(document))
    if not slots:
        return st.just(document)
    return st.builds(
        _inject,
        st.just(document),
        st.sampled_from(slots),
        SURROGATES,
        st.integers(min_value=0, max_value=1000),
    )


def has_lone_surrogate(value: Any) -> bool:
    """Whether any string or key in a JSON-like value holds a lone surrogate."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(has_lone_surrogate(k) or has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_lone_surrogate(item) for item in value)
    return False
