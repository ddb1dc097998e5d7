from typing import Any, Iterable, Mapping


def first(items: list[Any]) -> Any:
    return items[0]


def total(values: Iterable[int]) -> int:
    return sum(values)


def keys(mapping: Mapping[str, Any]) -> list[str]:
    return sorted(mapping)
