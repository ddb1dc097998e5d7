"""What an agent's model may call: each tool's spec (the JSON schema the model sees), a
call's arguments checked against it, and the error a call that cannot be done raises.

The specs are the contract with the model, read in one place; the worktree's tools that
carry the calls out are in tools.py, `run_command` in commands.py, and `report_decision`,
`share` and `finish` in the agent loop, since they talk to the orchestrator rather than the
worktree. Every error a tool raises is a `ToolError`: its message goes back to the model and
the run goes on.
"""

from __future__ import annotations

from typing import Any

from ..models.base import ToolSpec
from . import commands

MAX_RESULT = 20_000         # characters of a tool result the model sees


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


def _printable(text: str) -> str:
    """The text with lone surrogates escaped: they cannot be encoded, so a model request or the
    event log holding one would fail later, far from the tool call that made it."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
