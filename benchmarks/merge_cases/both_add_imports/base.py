"""Helpers shared by the API handlers."""

import json
from datetime import datetime, timezone


def now_iso() -> str:
    """Timestamps in responses are always UTC."""
    return datetime.now(timezone.utc).isoformat()


def load_json(text: str) -> dict:
    return json.loads(text or "{}")
