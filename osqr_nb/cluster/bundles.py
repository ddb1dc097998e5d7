"""Git bundles: how commits travel between the kernel's repository and a worker's clone.

No shared filesystem is assumed, so a commit goes as a bundle of what the other side
lacks (`ref ^have...`), as bytes in a Dask message, and is fetched there into a ref.
Both sides use the same two functions; git runs as an asyncio subprocess on either.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from ..workspace import git

EMPTY = "Refusing to create empty bundle"
LACKS = "lacks these prerequisite commits"


async def make(repo: Path, ref: str, haves: list[str]) -> bytes | None:
    """The commits of `ref` that none of `haves` reaches, as a bundle; None when there are none.

    Every one of `haves` must be in `repo` (rev-list refuses a missing one): callers pass
    commits that came from this repository or reached it, or ask `present` first.
    """
    fd, name = tempfile.mkstemp(prefix="osqr-bundle-", suffix=".bundle")
    os.close(fd)
    try:
        code, out = await git.git(repo, "bundle", "create", "-q", name, ref, *[f"^{c}" for c in haves],
                                  check=False)
        if code:
            if EMPTY in out:
                return None
            raise git.GitError(("bundle", "create", ref), code, out)
        return await asyncio.to_thread(Path(name).read_bytes)
    finally:
        await asyncio.to_thread(_remove, name)


async def take(repo: Path, data: bytes, ref: str, into: str) -> None:
    """Fetch `ref` of the bundle `data` into the ref `into` of `repo` (forced)."""
    fd, name = tempfile.mkstemp(prefix="osqr-bundle-", suffix=".bundle")
    try:
        await asyncio.to_thread(_write, fd, data)
        await git.git(repo, "fetch", "-q", "--no-tags", "--no-write-fetch-head", name, f"+{ref}:{into}")
    finally:
        await asyncio.to_thread(_remove, name)


async def unbundle(repo: Path, data: bytes) -> bool:
    """Store the bundle's objects in `repo`, no ref moved (a worker's clone keeps every object:
    its gc is off); False when `repo` lacks a commit the bundle was made against."""
    fd, name = tempfile.mkstemp(prefix="osqr-bundle-", suffix=".bundle")
    try:
        await asyncio.to_thread(_write, fd, data)
        code, out = await git.git(repo, "bundle", "unbundle", name, check=False)
        if code and LACKS in out:
            return False
        if code:
            raise git.GitError(("bundle", "unbundle"), code, out)
        return True
    finally:
        await asyncio.to_thread(_remove, name)


async def present(repo: Path, commits: list[str]) -> list[str]:
    """Which of `commits` the repository has (one git process for all of them)."""
    if not commits:
        return []
    specs = "".join(f"{c}^{{commit}}\n" for c in commits)
    _, out = await git.git(repo, "cat-file", "--batch-check", input=specs.encode(), check=False, stderr=False)
    lines = out.splitlines()
    return [c for c, line in zip(commits, lines) if not line.endswith("missing")]


def _write(fd: int, data: bytes) -> None:
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _remove(name: str) -> None:
    try:
        os.unlink(name)
    except FileNotFoundError:
        pass
