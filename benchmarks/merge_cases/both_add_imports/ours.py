"""Helpers shared by the API handlers."""

import hmac
import json
from datetime import datetime, timezone


def now_iso() -> str:
    """Timestamps in responses are always UTC."""
    return datetime.now(timezone.utc).isoformat()


def load_json(text: str) -> dict:
    return json.loads(text or "{}")


def same_secret(a: str, b: str) -> bool:
    return hmac.compare_digest(a, b)
