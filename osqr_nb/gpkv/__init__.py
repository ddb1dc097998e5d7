"""osqr-gpkv: the global aggregate service, and the client osqr-nb shares through.

Users opt in to send counts only (see `osqr_nb.gpkv.payload`); the service sums
them and publishes k-anonymous priors that new users start from.

This package imports no kernel, widget or pandas code, and its names load on
first use: a client needs httpx but not SQLAlchemy, a server needs Starlette,
uvicorn and SQLAlchemy but not IPython.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Payload": "payload", "DecisionCount": "payload", "RouteOutcome": "payload", "PayloadError": "payload",
    "SCHEMA_VERSION": "payload", "validate": "payload", "decode": "payload",
    "GPKVClient": "client", "AsyncGPKVClient": "client", "GPKVError": "client", "GPKVAuthError": "client",
    "GPKVRateLimited": "client", "GPKVRejected": "client", "payload_from_history": "client",
    "contributor_id": "client",
    "create_app": "app", "Limits": "app", "GPKVServer": "app", "load_tokens": "app", "Store": "store",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'osqr_nb.gpkv' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
