"""File tools confined to one worktree.

Every path is resolved against the worktree; anything that leads out of it
(`..`, an absolute path elsewhere, a symlink pointing out) or into `.git` is
refused with a `ToolError` that the agent sees, so the run goes on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..models.base import ToolSpec

MAX_RESULT = 20_000     # characters of a tool result the model sees
MAX_LISTING = 500       # entries of a listing


class ToolError(Exception):
    """A tool call that cannot be done; the message goes back to the model."""


class Rejected(ToolError):
    """The person said no to this change: not a failure of the agent's."""


def _string(name: str, text: str) -> dict[str, Any]:
    return {"type": "string", "description": text}


TOOL_SPECS = [
    ToolSpec("read_file", "Read a text file of the worktree.",
             {"type": "object", "properties": {"path": _string("path", "path relative to the worktree")},
              "required": ["path"]}),
    ToolSpec("write_file", "Create or replace a text file of the worktree.",
             {"type": "object", "properties": {"path": _string("path", "path relative to the worktree"),
                                               "content": _string("content", "the whole new content")},
              "required": ["path", "content"]}),
    ToolSpec("list_files", "List the files under a directory of the worktree.",
             {"type": "object", "properties": {"path": _string("path", "directory, default '.'")}}),
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
    ToolSpec("finish", "Finish the task: what you did, the decisions taken, context for dependents.",
             {"type": "object", "properties": {
                 "summary": _string("summary", "what was done"),
                 "decisions": {"type": "array", "items": {"type": "string"}},
                 "context": _string("context", "what tasks that build on this one must know")},
              "required": ["summary"]}),
]


def bounded(text: str, limit: int = MAX_RESULT) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[... cut: {len(text) - limit} more characters not shown]"


class Workspace:
    """The file tools of one agent, all confined to `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def resolve(self, path: str) -> Path:
        if not isinstance(path, str) or not path.strip():
            raise ToolError("a path is required (relative to the worktree)")
        target = (self.root / path).resolve()
        if target != self.root and self.root not in target.parents:
            raise ToolError(f"path {path!r} is outside the worktree; use a path inside it")
        relative = target.relative_to(self.root)
        if relative.parts[:1] == (".git",):
            raise ToolError(f"path {path!r} is inside .git, which agents may not touch")
        return target

    def read_file(self, path: str) -> str:
        target = self.resolve(path)
        if not target.is_file():
            raise ToolError(f"no file {path!r} in the worktree")
        try:
            return bounded(target.read_text())
        except UnicodeDecodeError:
            raise ToolError(f"{path!r} is not a text file") from None

    def write_file(self, path: str, content: str) -> str:
        target = self.resolve(path)
        if target == self.root or target.is_dir():
            raise ToolError(f"{path!r} is a directory; give a file path")
        if not isinstance(content, str):
            raise ToolError("content must be a string")
        target.parent.mkdir(parents=True, exist_ok=True)
        existed = target.exists()
        target.write_text(content)
        return f"{'replaced' if existed else 'created'} {target.relative_to(self.root)} ({len(content)} characters)"

    def list_files(self, path: str = ".") -> str:
        base = self.resolve(path)
        if not base.is_dir():
            raise ToolError(f"no directory {path!r} in the worktree")
        entries = sorted(str(p.relative_to(self.root)) for p in base.rglob("*")
                         if p.is_file() and ".git" not in p.relative_to(self.root).parts)
        shown = "\n".join(entries[:MAX_LISTING]) or "(no files)"
        if len(entries) > MAX_LISTING:
            shown += f"\n[... cut: {len(entries) - MAX_LISTING} more files]"
        return shown

    def call(self, name: str, arguments: dict[str, Any]) -> str:
        tool = {"read_file": self.read_file, "write_file": self.write_file,
                "list_files": self.list_files}.get(name)
        if tool is None:
            raise ToolError(f"unknown tool {name!r}")
        try:
            return tool(**arguments)
        except TypeError as exc:
            raise ToolError(f"bad arguments for {name}: {exc}") from None
        except OSError as exc:
            raise ToolError(f"{name} failed: {exc.strerror or exc}") from None
