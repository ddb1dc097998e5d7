"""The agent's tools, confined to one worktree.

Every path is resolved against the worktree; anything that leads out of it
(`..`, an absolute path elsewhere, a symlink pointing out, also through a
symlinked directory) or into `.git` is refused with a `ToolError` that the
agent sees, so the run goes on. So is every other failure of a tool (a NUL byte
or a lone surrogate in a path, a name too long, a file where a directory should
be, a symlink loop, a permission denied): one bad call never ends a task.

Results are bounded, with the cut marked, so one tool call cannot flood the
model's context; and so is the work behind them, so one call cannot stall the
kernel: reads stop at their limit and check sizes first, walks stop after a
number of entries or seconds, and regular expressions run in a short-lived
child process that is killed when it overruns (compiling `(?:a{1000}){1000}`
holds the GIL for 0.35 s, which no thread can hide from the event loop).

`Workspace.call` runs the file tools synchronously; `Workspace.acall` runs
those (in a thread) and `run_command` (see `commands.py`) without blocking the
kernel. `report_decision`, `share` and `finish` are specified here but carried
out by the agent loop, since they talk to the orchestrator rather than the worktree.
"""

from __future__ import annotations

import asyncio
import codecs
import errno
import fnmatch
import functools
import json
import os
import stat
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator, TypeVar

from ..models.base import ToolSpec
from . import commands
from .commands import CommandError, CommandResult, SandboxMode

MAX_RESULT = 20_000         # characters of a tool result the model sees
MAX_LISTING = 500           # entries of a listing
MAX_MATCHES = 200           # search hits shown
MAX_MATCH_LINE = 300        # characters of one search hit's line
MAX_SEARCH_BYTES = 1_000_000  # files larger than this are not searched
MAX_EDIT_BYTES = 2 * 2**20   # edit_file (and the approval diff of a write) read files up to this size
MAX_LINE_BYTES = 2**20       # read_file reads at most this much of one line
MAX_SKIP_BYTES = 16 * 2**20  # read_file counts lines this far into a file, no further
MAX_PATTERN = 10_000         # characters of a search pattern or glob
MAX_DIR_ENTRIES = 10_000     # entries of one directory looked at by a walk
MAX_WALK_ENTRIES = 50_000    # entries looked at by one listing or search
WALK_SECONDS = 5.0           # a listing or search stops after this long, saying so
PATTERN_SECONDS = 1.0        # a regular expression may take this long on one line
CHILD_SECONDS = 15.0         # the regular-expression search process is killed after this long
CHILD_MEMORY = 2**30         # bytes of address space that process may use
SNIFF_BYTES = 8192           # a NUL byte in this head makes a file binary
SKIPPED_DIRS = frozenset({".git", "__pycache__", "node_modules", ".venv", ".tox", ".mypy_cache",
                          ".pytest_cache", ".ruff_cache"})   # not listed or searched; still readable by path


class ToolError(Exception):
    """A tool call that cannot be done; the message goes back to the model."""


class Rejected(ToolError):
    """The person said no to this change: not a failure of the agent's."""


def _string(name: str, text: str) -> dict[str, Any]:
    return {"type": "string", "description": text}


def _integer(text: str) -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "description": text}


_PATH = _string("path", "path relative to the worktree")

TOOL_SPECS = [
    ToolSpec("read_file", "Read a text file of the worktree; for a big file, read a range of lines "
             "with offset and limit.",
             {"type": "object", "properties": {
                 "path": _PATH,
                 "offset": _integer("first line to read, counting from 1 (default 1)"),
                 "limit": _integer("how many lines to read (default: as many as fit)")},
              "required": ["path"]}),
    ToolSpec("write_file", "Create or replace a text file of the worktree.",
             {"type": "object", "properties": {"path": _PATH,
                                               "content": _string("content", "the whole new content")},
              "required": ["path", "content"]}),
    ToolSpec("edit_file", "Replace an exact piece of text in a file of the worktree. `old` must occur "
             "exactly once (include surrounding lines to make it unique) unless replace_all is true.",
             {"type": "object", "properties": {
                 "path": _PATH,
                 "old": _string("old", "the exact text to replace, whitespace included"),
                 "new": _string("new", "the text to put in its place"),
                 "replace_all": {"type": "boolean", "description": "replace every occurrence (default false)"}},
              "required": ["path", "old", "new"]}),
    ToolSpec("list_files", "List the files under a directory of the worktree.",
             {"type": "object", "properties": {"path": _string("path", "directory, default '.'")}}),
    ToolSpec("search", "Search the worktree's text files for a text or a regular expression; "
             "answers `path:line: text`.",
             {"type": "object", "properties": {
                 "pattern": _string("pattern", "the text (or regular expression) to find"),
                 "path": _string("path", "file or directory to search, default '.'"),
                 "regex": {"type": "boolean", "description": "pattern is a Python regular expression "
                           "(default false: plain text)"},
                 "glob": _string("glob", "only files matching this, e.g. '*.py' or 'src/*.ts'")},
              "required": ["pattern"]}),
    ToolSpec("run_command", "Run the project's own tests, linters or build in the worktree, e.g. "
             "'python -m pytest -q'. No network; only the worktree is writable. Answers the exit "
             "code, then the output (long output is cut in the middle).",
             {"type": "object", "properties": {
                 "command": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                             "description": "the command line, or its argv list; pipes and && run "
                                            "through sh"},
                 "timeout": {"type": "number", "description": f"seconds before it is killed (default "
                             f"{commands.DEFAULT_TIMEOUT:g}, at most {commands.MAX_TIMEOUT:g})"}},
              "required": ["command"]}),
    ToolSpec("report_decision",
             "Report a design decision before acting on it; the answer says which option to use.",
             {"type": "object", "properties": {
                 "question": _string("question", "the decision to take"),
                 "options": {"type": "array", "items": {"anyOf": [
                     {"type": "string"},
                     {"type": "object", "properties": {
                         "label": {"type": "string"},
                         "pros": {"type": "array", "items": {"type": "string"}},
                         "cons": {"type": "array", "items": {"type": "string"}}},
                      "required": ["label"]}]}},
                 "proposed": _string("proposed", "the option you would choose"),
                 "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                 "category": _string("category", "kind of decision, e.g. auth, data_model, api"),
                 "blocked": {"type": "boolean",
                             "description": "true when you cannot go on without an answer"}},
              "required": ["question", "options", "proposed", "confidence"]}),
    # Carried out by the agent loop: the orchestrator sends it to dependents as a partial message.
    ToolSpec("share", "Publish what you know so far (an interface, a schema) to the tasks that "
             "depend on yours, before you finish.",
             {"type": "object", "properties": {
                 "context": _string("context", "what dependents can already build on"),
                 "files": {"type": "array", "items": {"type": "string"},
                           "description": "worktree files that hold it, if any"}},
              "required": ["context"]}),
    ToolSpec("finish", "Finish the task: what you did, the decisions taken, context for dependents.",
             {"type": "object", "properties": {
                 "summary": _string("summary", "what was done"),
                 "decisions": {"type": "array", "items": {"type": "string"}},
                 "context": _string("context", "what tasks that build on this one must know")},
              "required": ["summary"]}),
]
SPECS = {spec.name: spec for spec in TOOL_SPECS}


def bounded(text: str, limit: int = MAX_RESULT) -> str:
    """At most `limit` characters, the cut marked so the model knows there is more."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... cut: {len(text) - limit} more characters not shown]"


# Argument checks against the JSON schemas: cheap, and each error names the argument.

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "number": (int, float), "integer": (int,), "boolean": (bool,),
    "array": (list,), "object": (dict,)}
_TYPE_NAMES = {"string": "a string", "number": "a number", "integer": "an integer",
               "boolean": "true or false", "array": "a list", "object": "an object"}


def _matches(value: Any, schema: dict[str, Any]) -> bool:
    if "anyOf" in schema:
        return any(_matches(value, s) for s in schema["anyOf"])
    kind = schema.get("type")
    if kind is None:
        return True
    if isinstance(value, bool) and kind in ("number", "integer"):
        return False
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    if not isinstance(value, _JSON_TYPES[kind]):
        return False
    return kind != "array" or "items" not in schema or all(_matches(v, schema["items"]) for v in value)


def _expected(schema: dict[str, Any]) -> str:
    if "anyOf" in schema:
        return " or ".join(_expected(s) for s in schema["anyOf"])
    kind = schema.get("type", "")
    items = schema.get("items", {}).get("type") if kind == "array" else None
    return f"a list of {items}s" if items else _TYPE_NAMES.get(kind, kind)


def validate_arguments(name: str, arguments: Any) -> dict[str, Any]:
    """The arguments checked against the tool's schema; integral floats (3.0) become ints."""
    spec = SPECS.get(name)
    if spec is None:
        raise ToolError(f"unknown tool {name!r}; the tools are: {', '.join(SPECS)}")
    if not isinstance(arguments, dict):
        raise ToolError(f"the arguments of {name} must be a JSON object, got {type(arguments).__name__}")
    properties: dict[str, Any] = spec.parameters.get("properties", {})
    for key in arguments:
        if key not in properties:
            raise ToolError(f"{name} has no argument {key!r}; its arguments are: {', '.join(properties)}")
    for key in spec.parameters.get("required", []):
        if key not in arguments:
            raise ToolError(f"{name} needs the argument {key!r} ({_expected(properties[key])})")
    checked = {}
    for key, value in arguments.items():
        if not _matches(value, properties[key]):
            raise ToolError(f"{name}: the argument {key!r} must be {_expected(properties[key])}, "
                            f"got {type(value).__name__} {_preview(value)}")
        integral = properties[key].get("type") == "integer" and isinstance(value, float)
        checked[key] = int(value) if integral else value
    return checked


def _preview(value: Any) -> str:
    try:
        text = repr(value)
    except RecursionError:
        return f"(a {type(value).__name__} nested too deeply to show)"
    return text if len(text) <= 60 else text[:57] + "..."


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
CHUNK = 2**20               # bytes read at a time when counting lines


def _reason(exc: OSError) -> str:
    return _REASONS.get(exc.errno or 0, exc.strerror or type(exc).__name__)


def _printable(text: str) -> str:
    """The text with lone surrogates escaped: they cannot be encoded, so a model request or the
    event log holding one would fail later, far from the tool call that made it."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


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


def _open_regular(path: Path) -> Any:
    """A regular file opened for binary reading; never blocks on a FIFO swapped in for it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(0, "not a regular file", str(path))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _encoded(content: str, argument: str = "content") -> bytes:
    """The UTF-8 bytes to write, encoded before the file is touched (so a bad character leaves no
    half-written file)."""
    try:
        return content.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ToolError(f"{argument} holds {exc.object[exc.start:exc.end]!r} at character {exc.start}, "
                        "a lone surrogate (half of a UTF-16 pair) that cannot be written as UTF-8; "
                        "remove it") from None


def _replace(target: Path, data: bytes) -> None:
    """Write a new file exclusively, an existing one through a temporary file and a rename.

    Either way a hard link to a file outside the worktree is never written through.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        with open(target, "xb") as handle:
            handle.write(data)
        return
    mode = target.stat().st_mode & 0o7777
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name[:200]}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _skip_lines(handle: Any, count: int, path: str) -> int:
    """Move past `count` lines, a chunk at a time (one line may be a gigabyte); returns how many
    lines were passed, fewer than `count` at the end of the file."""
    passed = 0
    last = b""
    while passed < count:
        start = handle.tell()
        if start > MAX_SKIP_BYTES:
            raise ToolError(f"line {count + 1} of {path!r} lies beyond the first {MAX_SKIP_BYTES // 2**20} MiB, "
                            "as far as read_file counts lines; find what you need with search, or print the "
                            f"lines with run_command (e.g. sed -n '{count + 1},+99p' {path})")
        chunk = handle.read(CHUNK)
        if not chunk:
            return passed + (1 if last and last != b"\n" else 0)
        last = chunk[-1:]
        newlines = chunk.count(b"\n")
        if newlines < count - passed:
            passed += newlines
            continue
        handle.seek(start + _after_newline(chunk, count - passed))
        return count
    return passed


def _after_newline(chunk: bytes, n: int) -> int:
    """The index just past the n-th newline of chunk, by bisection: counting is C-fast, splitting
    a chunk of a million empty lines is not."""
    low, high = 0, len(chunk)
    while low < high:
        middle = (low + high) // 2
        if chunk.count(b"\n", 0, middle) >= n:
            high = middle
        else:
            low = middle + 1
    return low


def _decoded(raw: bytes, path: str, number: int) -> str:
    if b"\0" in raw:
        raise ToolError(f"{path!r} is not a text file (line {number} holds NUL bytes)")
    whole = raw.endswith(b"\n") or len(raw) < MAX_LINE_BYTES
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(raw, final=whole)
    except UnicodeDecodeError:
        raise ToolError(f"{path!r} is not a text file (line {number} is not UTF-8)") from None
    return text[:-2] + "\n" if text.endswith("\r\n") else text


def _line_window(handle: Any, path: str, offset: int, limit: int | None) -> str:
    """Lines from `offset` while they fit in MAX_RESULT; a marker names the next offset."""
    shown: list[str] = []
    size = 0
    number = offset
    while limit is None or number < offset + limit:
        start = handle.tell()
        raw = handle.readline(MAX_LINE_BYTES)
        if not raw:
            break
        if b"\0" in raw and shown:         # binary from here on: show the text before it
            handle.seek(start)
            break
        text = _decoded(raw, path, number)
        if size + len(text) > MAX_RESULT:
            if not shown:                  # one line longer than a whole result
                return _long_line(text, raw, number)
            handle.seek(start)
            break
        shown.append(text)
        size += len(text)
        number += 1
    text = "".join(shown)
    if handle.peek(1):
        text += ("" if text.endswith("\n") else "\n") + _read_on(handle, number)
    return text


def _long_line(text: str, raw: bytes, number: int) -> str:
    if raw.endswith(b"\n") or len(raw) < MAX_LINE_BYTES:
        head = bounded(text)
    else:
        head = text[:MAX_RESULT] + f"\n[... cut: the line goes on for more than {MAX_LINE_BYTES:,} bytes]"
    return head + f"\n[... line {number} cut; read on with offset={number + 1}]"


def _read_on(handle: Any, number: int) -> str:
    """The marker after a window: which lines follow, counted when that is cheap."""
    size = os.fstat(handle.fileno()).st_size
    if size - handle.tell() > MAX_SKIP_BYTES:
        return (f"[... lines from {number} on not shown (the file has {size:,} bytes); "
                f"read on with offset={number}]")
    last = number - 1 + _lines_left(handle)
    return f"[... lines {number}-{last} of {last} not shown; read on with offset={number}]"


def _lines_left(handle: Any) -> int:
    count = 0
    last = b""
    while chunk := handle.read(CHUNK):
        count += chunk.count(b"\n")
        last = chunk[-1:]
    return count + (1 if last and last != b"\n" else 0)


def _near_miss(text: str, old: str) -> str:
    stripped = old.strip()
    if stripped and stripped != old and stripped in text:
        return " (it occurs when leading and trailing whitespace is ignored)"
    if old.lower() in text.lower():
        return " (it occurs with different upper and lower case)"
    return ""


class _OutOfTime(Exception):
    """The search's time is spent: stop and show what was found."""


class _SlowPattern(Exception):
    """One line took the regular expression longer than PATTERN_SECONDS."""


def _regex_matcher(pattern: str, deadline: float) -> Callable[[str], bool]:
    """A line test for the child process, with the `regex` module's per-call timeout."""
    import regex as regex_module

    try:
        compiled = regex_module.compile(pattern)
    except regex_module.error as exc:
        raise ToolError(f"bad regular expression {pattern!r}: {exc}; fix it, or search for plain text "
                        "with regex false") from None
    except RecursionError:
        raise ToolError(f"bad regular expression {_preview(pattern)}: nested too deeply") from None

    def found(line: str) -> bool:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _OutOfTime
        try:
            return compiled.search(line, timeout=min(PATTERN_SECONDS, left), concurrent=True) is not None
        except TimeoutError:
            raise _SlowPattern if left > PATTERN_SECONDS else _OutOfTime from None
    return found


_WORKER_ARGV = [sys.executable or "python3", "-I", "-c",
                "import os; os.nice(10); import sys; "
                f"sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r}); "
                "from osqr_nb.agents.tools import _search_worker; _search_worker()"]


def _child_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", os.defpath)}     # nothing secret: the child needs none


def _run_child(request: str, cwd: Path) -> tuple[str, str, int | None]:
    """(stdout, stderr, exit code) of the search process; exit code None: killed at CHILD_SECONDS."""
    try:
        done = subprocess.run(_WORKER_ARGV, input=request, capture_output=True, text=True, cwd=cwd,
                              timeout=CHILD_SECONDS, env=_child_env())
    except subprocess.TimeoutExpired:
        return "", "", None
    return done.stdout, done.stderr, done.returncode


async def _arun_child(request: str, cwd: Path) -> tuple[str, str, int | None]:
    """`_run_child` for the event loop; the process is killed if the caller is cancelled."""
    process = await asyncio.create_subprocess_exec(
        *_WORKER_ARGV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
        env=_child_env())
    try:
        async with asyncio.timeout(CHILD_SECONDS):
            out, err = await process.communicate(request.encode())
    except TimeoutError:
        return "", "", None
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return out.decode(errors="replace"), err.decode(errors="replace"), process.returncode


def _child_answer(pattern: str, out: str, err: str, code: int | None) -> str:
    if code is None:
        raise ToolError(f"the search for the regular expression {pattern!r} did not end within "
                        f"{CHILD_SECONDS:g} s and was stopped: compiling or running it costs too much "
                        "(large counted repeats like {1000} and nested repeats do); simplify it")
    try:
        answer = json.loads(out)
    except ValueError:
        raise ToolError(f"the search for {pattern!r} failed (its process ended with code {code}): "
                        f"{_printable(err.strip()[-300:])}") from None
    if "error" in answer:
        raise ToolError(answer["error"])
    return answer["result"]


def _search_worker() -> None:
    """The child process of a regular-expression search: a JSON request on stdin, a JSON answer
    on stdout. Its memory is capped, so a pattern cannot exhaust the machine's (its priority
    is lowered by `_WORKER_ARGV`, so that on a busy machine the kernel gets the CPU first)."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))
    request = json.loads(sys.stdin.read())
    workspace = Workspace(Path(request["root"]))
    try:
        answer = {"result": workspace._regex_search(request["pattern"], request["path"], request["glob"])}
    except ToolError as exc:
        answer = {"error": str(exc)}
    except Exception as exc:
        answer = {"error": workspace.explain("search", exc)}
    sys.stdout.write(json.dumps(answer))


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
