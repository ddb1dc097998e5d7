from typing import Any, Mapping


def first(items: list[Any]) -> Any:
    return items[0]


def keys(mapping: Mapping[str, Any]) -> list[str]:
    return sorted(mapping)
