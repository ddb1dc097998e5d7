"""A worktree whose files come out of git when a tool first needs them.

A task pays for the files it touches, not for the whole tree: the worktree is
made without a checkout, its index marks every file skip-worktree (git then takes
a missing file as unchanged, not deleted), and a file is checked out the first
time a tool names it. Listing or searching a folder brings out what lies under
it; a command brings out everything, since a command may read any file. So the
agent, its tools and its commands always see the whole repository.

A brought file keeps its skip-worktree bit until git must see it again (a save,
a command, a merge), when one `update-index` clears the bits of all of them.
A crash in between leaves files on disk still marked; `load` finds and clears
them, so no change to a brought file is ever ignored.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Callable, Iterable

from . import git


class LazyFiles:
    """Which files of a worktree wait in git's index, and bringing them out on demand."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._absent: set[str] | None = None     # skip-worktree entries not on disk (None: not read yet)
        self._brought: set[str] = set()          # on disk, bit not cleared yet
        self._lock = asyncio.Lock()

    def start_from(self, files: frozenset[str]) -> None:
        """A worktree just made: every file of its commit waits in the index (no git process)."""
        self._absent, self._brought = set(files), set()

    async def load(self) -> None:
        """Read the index's skip-worktree entries; any already on disk (a crash, a merge that
        wrote them) has its bit cleared, so git sees it again."""
        async with self._lock:
            await self._load()

    async def bring(self, paths: Iterable[str]) -> bool:
        """Check out those of `paths` that wait in the index; whether any did."""
        async with self._lock:
            absent = await self._waiting()
            return await self._bring([p for p in dict.fromkeys(paths) if p in absent])

    async def bring_under(self, folder: str) -> None:
        """Everything under `folder` ("" or "." for the whole tree): a listing or a search sees it all."""
        async with self._lock:
            absent = await self._waiting()
            if folder in ("", "."):
                await self._bring(sorted(absent))
            else:
                await self._bring(sorted(p for p in absent if p.startswith(folder.rstrip("/") + "/")))

    async def bring_all(self) -> None:
        """The whole tree on disk and every bit cleared: a normal worktree from now on."""
        async with self._lock:
            absent = await self._waiting()
            await self._bring(sorted(absent))
            await self._settle()

    async def settle(self) -> None:
        """Let git see the brought files again (before it commits or merges here)."""
        async with self._lock:
            await self._settle()

    async def _waiting(self) -> set[str]:
        if self._absent is None:
            await self._load()
        assert self._absent is not None
        return self._absent

    async def _load(self) -> None:
        _, listing = await git.git(self.path, "ls-files", "-v", "-z", stderr=False)
        marked = [entry[2:] for entry in listing.split("\0") if entry.startswith("S ")]
        present = await asyncio.to_thread(_on_disk, self.path, marked)
        self._absent = set(marked) - set(present)
        self._brought.update(present)
        await self._settle()

    async def _bring(self, paths: list[str]) -> bool:
        if not paths:
            return False
        assert self._absent is not None
        # no --force: a file something else put there meanwhile is kept, and counts as brought
        await git.git(self.path, "checkout-index", "--ignore-skip-worktree-bits", "-q", "-z", "--stdin",
                      input=_nul_list(paths))
        self._absent.difference_update(paths)
        self._brought.update(paths)
        return True

    async def _settle(self) -> None:
        if self._brought:
            await git.git(self.path, "update-index", "--no-skip-worktree", "-z", "--stdin",
                          input=_nul_list(sorted(self._brought)))
            self._brought.clear()


def tool_paths(resolve: Callable[[str], Path], root: Path, name: str,
               arguments: object) -> tuple[str | None, bool]:
    """What a tool call names: (the path relative to the worktree, whether it wants the folder
    under it); (None, False) when it names none or a path the tool will refuse itself."""
    if not isinstance(arguments, dict):
        return None, False
    folder = name in ("list_files", "search")
    path = arguments.get("path", "." if folder else None)
    if name not in ("read_file", "write_file", "edit_file", "list_files", "search") or not isinstance(path, str):
        return None, False
    try:
        relative = resolve(path).relative_to(root).as_posix()
    except Exception:          # the tool says what is wrong with the path
        return None, False
    return relative, folder


def ancestors_and_self(relative: str) -> list[str]:
    """`a/b/c` -> `a`, `a/b`, `a/b/c`: a symbolic link waiting in the index may be any of them."""
    parts = relative.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _on_disk(root: Path, paths: list[str]) -> list[str]:
    return [p for p in paths if os.path.lexists(root / p)]


def _nul_list(paths: list[str]) -> bytes:
    return b"".join(os.fsencode(p) + b"\0" for p in paths)
