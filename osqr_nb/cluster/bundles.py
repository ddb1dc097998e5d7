"""Git bundles: how commits travel between the kernel's repository and a worker's clone.

No shared filesystem is assumed, so a commit goes as a bundle of what the other side
lacks (`ref ^have...`), as bytes in a Dask message, and is fetched there into a ref.
Both sides use the same functions. A few commits on top of what the other side holds
(a task's start, a turn's snapshot, a save) travel as their objects instead (`Objects`),
read and written by libgit2 in process, when both sides can: a bundle costs a git
process to make and three to fetch (5 + 10 ms on a quiet machine), objects well under
a millisecond. The run's base, and anything large, still goes as a bundle: a pack
compresses and deltas it.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..workspace import git, libgit

EMPTY = "Refusing to create empty bundle"
LACKS = "lacks these prerequisite commits"
LOOSE_COMMITS = 16          # more new commits than this travel as a bundle
LOOSE_BYTES = 4 << 20       # and so does more than this of new files


@dataclass(frozen=True)
class Objects:
    """A few commits as their objects: the tip, the commits they stand on (the other side
    must hold them), and each new object as (id, type, raw content)."""

    tip: str
    needs: list[str]
    objects: list[tuple[str, int, bytes]]

    def __len__(self) -> int:
        return sum(len(data) for _, _, data in self.objects)


Payload = bytes | Objects


async def make(repo: Path, ref: str, haves: list[str], loose: bool = False) -> Payload | None:
    """The commits of `ref` that none of `haves` reaches, as a bundle; None when there are none.
    `loose`: the other side reads objects (libgit2 there), and a few commits go as `Objects`.

    Every one of `haves` must be in `repo` (rev-list refuses a missing one): callers pass
    commits that came from this repository or reached it, or ask `present` first.
    """
    if loose and haves:
        found = await git.off_the_loop(libgit.objects_since, repo, ref, haves, LOOSE_COMMITS, LOOSE_BYTES)
        if found is not None:
            tip, needs, objects = found
            return Objects(tip, needs, objects) if objects else None
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


async def take(repo: Path, data: Payload, ref: str, into: str) -> None:
    """Fetch `ref` of the bundle `data` into the ref `into` of `repo` (forced)."""
    if isinstance(data, Objects):
        if not await _store(repo, data):
            raise git.GitError(("fetch", ref), 1, f"{repo} {LACKS}: {' '.join(data.needs)}")
        await git.set_ref(repo, into, data.tip, "osqr: fetched")
        return
    fd, name = tempfile.mkstemp(prefix="osqr-bundle-", suffix=".bundle")
    try:
        await asyncio.to_thread(_write, fd, data)
        await git.git(repo, "fetch", "-q", "--no-tags", "--no-write-fetch-head", name, f"+{ref}:{into}")
    finally:
        await asyncio.to_thread(_remove, name)


async def unbundle(repo: Path, data: Payload) -> bool:
    """Store the bundle's objects in `repo`, no ref moved (a worker's clone keeps every object:
    its gc is off); False when `repo` lacks a commit the bundle was made against."""
    if isinstance(data, Objects):
        return await _store(repo, data)
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
    """Which of `commits` the repository has (libgit2 in process; else one git process for all)."""
    if not commits:
        return []
    found = await git.off_the_loop(libgit.has, repo, commits)
    if found is not None:
        return found
    specs = "".join(f"{c}^{{commit}}\n" for c in commits)
    _, out = await git.git(repo, "cat-file", "--batch-check", input=specs.encode(), check=False, stderr=False)
    lines = out.splitlines()
    return [c for c, line in zip(commits, lines) if not line.endswith("missing")]


async def _store(repo: Path, data: Objects) -> bool:
    """Write the objects into `repo`; False when it lacks a commit they stand on."""
    stored = await git.off_the_loop(libgit.store_objects, repo, data.needs, data.objects)
    if stored is None:       # the side that sent them was told this one reads them
        raise git.GitError(("store objects",), 1, f"libgit2 cannot write objects into {repo}")
    return stored


async def reads_objects(repo: Path) -> bool:
    """Whether objects (not only bundles) can be sent to `repo`: libgit2 opens it."""
    return await git.off_the_loop(libgit.open_repo, repo) is not None


def _write(fd: int, data: bytes) -> None:
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _remove(name: str) -> None:
    try:
        os.unlink(name)
    except FileNotFoundError:
        pass
