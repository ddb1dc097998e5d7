"""Helpers shared by the API handlers."""

import json
from datetime import datetime, timezone


def now_iso() -> str:
    """Timestamps in responses are always UTC."""
    return datetime.now(timezone.utc).isoformat()


def load_json(text: str) -> dict:
    return json.loads(text or "{}")


def validate_token(token: str) -> bool:
    """Reject empty and malformed bearer tokens before touching the database."""
    if not token or not token.startswith("Bearer "):
        return False
    return len(token.split(" ", 1)[1]) >= 32
