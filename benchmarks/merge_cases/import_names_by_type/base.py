"""Typed helpers for the scheduler."""

from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from .run import Run


def first(items: list[Any]) -> Optional[Any]:
    return items[0] if items else None
