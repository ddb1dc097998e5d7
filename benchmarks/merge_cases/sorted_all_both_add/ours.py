"""Parsing the values people type into the settings form."""

__all__ = [
    "parse_bool",
    "parse_int",
    "parse_size",
    "parse_time",
]


def parse_bool(text: str) -> bool:
    return text.strip().lower() in ("1", "yes", "true")


def parse_int(text: str) -> int:
    return int(text.replace("_", ""))


def parse_size(text: str) -> int:
    units = {"k": 1024, "m": 1024**2}
    return parse_int(text[:-1]) * units[text[-1].lower()]


def parse_time(text: str) -> tuple[int, int]:
    hours, minutes = text.split(":")
    return int(hours), int(minutes)
