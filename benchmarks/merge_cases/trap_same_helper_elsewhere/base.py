"""Loading the service's settings."""

import os

DEFAULTS = {"port": 8080, "debug": False}


def load() -> dict:
    settings = dict(DEFAULTS)
    settings["port"] = int(os.environ.get("PORT", settings["port"]))
    return settings


def describe(settings: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(settings.items()))
