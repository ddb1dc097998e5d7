"""Loading the service's settings."""

import os

DEFAULTS = {"port": 8080, "debug": False}


def env_flag(name: str, default: bool = False) -> bool:
    """An environment variable read as yes/no ("1", "true", "yes" are yes)."""
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in ("1", "true", "yes")


def verbose() -> bool:
    return env_flag("VERBOSE")


def load() -> dict:
    settings = dict(DEFAULTS)
    settings["port"] = int(os.environ.get("PORT", settings["port"]))
    settings["debug"] = env_flag("DEBUG", settings["debug"])
    return settings


def describe(settings: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(settings.items()))
