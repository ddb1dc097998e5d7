"""The agent's tools, confined to one worktree.

Every path is resolved against the worktree; anything that leads out of it
(`..`, an absolute path elsewhere, a symlink pointing out, also through a
symlinked directory) or into `.git` is refused with a `ToolError` that the
agent sees, so the run goes on. Results are bounded, with the cut marked, so
one tool call cannot flood the model's context.

`Workspace.call` runs the file tools synchronously; `Workspace.acall` runs
those and `run_command` (see `commands.py`) without blocking the kernel.
`report_decision`, `share` and `finish` are specified here but carried out by
the agent loop, since they talk to the orchestrator rather than the worktree.
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
import re
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator

from ..models.base import ToolSpec
from . import commands
from .commands import CommandError, CommandResult, SandboxMode

MAX_RESULT = 20_000         # characters of a tool result the model sees
MAX_LISTING = 500           # entries of a listing
MAX_MATCHES = 200           # search hits shown
MAX_MATCH_LINE = 300        # characters of one search hit's line
MAX_SEARCH_BYTES = 1_000_000  # files larger than this are not searched
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
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
        target = (self.root / path).resolve()
        if not self._inside(target):
            raise ToolError(f"path {path!r} is outside the worktree (after following symlinks); "
                            "use a path inside it")
        relative = target.relative_to(self.root)
        if relative.parts[:1] == (".git",):
            raise ToolError(f"path {path!r} is inside .git, which agents may not touch")
        return target

    def _inside(self, target: Path) -> bool:
        return target == self.root or self.root in target.parents

    def _relative(self, target: Path) -> str:
        return target.relative_to(self.root).as_posix()

    def _walk(self, base: Path) -> Iterator[Path]:
        """Files under `base` that really lie in the worktree (symlinks leading out are left out)."""
        if base.is_file():
            yield base
            return
        for folder, dirs, files in os.walk(base):
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
            for name in sorted(files):
                path = Path(folder, name)
                if self._inside(path.resolve()) and path.resolve().is_file():
                    yield path

    # -- file tools --------------------------------------------------------

    def read_file(self, path: str, offset: int = 1, limit: int | None = None) -> str:
        """The file, or lines offset..offset+limit-1; a marker says where to read on."""
        target = self._existing_file(path)
        text = self._text(target, path)
        if offset == 1 and limit is None and len(text) <= MAX_RESULT:
            return text
        if offset < 1 or (limit is not None and limit < 1):
            raise ToolError("offset and limit count lines from 1; give positive numbers")
        lines = text.splitlines(keepends=True)
        if offset > max(len(lines), 1):
            raise ToolError(f"offset {offset} is past the end: {path!r} has {len(lines)} lines")
        return _line_window(lines, offset, limit)

    def write_file(self, path: str, content: str) -> str:
        target = self.resolve(path)
        if target == self.root or target.is_dir():
            raise ToolError(f"{path!r} is a directory; give a file path")
        if not isinstance(content, str):
            raise ToolError("content must be a string")
        existed = target.exists()
        _replace(target, content)
        return f"{'replaced' if existed else 'created'} {self._relative(target)} ({len(content)} characters)"

    def plan_edit(self, path: str, old: str, new: str, replace_all: bool = False) -> tuple[str, str]:
        """(current content, content after the edit) without writing: lets a caller ask approval first."""
        if not isinstance(old, str) or not isinstance(new, str):
            raise ToolError("edit_file needs old and new as strings")
        if not old:
            raise ToolError("old is empty; give the exact text to replace (use write_file for a new file)")
        if old == new:
            raise ToolError("old and new are the same; nothing to change")
        target = self._existing_file(path)
        text = self._text(target, path)
        count = text.count(old)
        if count == 0:
            raise ToolError(f"the text to replace was not found in {path!r}{_near_miss(text, old)}; "
                            "read the file and copy the exact text, whitespace included")
        if count > 1 and not replace_all:
            raise ToolError(f"the text to replace occurs {count} times in {path!r}; include more "
                            "surrounding lines so it is unique, or set replace_all to true")
        return text, text.replace(old, new) if replace_all else text.replace(old, new, 1)

    def edit_file(self, path: str, old: str, new: str, replace_all: bool = False) -> str:
        text, edited = self.plan_edit(path, old, new, replace_all)
        target = self.resolve(path)
        _replace(target, edited)
        count = text.count(old) if replace_all else 1
        first = text[:text.index(old)].count("\n") + 1
        where = f"first at line {first}" if count > 1 else f"at line {first}"
        return f"edited {self._relative(target)}: replaced {count} occurrence{'s' * (count > 1)} ({where})"

    def list_files(self, path: str = ".") -> str:
        base = self.resolve(path)
        if not base.is_dir():
            raise ToolError(f"no directory {path!r} in the worktree")
        entries = [self._relative(p) for p in self._walk(base)]
        shown = "\n".join(entries[:MAX_LISTING]) or "(no files)"
        if len(entries) > MAX_LISTING:
            shown += f"\n[... cut: {len(entries) - MAX_LISTING} more files]"
        return shown

    def search(self, pattern: str, path: str = ".", regex: bool = False, glob: str | None = None) -> str:
        """`path:line: text` for each matching line of the text files under `path`, bounded."""
        found = _matcher(pattern, regex)
        base = self.resolve(path)
        if not base.exists():
            raise ToolError(f"no file or directory {path!r} in the worktree")
        hits: list[str] = []
        total = 0
        for file in self._walk(base):
            relative = self._relative(file)
            if glob and not _glob_match(relative, glob):
                continue
            for number, line in _text_lines(file):
                if found(line):
                    total += 1
                    if len(hits) < MAX_MATCHES:
                        hits.append(f"{relative}:{number}: {_clip(line)}")
        if not hits:
            return f"no matches for {pattern!r} in {path!r}" + (f" (files matching {glob!r})" if glob else "")
        if total > len(hits):
            hits.append(f"[... cut: {total} matches in all, {len(hits)} shown; narrow the pattern, "
                        "path or glob]")
        return bounded("\n".join(hits))

    # -- commands ----------------------------------------------------------

    @property
    def sandbox_mode(self) -> SandboxMode:
        """How the next command will run: lets the autonomy policy ask before an unsandboxed one."""
        if self.sandbox is False:
            return "none"
        return "bwrap" if commands.sandbox_available() else "none"

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
        self.last_command = result
        return result

    # -- dispatch ----------------------------------------------------------

    def _file_tools(self) -> dict[str, Callable[..., str]]:
        return {"read_file": self.read_file, "write_file": self.write_file, "edit_file": self.edit_file,
                "list_files": self.list_files, "search": self.search}

    def call(self, name: str, arguments: dict[str, Any]) -> str:
        """Run a file tool; every failure is a ToolError with a message for the model."""
        tool = self._file_tools().get(name)
        if tool is None:
            if name == "run_command":
                raise ToolError("run_command is asynchronous: call it through Workspace.acall")
            raise ToolError(f"unknown tool {name!r}; the workspace tools are: "
                            f"{', '.join([*self._file_tools(), 'run_command'])}")
        checked = validate_arguments(name, arguments)
        try:
            return tool(**checked)
        except OSError as exc:
            raise ToolError(f"{name} failed: {exc.strerror or exc}") from None

    async def acall(self, name: str, arguments: dict[str, Any]) -> str:
        """Like `call`, plus run_command; slow tools run off the event loop."""
        if name != "run_command":
            if name in ("search", "list_files"):
                return await asyncio.to_thread(self.call, name, arguments)
            return self.call(name, arguments)
        checked = validate_arguments(name, arguments)
        result = await self.run_command(checked["command"], checked.get("timeout"))
        return result.text()

    # -- helpers -----------------------------------------------------------

    def _existing_file(self, path: str) -> Path:
        target = self.resolve(path)
        if not target.is_file():
            raise ToolError(f"no file {path!r} in the worktree")
        return target

    @staticmethod
    def _text(target: Path, path: str) -> str:
        try:
            return target.read_text()
        except UnicodeDecodeError:
            raise ToolError(f"{path!r} is not a text file") from None


def _replace(target: Path, content: str) -> None:
    """Write a new file exclusively, an existing one through a temporary file and a rename.

    Either way a hard link to a file outside the worktree is never written through.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        with open(target, "x") as handle:
            handle.write(content)
        return
    mode = target.stat().st_mode & 0o7777
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _line_window(lines: list[str], offset: int, limit: int | None) -> str:
    """Lines from `offset` while they fit in MAX_RESULT; a marker names the next offset."""
    end = len(lines) if limit is None else min(len(lines), offset - 1 + limit)
    shown: list[str] = []
    size = 0
    index = offset - 1
    while index < end and size + len(lines[index]) <= MAX_RESULT:
        shown.append(lines[index])
        size += len(lines[index])
        index += 1
    if not shown and index < end:          # one line longer than a whole result
        return bounded(lines[index]) + f"\n[... line {index + 1} cut; read on with offset={index + 2}]"
    text = "".join(shown)
    if index < len(lines):
        text += ("" if text.endswith("\n") else "\n") + (
            f"[... lines {index + 1}-{len(lines)} of {len(lines)} not shown; read on with offset={index + 1}]")
    return text


def _near_miss(text: str, old: str) -> str:
    stripped = old.strip()
    if stripped and stripped != old and stripped in text:
        return " (it occurs when leading and trailing whitespace is ignored)"
    if old.lower() in text.lower():
        return " (it occurs with different upper and lower case)"
    return ""


def _matcher(pattern: str, regex: bool) -> Callable[[str], bool]:
    if not pattern:
        raise ToolError("pattern is empty; give the text to search for")
    if not regex:
        return lambda line: pattern in line
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ToolError(f"bad regular expression {pattern!r}: {exc}; fix it, or search for plain text "
                        "with regex false") from None
    return lambda line: compiled.search(line) is not None


def _glob_match(relative: str, glob: str) -> bool:
    """'*.py' matches at any depth; 'src/*.py' and '**/x.py' match from the worktree's root."""
    patterns = [glob, glob[3:]] if glob.startswith("**/") else [glob]
    return any(PurePosixPath(relative).match(p) or fnmatch.fnmatch(relative, p) for p in patterns)


def _text_lines(file: Path) -> Iterator[tuple[int, str]]:
    """Numbered lines of a text file; nothing for binary, unreadable or very large files."""
    try:
        if file.stat().st_size > MAX_SEARCH_BYTES:
            return
        data = file.read_bytes()
    except OSError:
        return
    if b"\0" in data[:8192]:
        return
    text = data.decode(errors="replace")
    yield from enumerate(text.splitlines(), start=1)


def _clip(line: str) -> str:
    line = line.rstrip()
    if len(line) <= MAX_MATCH_LINE:
        return line
    return line[:MAX_MATCH_LINE] + f" [... {len(line) - MAX_MATCH_LINE} more characters]"
