"""Text helpers for the report pages."""

import re


def title(text: str) -> str:
    return text.strip().title()


def slug(text: str) -> str:
    """Lower-case words joined by dashes, for page addresses."""
    return "-".join(w.lower() for w in words(text))


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


def excerpt(text: str, size: int = 80) -> str:
    return text[:size].rstrip()


def count_words(text: str) -> int:
    return len(words(text))
