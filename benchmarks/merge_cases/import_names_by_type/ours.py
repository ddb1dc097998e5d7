"""Typed helpers for the scheduler."""

from typing import TYPE_CHECKING, Any, Iterator, Optional

if TYPE_CHECKING:
    from .run import Run


def first(items: list[Any]) -> Optional[Any]:
    return items[0] if items else None


def pairs(items: list[Any]) -> Iterator[tuple[Any, Any]]:
    return zip(items, items[1:])
