from typing import Any


def first(items: list[Any]) -> Any:
    return items[0]
