"""A small cache for the API's lookups."""

import time


class Cache:
    """Entries expire after `ttl` seconds."""

    def __init__(self, ttl: float = 60.0) -> None:
        self.ttl = ttl
        self.entries: dict[str, tuple[float, object]] = {}

    def get(self, key: str) -> object | None:
        stamp, value = self.entries.get(key, (0.0, None))
        return value if time.monotonic() - stamp < self.ttl else None

    def put(self, key: str, value: object) -> None:
        self.entries[key] = (time.monotonic(), value)

    def __len__(self) -> int:
        return len(self.entries)


def shared() -> Cache:
    return Cache(ttl=30.0)
