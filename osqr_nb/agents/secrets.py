"""Known secret values, replaced by `[redacted]` before text reaches a model or the event log.

The sandbox keeps secrets out of a command's reach; this is the second line,
for what slips through anyway (an unsandboxed command that opted in, a key
pasted into a file the agent may read). It only knows values it can see in
the kernel: provider keys in the environment or in OSQR.providers, the gpkv
token, and any environment variable whose name looks secret. It matches
them verbatim: an encoded or partial secret is not caught.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable, Iterable, Mapping

from ..models.errors import KEY_VARIABLES

REDACTED = "[redacted]"
MIN_LENGTH = 8          # shorter values ("1", "true") would garble every output they occur in
_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASS", "CREDENTIAL", "AUTH", "PRIVATE", "COOKIE")
# Names with a secret word that hold a location, not a secret (SSH_AUTH_SOCK, GIT_ASKPASS).
_NOT_SECRET_SUFFIXES = ("_FILE", "_PATH", "_DIR", "_SOCK", "_BUNDLE", "ASKPASS")


@functools.lru_cache(maxsize=4096)
def looks_secret(name: str) -> bool:
    """True for a variable or setting name that suggests a credential (remembered per name:
    every logged event asks it of the whole environment)."""
    upper = name.upper()
    return any(w in upper for w in _SECRET_WORDS) and not upper.endswith(_NOT_SECRET_SUFFIXES)


def known_secrets(env: Mapping[str, str] | None = None, config: Any = None) -> list[str]:
    """Every secret value the kernel knows of, longest first (so a key that contains another
    is replaced whole)."""
    values = set(_environment_secrets() if env is None else _secret_values(env))
    if config is None:
        from ..config import settings
        config = settings()
    values.update(_setting_secrets(config.providers))
    values.add(str(config.gpkv_token))
    if isinstance(config.command_env, Mapping):
        values.update(v for k, v in config.command_env.items() if looks_secret(k))
    return sorted((v for v in values if isinstance(v, str) and len(v.strip()) >= MIN_LENGTH),
                  key=len, reverse=True)


def _secret_values(env: Mapping[str, str]) -> list[str]:
    return [v for k, v in env.items() if k in KEY_VARIABLES.values() or looks_secret(k)]


_seen_environment: tuple[Any, list[str]] = ((), [])


def _environment_secrets() -> list[str]:
    """The secret values of os.environ, read again only when the environment changed: every
    logged event asks, and decoding the whole environment each time cost 60 µs."""
    global _seen_environment
    raw = getattr(os.environ, "_data", None)           # CPython's own bytes mapping, cheap to copy
    if raw is None:
        return _secret_values(os.environ)
    snapshot = tuple(raw.items())
    if snapshot != _seen_environment[0]:
        _seen_environment = (snapshot, _secret_values(os.environ))
    return _seen_environment[1]


def _setting_secrets(value: Any) -> Iterable[str]:
    """Strings under secret-looking keys anywhere in a settings dict (api_key, token, ...)."""
    if not isinstance(value, Mapping):
        return
    for key, item in value.items():
        if isinstance(item, Mapping):
            yield from _setting_secrets(item)
        elif isinstance(item, str) and looks_secret(str(key)):
            yield item


def redact(value: Any, secrets: list[str] | None = None) -> Any:
    """`value` with every known secret replaced, through strings, dicts, lists and tuples."""
    secrets = known_secrets() if secrets is None else secrets
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, Mapping):
        return {k: redact(v, secrets) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(redact(v, secrets) for v in value)
    return value


def redacting(emit: Callable[..., None]) -> Callable[..., None]:
    """An event emitter that redacts every field first: tool arguments, results and errors are logged."""
    def emit_redacted(*args: Any, **fields: Any) -> None:
        emit(*args, **redact(fields))
    return emit_redacted
