"""Text helpers for the report pages."""

import re


def title(text: str) -> str:
    return text.strip().title()


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


def excerpt(text: str, size: int = 80) -> str:
    return text[:size].rstrip()


def count_words(text: str) -> int:
    return len(words(text))


def slug(text: str) -> str:
    # keep the underscores the old report ids used
    return re.sub(r"[^a-z0-9_]+", "-", text.lower()).strip("-")
