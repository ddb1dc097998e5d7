"""Helpers shared by the API handlers."""

import base64
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


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
