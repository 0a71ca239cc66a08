"""A marker for "argument not given", distinct from an explicit None (which clears a field)."""

from __future__ import annotations

import enum
from typing import Final, Literal, TypeAlias


class UnsetType(enum.Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = UnsetType.UNSET
Unset: TypeAlias = Literal[UnsetType.UNSET]
