"""The agent's tools, confined to one worktree.

Every path is resolved against the worktree; anything that leads out of it
(`..`, an absolute path elsewhere, a symlink pointing out, also through a
symlinked directory) or into `.git` is refused with a `ToolError` that the
agent sees, so the run goes on. So is every other failure of a tool (a NUL byte
or a lone surrogate in a path, a name too long, a file where a directory should
be, a symlink loop, a permission denied): one bad call never ends a task.

Results are bounded, with the cut marked, so one tool call cannot flood the
model's context; and so is the work behind them, so one call cannot stall the
kernel: reads stop at their limit and check sizes first (text_files.py), walks
stop after a number of entries or seconds, and regular expressions run in a
short-lived child process that is killed when it overruns (regex_search.py).

`Workspace.call` runs the file tools synchronously; `Workspace.acall` runs
those (in a thread) and `run_command` (see `commands.py`) without blocking the
kernel. What the model sees of each tool, and the checks of a call's arguments,
are in tool_calls.py (re-exported here).
"""

from __future__ import annotations

import asyncio
import errno
import fnmatch
import functools
import json
import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator, TypeVar

from . import commands
from .commands import CommandError, CommandResult, SandboxMode
from .regex_search import (PATTERN_SECONDS, _arun_child, _child_answer, _OutOfTime, _regex_matcher, _run_child,
                           _SlowPattern)
from .text_files import _encoded, _line_window, _near_miss, _open_regular, _replace, _skip_lines
from .tool_calls import (MAX_RESULT, SPECS, TOOL_SPECS, Rejected, ToolError, bounded, _preview, _printable,
                         validate_arguments)

__all__ = ["MAX_RESULT", "SPECS", "TOOL_SPECS", "Rejected", "ToolError", "Workspace", "bounded",
           "tool_threads", "validate_arguments"]

MAX_LISTING = 500           # entries of a listing
MAX_MATCHES = 200           # search hits shown
MAX_MATCH_LINE = 300        # characters of one search hit's line
MAX_SEARCH_BYTES = 1_000_000  # files larger than this are not searched
MAX_EDIT_BYTES = 2 * 2**20   # edit_file (and the approval diff of a write) read files up to this size
MAX_PATTERN = 10_000         # characters of a search pattern or glob
MAX_DIR_ENTRIES = 10_000     # entries of one directory looked at by a walk
MAX_WALK_ENTRIES = 50_000    # entries looked at by one listing or search
WALK_SECONDS = 5.0           # a listing or search stops after this long, saying so
SNIFF_BYTES = 8192           # a NUL byte in this head makes a file binary
SKIPPED_DIRS = frozenset({".git", "__pycache__", "node_modules", ".venv", ".tox", ".mypy_cache",
                          ".pytest_cache", ".ruff_cache"})   # not listed or searched; still readable by path




T = TypeVar("T")

# Why an OS call failed, in the words a model can act on.
_REASONS = {
    errno.ELOOP: "symlink loop", errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
    errno.ENAMETOOLONG: "name too long (a file name may have at most 255 bytes)",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
    errno.EEXIST: "it exists and is not a directory", errno.EISDIR: "it is a directory",
    errno.ENOENT: "no such file or directory", errno.ENOSPC: "no space left on the device",
    errno.EROFS: "read-only file system", errno.EDQUOT: "disk quota exceeded", errno.EFBIG: "file too large",
    errno.EIO: "input/output error", errno.EINVAL: "invalid argument"}
_QUIET_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR})   # a dangling link: nothing there to list
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096
MAX_SKIPPED_SHOWN = 20      # skipped entries named in a note


def _reason(exc: OSError) -> str:
    return _REASONS.get(exc.errno or 0, exc.strerror or type(exc).__name__)


def _reported(tool: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Any failure of the tool becomes a ToolError naming the tool and what was wrong.

    On the method itself, not only in `call`, because the agent calls some of these
    methods directly (to ask approval before a write).
    """
    def wrap(method: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(method)
        def run(self: "Workspace", *args: Any, **kwargs: Any) -> T:
            try:
                return method(self, *args, **kwargs)
            except ToolError as exc:
                raise _named(tool, exc) from None
            except Exception as exc:
                raise ToolError(self.explain(tool, exc)) from None
        return run
    return wrap


def _named(tool: str, exc: ToolError) -> ToolError:
    """The error with the tool's name in front, once."""
    text = _printable(str(exc))
    return type(exc)(text if text.startswith(tool) else f"{tool}: {text}")


def _check_path_text(path: str) -> None:
    """Refuse what no file name may hold, with a message, before the OS refuses with an exception."""
    if "\0" in path:
        raise ToolError(f"path {_preview(path)} holds a NUL byte (\\x00), which no file name may contain")
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ToolError(f"path {_preview(path)} holds {exc.object[exc.start:exc.end]!r}, a lone surrogate "
                        "(half of a UTF-16 pair), which no file name may contain") from None
    if len(encoded) > MAX_PATH_BYTES:
        raise ToolError(f"path {_preview(path)} is {len(encoded):,} bytes long; a path may have at most "
                        f"{MAX_PATH_BYTES:,}")
    for part in encoded.split(b"/"):
        if len(part) > MAX_NAME_BYTES:
            raise ToolError(f"the name {_preview(part.decode())} in the path is {len(part):,} bytes long; a "
                            f"file name may have at most {MAX_NAME_BYTES}")


def _check_search_text(pattern: str, glob: str | None) -> None:
    if not pattern:
        raise ToolError("pattern is empty; give the text to search for")
    for name, text in (("pattern", pattern), ("glob", glob or "")):
        if len(text) > MAX_PATTERN:
            raise ToolError(f"the {name} is {len(text):,} characters long; give at most {MAX_PATTERN:,}")


class Workspace:
    """The tools of one agent, all confined to `root`.

    `sandbox`: None runs commands in bubblewrap when it is usable, True requires
    it, False never uses it.
    """

    def __init__(self, root: Path, *, sandbox: bool | None = None,
                 command_timeout: float = commands.DEFAULT_TIMEOUT) -> None:
        self.root = Path(root).resolve()
        self.sandbox = sandbox
        self.command_timeout = command_timeout
        self.last_command: CommandResult | None = None   # for the caller's log

    # -- confinement -------------------------------------------------------

    def resolve(self, path: str) -> Path:
        """The real path inside the worktree, or a ToolError saying why not."""
        if not isinstance(path, str) or not path.strip():
            raise ToolError("a path is required (relative to the worktree)")
        _check_path_text(path)
        try:
            target = (self.root / path).resolve()
        except RuntimeError:                    # how Python 3.11 reports a symlink loop
            raise ToolError(f"path {path!r} runs into a symlink loop; give a path that avoids it") from None
        except OSError as exc:
            raise ToolError(f"path {path!r} cannot be followed: {_reason(exc)}") from None
        if not self._inside(target):
            raise ToolError(f"path {path!r} is outside the worktree (after following symlinks); "
                            "use a path inside it")
        relative = target.relative_to(self.root)
        if relative.parts[:1] == (".git",):
            raise ToolError(f"path {path!r} is inside .git, which agents may not touch")
        return target

    def _inside(self, target: Path) -> bool:
        return target == self.root or self.root in target.parents

    def _allowed(self, target: Path) -> bool:
        return self._inside(target) and target.relative_to(self.root).parts[:1] != (".git",)

    def _relative(self, target: Path) -> str:
        return target.relative_to(self.root).as_posix()

    def _shown(self, filename: Any) -> str:
        """A file an OS error names, relative to the worktree when it lies inside."""
        if isinstance(filename, bytes):
            filename = os.fsdecode(filename)
        if not isinstance(filename, str):
            return repr(filename)
        try:
            return repr(Path(filename).relative_to(self.root).as_posix())
        except ValueError:
            return repr(filename)

    def explain(self, tool: str, exc: BaseException) -> str:
        """What went wrong, for the model: the tool, the file or argument, and why."""
        if isinstance(exc, OSError):
            where = f" on {self._shown(exc.filename)}" if exc.filename is not None else ""
            return _printable(f"{tool} failed{where}: {_reason(exc)}")
        if isinstance(exc, UnicodeEncodeError):
            return (f"{tool} failed: the text holds {exc.object[exc.start:exc.end]!r}, which cannot be "
                    f"written as UTF-8 ({exc.reason}); remove it")
        if isinstance(exc, UnicodeDecodeError):
            return f"{tool} failed: a file it read is not UTF-8 text"
        if isinstance(exc, RecursionError):
            return f"{tool} failed: an argument is nested too deeply"
        if isinstance(exc, MemoryError):
            return f"{tool} failed: out of memory (a file or an argument is too large)"
        if isinstance(exc, RuntimeError) and "symlink loop" in str(exc).lower():
            return f"{tool} failed: symlink loop"
        if isinstance(exc, ValueError) and "null byte" in str(exc):
            return f"{tool} failed: an argument holds a NUL byte (\\x00)"
        return _printable(f"{tool} failed: {type(exc).__name__}: {exc}")

    def _walker(self) -> "_Walk":
        return _Walk(self, time.monotonic() + WALK_SECONDS)

    # -- file tools --------------------------------------------------------

    @_reported("read_file")
    def read_file(self, path: str, offset: int = 1, limit: int | None = None) -> str:
        """The file, or lines offset..offset+limit-1; a marker says where to read on.

        Reads no further than it shows (plus a bounded count of the lines after), so a
        huge or sparse file costs what the answer costs.
        """
        if offset < 1 or (limit is not None and limit < 1):
            raise ToolError("offset and limit count lines from 1; give positive numbers")
        with self._open_text(path) as handle:
            passed = _skip_lines(handle, offset - 1, path)
            if passed < offset - 1 or (offset > 1 and not handle.peek(1)):
                raise ToolError(f"offset {offset} is past the end: {path!r} has {passed} lines")
            return _line_window(handle, path, offset, limit)

    @_reported("write_file")
    def write_file(self, path: str, content: str) -> str:
        target = self.resolve(path)
        if target == self.root or target.is_dir():
            raise ToolError(f"{path!r} is a directory; give a file path")
        if not isinstance(content, str):
            raise ToolError("content must be a string")
        data = _encoded(content)
        existed = target.exists()
        _replace(target, data)
        return f"{'replaced' if existed else 'created'} {self._relative(target)} ({len(content)} characters)"

    @_reported("write_file")
    def current_text(self, path: str) -> str | None:
        """What a write to `path` would replace (None: a new file), for the approval diff; bounded."""
        target = self.resolve(path)
        if not target.is_file():
            return None
        size = target.stat().st_size
        if size > MAX_EDIT_BYTES:
            return f"[the current file has {size:,} bytes: too large to show]\n"
        with _open_regular(target) as handle:
            return handle.read(MAX_EDIT_BYTES).decode(errors="replace")

    @_reported("edit_file")
    def plan_edit(self, path: str, old: str, new: str, replace_all: bool = False) -> tuple[str, str]:
        """(current content, content after the edit) without writing: lets a caller ask approval first."""
        if not isinstance(old, str) or not isinstance(new, str):
            raise ToolError("edit_file needs old and new as strings")
        if not old:
            raise ToolError("old is empty; give the exact text to replace (use write_file for a new file)")
        if old == new:
            raise ToolError("old and new are the same; nothing to change")
        _encoded(new, "new")
        text = self._small_text(path)
        count = text.count(old)
        if count == 0:
            raise ToolError(f"the text to replace was not found in {path!r}{_near_miss(text, old)}; "
                            "read the file and copy the exact text, whitespace included")
        if count > 1 and not replace_all:
            raise ToolError(f"the text to replace occurs {count} times in {path!r}; include more "
                            "surrounding lines so it is unique, or set replace_all to true")
        return text, text.replace(old, new) if replace_all else text.replace(old, new, 1)

    @_reported("edit_file")
    def edit_file(self, path: str, old: str, new: str, replace_all: bool = False) -> str:
        text, edited = self.plan_edit(path, old, new, replace_all)
        target = self.resolve(path)
        _replace(target, _encoded(edited))
        count = text.count(old) if replace_all else 1
        first = text[:text.index(old)].count("\n") + 1
        where = f"first at line {first}" if count > 1 else f"at line {first}"
        return f"edited {self._relative(target)}: replaced {count} occurrence{'s' * (count > 1)} ({where})"

    @_reported("list_files")
    def list_files(self, path: str = ".") -> str:
        base = self.resolve(path)
        if not base.is_dir():
            raise ToolError(f"no directory {path!r} in the worktree")
        walk = self._walker()
        entries: list[str] = []
        count = 0
        for file in walk.files(base):
            count += 1
            if len(entries) < MAX_LISTING:
                entries.append(self._relative(file))
        shown = "\n".join(entries) or "(no files)"
        if count > MAX_LISTING:
            shown += f"\n[... cut: {'at least ' if walk.stopped else ''}{count - MAX_LISTING} more files]"
        return shown + walk.note()

    @_reported("search")
    def search(self, pattern: str, path: str = ".", regex: bool = False, glob: str | None = None) -> str:
        """`path:line: text` for each matching line of the text files under `path`, bounded.

        A regular expression runs in a child process: compiling or matching one can
        hold the GIL for as long as it likes, and only a process can be killed.
        """
        base = self._search_base(pattern, path, glob)
        if regex:
            return _child_answer(pattern, *_run_child(self._child_request(pattern, path, glob), self.root))
        return self._search_here(lambda line: pattern in line, base, pattern, path, glob)

    def _search_base(self, pattern: str, path: str, glob: str | None) -> Path:
        _check_search_text(pattern, glob)
        base = self.resolve(path)
        if not base.exists():
            raise ToolError(f"no file or directory {path!r} in the worktree")
        return base

    def _search_here(self, found: Callable[[str], bool], base: Path, pattern: str, path: str,
                     glob: str | None) -> str:
        walk = self._walker()
        hits: list[str] = []
        total = 0
        for file in walk.files(base):
            relative = self._relative(file)
            if glob and not _glob_match(relative, glob):
                continue
            for number, line in enumerate(walk.lines(file), start=1):
                try:
                    matched = found(line)
                except _OutOfTime:
                    walk.stopped = f"stopped after {WALK_SECONDS:g} s"
                    break
                except _SlowPattern:
                    raise ToolError(f"the regular expression {pattern!r} took over {PATTERN_SECONDS:g} s on "
                                    f"one line ({relative}:{number}): it backtracks catastrophically (nested "
                                    "repeats such as (a+)+ do); simplify it") from None
                if matched:
                    total += 1
                    if len(hits) < MAX_MATCHES:
                        hits.append(f"{relative}:{number}: {_clip(line)}")
            if walk.stopped:
                break
        if not hits:
            return (f"no matches for {pattern!r} in {path!r}" + (f" (files matching {glob!r})" if glob else "")
                    + walk.note())
        if total > len(hits):
            hits.append(f"[... cut: {total} matches in all, {len(hits)} shown; narrow the pattern, "
                        "path or glob]")
        return bounded("\n".join(hits)) + walk.note()

    def _child_request(self, pattern: str, path: str, glob: str | None) -> str:
        return json.dumps({"root": str(self.root), "pattern": pattern, "path": path, "glob": glob})

    async def _asearch_regex(self, arguments: dict[str, Any]) -> str:
        """A regular-expression search from the loop: its process is awaited, and killed if the
        agent is cancelled meanwhile, with no thread held waiting for it."""
        try:
            checked = validate_arguments("search", arguments)
            pattern, path, glob = checked["pattern"], checked.get("path", "."), checked.get("glob")
            self._search_base(pattern, path, glob)
            answer = await _arun_child(self._child_request(pattern, path, glob), self.root)
            return _printable(_child_answer(pattern, *answer))
        except ToolError as exc:
            raise _named("search", exc) from None
        except Exception as exc:
            raise ToolError(self.explain("search", exc)) from None

    def _regex_search(self, pattern: str, path: str, glob: str | None) -> str:
        """The child's side of `search` with regex true."""
        base = self.resolve(path)
        deadline = time.monotonic() + WALK_SECONDS
        return self._search_here(_regex_matcher(pattern, deadline), base, pattern, path, glob)

    # -- commands ----------------------------------------------------------

    @property
    def sandbox_mode(self) -> SandboxMode:
        """How the next command will run: lets the autonomy policy ask before an unsandboxed one."""
        if self.sandbox is False:
            return "none"
        return commands.sandbox_kind()

    async def run_command(self, command: str | list[str], timeout: float | None = None) -> CommandResult:
        """Run a command in the worktree; the result (also kept as `last_command`) says how it went."""
        limit = self.command_timeout if timeout is None else timeout
        if limit <= 0:
            raise ToolError(f"timeout must be a positive number of seconds, got {timeout}")
        try:
            result = await commands.run_command(command, self.root, timeout=min(limit, commands.MAX_TIMEOUT),
                                                sandbox=self.sandbox)
        except CommandError as exc:
            raise ToolError(str(exc)) from None
        except OSError as exc:
            raise ToolError(self.explain("run_command", exc)) from None
        self.last_command = result
        return result

    # -- dispatch ----------------------------------------------------------

    def _file_tools(self) -> dict[str, Callable[..., str]]:
        return {"read_file": self.read_file, "write_file": self.write_file, "edit_file": self.edit_file,
                "list_files": self.list_files, "search": self.search}

    def call(self, name: str, arguments: dict[str, Any]) -> str:
        """Run a file tool; every failure, whatever raised it, is a ToolError with a message for the model."""
        tool = self._file_tools().get(name)
        if tool is None:
            if name == "run_command":
                raise ToolError("run_command is asynchronous: call it through Workspace.acall")
            raise ToolError(f"unknown tool {_preview(name)}; the workspace tools are: "
                            f"{', '.join([*self._file_tools(), 'run_command'])}")
        try:
            return _printable(tool(**validate_arguments(name, arguments)))
        except ToolError as exc:
            raise type(exc)(_printable(str(exc))) from None
        except Exception as exc:
            raise ToolError(self.explain(name, exc)) from None

    async def acall(self, name: str, arguments: dict[str, Any]) -> str:
        """Like `call`, plus run_command; file tools run in a background thread, so a disk, a
        walk or a search never holds the event loop."""
        if name == "search" and isinstance(arguments, dict) and arguments.get("regex") is True:
            return await self._asearch_regex(arguments)
        if name != "run_command":
            return await asyncio.get_running_loop().run_in_executor(
                tool_threads(), functools.partial(self.call, name, arguments))
        checked = validate_arguments(name, arguments)
        result = await self.run_command(checked["command"], checked.get("timeout"))
        return result.text()

    # -- helpers -----------------------------------------------------------

    def _existing_file(self, path: str) -> Path:
        target = self.resolve(path)
        if not target.is_file():
            raise ToolError(f"no file {path!r} in the worktree")
        return target

    def _open_text(self, path: str) -> Any:
        """The file opened for reading, refused when binary (a NUL byte in its head, as git decides)."""
        handle = _open_regular(self._existing_file(path))
        if b"\0" in handle.peek(SNIFF_BYTES)[:SNIFF_BYTES]:
            handle.close()
            raise ToolError(f"{path!r} is not a text file (it holds NUL bytes)")
        return handle

    def _small_text(self, path: str) -> str:
        """The whole text of a file small enough to edit in memory; the size is checked first."""
        target = self._existing_file(path)
        with _open_regular(target) as handle:
            data = handle.read(MAX_EDIT_BYTES + 1)
        if len(data) > MAX_EDIT_BYTES:
            raise ToolError(f"{path!r} has {target.stat().st_size:,} bytes, more than edit_file works on "
                            f"({MAX_EDIT_BYTES:,}); write it anew with write_file, or change it with "
                            "run_command (e.g. sed -i)")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError(f"{path!r} is not a text file") from None
        return text.replace("\r\n", "\n").replace("\r", "\n")    # as text mode reads it


TOOL_THREADS = 2             # file tool calls running at once in this process, across all agents
_threads: ThreadPoolExecutor | None = None


def tool_threads() -> ThreadPoolExecutor:
    """The threads the file tools run in: few, because each busy one competes with the event
    loop for the GIL, and a waiting loop may lose the handover to another worker each 5 ms
    switch interval; the slow work (regular expressions) runs in processes instead."""
    global _threads
    if _threads is None:
        _threads = ThreadPoolExecutor(TOOL_THREADS, "osqr-tools")
    return _threads


@dataclass
class _Walk:
    """The files under a directory of the worktree, depth first in name order.

    Bounded in entries and seconds (a thread walking a huge tree still takes the
    GIL from the loop); what cannot be read (a symlink loop, a permission denied)
    is noted and skipped rather than failing the whole listing or search.
    """

    workspace: Workspace
    deadline: float
    skipped: list[str] = field(default_factory=list)
    stopped: str = ""           # why the walk ended early, if it did
    seen: int = 0

    def files(self, base: Path) -> Iterator[Path]:
        if not base.is_dir():
            yield base
            return
        stack = [base]
        while stack:
            subdirs = []
            for entry in self._entries(stack.pop()):
                if self._over():
                    return
                kind = self._kind(entry)
                if kind == "dir":
                    subdirs.append(Path(entry.path))
                elif kind == "file":
                    yield Path(entry.path)
            stack.extend(reversed(subdirs))

    def lines(self, file: Path) -> list[str]:
        """The lines of a text file, split at newlines as read_file counts them; nothing for binary
        or very large files, and a note for unreadable ones."""
        try:
            with _open_regular(file) as handle:
                data = handle.read(MAX_SEARCH_BYTES + 1)
        except OSError as exc:
            self._skip(file, exc)
            return []
        if len(data) > MAX_SEARCH_BYTES or b"\0" in data[:SNIFF_BYTES]:
            return []
        lines = data.decode(errors="replace").split("\n")
        return lines[:-1] if lines[-1] == "" else lines

    def note(self) -> str:
        """What the caller did not see, on lines of its own after the answer; '' when nothing."""
        parts = []
        if self.skipped:
            shown = ", ".join(self.skipped[:MAX_SKIPPED_SHOWN])
            if len(self.skipped) > MAX_SKIPPED_SHOWN:
                shown += f" and {len(self.skipped) - MAX_SKIPPED_SHOWN} more"
            parts.append(f"[{len(self.skipped)} entr{'y' if len(self.skipped) == 1 else 'ies'} skipped: {shown}]")
        if self.stopped:
            parts.append(f"[the walk {self.stopped}; narrow the path (or glob) to see the rest]")
        return "".join("\n" + p for p in parts)

    def _entries(self, folder: Path) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(folder) as scan:
                entries = [e for _, e in zip(range(MAX_DIR_ENTRIES + 1), scan)]
        except OSError as exc:
            self._skip(folder, exc, "/")
            return []
        if len(entries) > MAX_DIR_ENTRIES:
            entries = entries[:MAX_DIR_ENTRIES]
            self.skipped.append(f"{self._name(folder)}/ (more than {MAX_DIR_ENTRIES:,} entries; "
                                f"{MAX_DIR_ENTRIES:,} looked at)")
        return sorted((e for e in entries if e.name not in SKIPPED_DIRS), key=lambda e: e.name)

    def _kind(self, entry: os.DirEntry[str]) -> str | None:
        try:
            if entry.is_symlink():
                return self._link_kind(entry)
            if entry.is_dir(follow_symlinks=False):
                return "dir"
            return "file" if entry.is_file(follow_symlinks=False) else None   # no FIFOs, sockets, devices
        except OSError as exc:
            self._skip(Path(entry.path), exc)
            return None

    def _link_kind(self, entry: os.DirEntry[str]) -> str | None:
        """A symlink is listed when it leads to a regular file inside the worktree; a linked
        directory is not walked into (as os.walk does not)."""
        try:
            info = os.stat(entry.path)
        except OSError as exc:
            if exc.errno not in _QUIET_ERRNOS:
                self._skip(Path(entry.path), exc)
            return None
        target = Path(os.path.realpath(entry.path))
        return "file" if stat.S_ISREG(info.st_mode) and self.workspace._allowed(target) else None

    def _over(self) -> bool:
        self.seen += 1
        if self.seen > MAX_WALK_ENTRIES:
            self.stopped = f"stopped after {MAX_WALK_ENTRIES:,} entries"
        elif time.monotonic() > self.deadline:
            self.stopped = f"stopped after {WALK_SECONDS:g} s"
        return bool(self.stopped)

    def _skip(self, path: Path, exc: OSError, suffix: str = "") -> None:
        self.skipped.append(f"{self._name(path)}{suffix} ({_reason(exc)})")

    def _name(self, path: Path) -> str:
        try:
            return path.relative_to(self.workspace.root).as_posix() or "."
        except ValueError:
            return path.as_posix()


def _glob_match(relative: str, glob: str) -> bool:
    """'*.py' matches at any depth; 'src/*.py' and '**/x.py' match from the worktree's root."""
    patterns = [glob, glob[3:]] if glob.startswith("**/") else [glob]
    return any(_path_match(relative, p) or fnmatch.fnmatch(relative, p) for p in patterns)


def _path_match(relative: str, pattern: str) -> bool:
    try:
        return PurePosixPath(relative).match(pattern)
    except ValueError:                      # an empty pattern, e.g. '/'
        return False


def _clip(line: str) -> str:
    line = line.rstrip()
    if len(line) <= MAX_MATCH_LINE:
        return line
    return line[:MAX_MATCH_LINE] + f" [... {len(line) - MAX_MATCH_LINE} more characters]"
