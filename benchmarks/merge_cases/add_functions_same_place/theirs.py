"""Helpers shared by the API handlers."""

import json
from datetime import datetime, timezone


def now_iso() -> str:
    """Timestamps in responses are always UTC."""
    return datetime.now(timezone.utc).isoformat()


def load_json(text: str) -> dict:
    return json.loads(text or "{}")


def format_response(data: dict, status: int = 200) -> dict:
    # Every response carries the same envelope (see docs/api.md).
    return {"status": status, "data": data, "at": now_iso()}
