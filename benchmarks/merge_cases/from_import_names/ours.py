from typing import Any, Iterable


def first(items: list[Any]) -> Any:
    return items[0]


def total(values: Iterable[int]) -> int:
    return sum(values)
