"""Explicit plans: a cell body that *is* the plan, for people who want control.

Two forms are read; `looks_like_plan(text)` tells either from a request.

**Markdown list** — one top-level item per task:

    - [db] DB Schema (refactor): Move users to UUID keys
    - [auth] Auth Module (code) after db: Sessions and password hashing
      writes: auth/*.py, auth/__init__.py
      accept: passwords are hashed with a salt
      estimate: 3h
    - [docs] API Docs (docs) after auth, db~: Document the endpoints

  Item: `- [id] Title (kind) after dep, dep~: description`. Everything but
  the title is optional: the id defaults to the title's slug, the kind is
  guessed from the words, `after` names the tasks it waits for (by id or by
  title; commas, spaces or "and" between them), and a `~` after a dependency
  (`db~`) makes it partial: the task may start before that one finishes.
  The bullet may be `-`, `*`, `+` or `1.`; a checkbox (`[ ]`, `[x]`) is skipped.
  Lines indented under an item belong to it: `key: value` for one of
  id, title, kind, after (or depends_on, needs), partial, writes, reads,
  accept (or acceptance, done when; repeatable), estimate (`3`, `3h`, `90m`,
  `1d` = 8 hours), description; any other line continues the description.
  Headings and text before the first item are ignored. A title with `:` or
  the word "after" in it goes on an indented `title:` line.

**YAML** (PyYAML, which libcst and jupyter-events already require):

    tasks:
      - id: db
        title: DB Schema
        kind: refactor
      - id: auth
        title: Auth Module
        after: db            # or a list: [db, api~]; depends_on works too
        writes: [auth/*.py]
        estimate: 3h

  `tasks` may also map ids to their fields (`tasks: {db: {title: ...}}`); the
  keys are the same as the Markdown form's.

Errors (malformed lines, unknown kinds, dangling `after`, duplicate ids,
cycles) raise one `PlanError` that lists every problem with its line number.

Reading costs time in proportion to the text, whatever it holds: a plan is at
most `MAX_PLAN_CHARS` long with at most `MAX_TASKS` tasks, the patterns below
never rescan a run of spaces from each of its positions, and YAML may not use
aliases (`*ref`, which the "billion laughs" plan nests to expand 700 bytes into
gigabytes) nor nest deeper than `MAX_YAML_DEPTH` levels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

import networkx as nx

from .decompose import guess_kind
from .task import KNOWN_KINDS, Plan, PlanError, Task, TaskKind, raise_problems, slug

PLANNER_NAME = "explicit plan"
HOURS_PER_DAY = 8.0

_BULLET = re.compile(r"^(?P<indent>\s*)(?:[-*+]|\d+[.)])\s+(?P<rest>.*)$")
_CHECKBOX = re.compile(r"^\[[ xX]\]\s+")
_ID_TAG = re.compile(r"^\[(?P<id>[^\]]+)\]\s*")         # any [tag]; a bad id is reported
_PLAN_TAG = re.compile(r"^\[[A-Za-z0-9][\w.-]*\]\s")     # what makes a list look like a plan
# Matched against stripped text. The title may end only after a non-space, so that the kind
# and `after` are tried once per run of spaces rather than from each of its positions (which
# made a 100 KB line of spaces take minutes); `(?P<after>.+)$` needs no lazy scan to the end.
_HEAD = re.compile(r"^(?P<title>.*?)(?<!\s)(?:\s*\((?P<kind>[^()]*)\))?(?:\s+after\s+(?P<after>.+))?$",
                   re.IGNORECASE)
_KEY_LINE = re.compile(r"^(?:[-*+]\s+)?(?P<key>[A-Za-z][A-Za-z _\t]*+):\s*(?P<value>.*)$")
_ESTIMATE = re.compile(r"^\s*+(?P<n>\d+(?:\.\d+)?)\s*+(?P<unit>h|hrs?|hours?|m|mins?|minutes?|d|days?)?\s*+$",
                       re.IGNORECASE)
_NAME_SEPARATOR = re.compile(r"[,;]|(?<!\s)\s+and\s+")   # one try per run of spaces, as _HEAD
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

MAX_PLAN_CHARS = 200_000   # a 100 KB line still reads in milliseconds; a bigger cell is a mistake
MAX_TASKS = 500            # parsing takes ~25 ms; the dry run's collision check goes over every pair
MAX_YAML_DEPTH = 16        # a plan needs 4 (tasks, a task, its fields, a list of values)
MAX_PROBLEMS = 50          # listed in one PlanError; the rest are counted
MAX_ESTIMATE_HOURS = 100_000.0

KIND_ALIASES = {"fix": "quick_fix", "quickfix": "quick_fix", "quick-fix": "quick_fix", "hotfix": "quick_fix",
                "test": "tests", "testing": "tests", "doc": "docs", "documentation": "docs",
                "arch": "architecture", "design": "architecture", "feature": "code",
                "implement": "code", "refactoring": "refactor", "reviews": "review"}
KEYS = {"id": "id", "title": "title", "kind": "kind", "after": "after", "depends_on": "after",
        "depends on": "after", "needs": "after", "partial": "partial", "writes": "writes",
        "reads": "reads", "accept": "acceptance", "acceptance": "acceptance", "done when": "acceptance",
        "estimate": "estimate", "estimate_hours": "estimate", "hours": "estimate",
        "description": "description", "desc": "description"}


@dataclass
class Entry:
    """One task as written, before its dependencies are resolved; `line` is 1-based."""

    line: int
    id: str = ""
    title: str = ""
    kind: str = ""
    description: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)      # raw names; a trailing "~" marks partial
    writes: list[str] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)
    acceptance: list[str] = field(default_factory=list)
    estimate: str = ""


def _short(text: str, limit: int = 60) -> str:
    """User text echoed in a message, cut so that one bad 100 KB line makes one readable line."""
    return text if len(text) <= limit else f"{text[:limit - 1]}…"


# --- recognising a plan ---------------------------------------------------------------------------

def _meaningful_lines(text: str) -> Iterable[str]:
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            yield line


def looks_like_plan(text: str) -> bool:
    """Whether a cell body is an explicit plan rather than a request.

    A plan starts (after blank lines, headings and comments) with `tasks:` or
    a YAML item `- id: ...`, or its first list item carries an `[id]` (text
    before the list is allowed). A plain list ("- add a login page") is a
    request for the planner.
    """
    lines = [line.strip() for line in _meaningful_lines(text or "")]
    if lines and (re.match(r"^tasks\s*:", lines[0]) or re.match(r"^-\s+id\s*:", lines[0])):
        return True
    item = next((found for found in map(_BULLET.match, lines) if found), None)
    if item is None:
        return False
    rest = _CHECKBOX.sub("", item.group("rest"))
    return bool(_PLAN_TAG.match(rest + " "))


# --- Markdown -------------------------------------------------------------------------------------

def _split_names(value: str) -> list[str]:
    """'auth, db~ and api' -> ['auth', 'db~', 'api']; names with spaces are kept whole."""
    parts = (p.strip().strip("'\"` ") for p in _NAME_SEPARATOR.split(value.strip().strip("[]")))
    return [p for p in parts if p]


def _split_paths(value: str) -> list[str]:
    return [p.strip("'\"`") for p in re.split(r"[,\s]+", value.strip().strip("[]")) if p.strip("'\"`")]


def _split_head(rest: str) -> tuple[str, str]:
    """'Title (kind) after x: what to do' -> ('Title (kind) after x', 'what to do')."""
    parts = re.split(r":(?:\s+|$)", rest, maxsplit=1)
    return parts[0], (parts[1] if len(parts) > 1 else "")


def _head(entry: Entry, rest: str) -> None:
    """Fill id, title, kind, after and the first description line from an item's text."""
    rest = _CHECKBOX.sub("", rest.strip())
    tag = _ID_TAG.match(rest)
    if tag:
        entry.id, rest = tag.group("id"), rest[tag.end():]
    head, description = _split_head(rest)
    parts = _HEAD.match(head.strip())
    assert parts is not None   # the pattern matches any text
    entry.title = parts.group("title").strip()
    kind = (parts.group("kind") or "").strip()
    if kind and " " in kind:   # "(JWT tokens)": part of the title, not a kind
        entry.title, kind = f"{entry.title} ({kind})", ""
    entry.kind = kind
    entry.after = _split_names(parts.group("after") or "")
    if description.strip():
        entry.description.append(description.strip())


def _continuation(entry: Entry, text: str) -> None:
    """An indented line under an item: a known `key: value`, else more description."""
    found = _KEY_LINE.match(text.strip())
    key = KEYS.get(found.group("key").strip().lower()) if found else None
    if found is None or key is None:
        entry.description.append(text.strip())
        return
    _set(entry, key, found.group("value").strip())


_LIST_KEYS = ("after", "partial", "writes", "reads", "acceptance")


def _values(key: str, value: Any) -> list[str]:
    """A list field's values from YAML data or from Markdown text ('a, b~' or 'x.py y.py')."""
    if isinstance(value, list):
        return [str(v) for v in value]
    text = str(value).strip()
    if key == "acceptance":
        return [text] if text else []
    return _split_names(text) if key in ("after", "partial") else _split_paths(text)


def _set(entry: Entry, key: str, value: Any) -> None:
    """Store one field given as text (Markdown) or as YAML data."""
    if key == "description":
        entry.description.append(str(value))
    elif key not in _LIST_KEYS:
        setattr(entry, key, str(value).strip())
    elif key == "partial":   # a partial dependency is a dependency marked with "~"
        entry.after += [v.rstrip("~") + "~" for v in _values(key, value)]
    else:
        getattr(entry, key).extend(_values(key, value))


def _markdown_entries(text: str) -> list[Entry]:
    entries: list[Entry] = []
    base: int | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        item = _BULLET.match(line)
        indent = len(item.group("indent")) if item else None
        if item and (base is None or indent <= base + 1):
            base = indent if base is None else base
            entries.append(Entry(number))
            _head(entries[-1], item.group("rest"))
        elif entries:
            _continuation(entries[-1], line)
    return entries


# --- YAML -----------------------------------------------------------------------------------------

def _yaml_entries(text: str) -> list[Entry]:
    data, root = _load_yaml(text)
    tasks, node = (data, root) if isinstance(data, list) else (None, None)
    if isinstance(data, dict) and "tasks" in data:
        tasks, node = data["tasks"], _value_node(root, "tasks")
    if isinstance(tasks, dict):
        tasks = [{"id": key} | value if isinstance(value, dict) else {"id": key, "title": value}
                 for key, value in tasks.items()]
    elif not isinstance(tasks, list):
        raise PlanError("a YAML plan needs `tasks:` followed by a list of tasks (each with id, title, after, ...)")
    return [_yaml_entry(line, item) for line, item in zip(_item_lines(node, root, len(tasks)), tasks)]


def _load_yaml(text: str) -> tuple[Any, Any]:
    """The data and its node graph, once the event stream shows neither an alias nor deep nesting.

    The events are checked first, and stop at the first problem, because the
    blow-ups come later or grow with depth: an alias shares its node, and only
    constructing and printing expand it (9**9 times for the 700-byte "billion
    laughs"); composing, and printing what was built, recurse once per level;
    and libyaml's scanner slows with the square of the depth (200,000 `[` took
    three minutes). libyaml (when PyYAML has it) reads a 200 KB plan in
    milliseconds.
    """
    import yaml

    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        _check_events(yaml.parse(text, Loader=loader_class))
        loader = loader_class(text)
        try:
            root = loader.get_single_node()
            return (loader.construct_document(root) if root is not None else None), root
        finally:
            loader.dispose()
    except PlanError:
        raise
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise PlanError(f"{where}this plan is not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    except (ValueError, OverflowError) as exc:   # an int of 5,000 digits, a 13th month
        raise PlanError(f"this plan's YAML has a value that cannot be read: {_short(str(exc), 120)}") from None


def _check_events(events: Iterable[Any]) -> None:
    """Refuse aliases and nesting deeper than MAX_YAML_DEPTH, stopping at the first one seen."""
    import yaml

    depth = 0
    for event in events:
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            raise PlanError(f"line {line}: YAML aliases (&anchor / *{_short(event.anchor, 30)}) are not "
                            "allowed in a plan; write each value out in full")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise PlanError(f"line {line}: the YAML is nested deeper than {MAX_YAML_DEPTH} levels; a plan "
                                "needs only tasks, their fields and lists of values")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _value_node(root: Any, key: str) -> Any:
    """The node of `key` in the root mapping (the last one, as the data keeps the last)."""
    found = [v for k, v in getattr(root, "value", []) if getattr(k, "value", None) == key]
    return found[-1] if found else None


def _item_lines(node: Any, root: Any, count: int) -> list[int]:
    """The line of each task; the line of the tasks' node when the nodes do not match the data
    (a merge key `<<:` or a tag such as `!!omap` builds the data from other nodes)."""
    items = getattr(node, "value", None)
    fallback = (node or root).start_mark.line + 1
    if isinstance(items, list) and len(items) == count:
        return [(item[0] if isinstance(item, tuple) else item).start_mark.line + 1 for item in items]
    return [fallback] * count


def _yaml_entry(line: int, item: Any) -> Entry:
    entry = Entry(line)
    if not isinstance(item, dict):
        entry.title = str(item)   # a bare string is a title
        return entry
    for raw_key, value in item.items():
        key = KEYS.get(str(raw_key).strip().lower().replace("-", "_"),
                       KEYS.get(str(raw_key).strip().lower()))
        if key is None:
            raise PlanError(f"line {line}: unknown field {_short(str(raw_key))!r}; "
                            f"use: {', '.join(sorted(set(KEYS)))}")
        if value is not None:
            _set(entry, key, value)
    return entry


# --- from entries to a plan -----------------------------------------------------------------------

def _kind(entry: Entry, problems: list[str]) -> TaskKind:
    if not entry.kind:
        return guess_kind(f"{entry.title} {' '.join(entry.description)}")
    name = entry.kind.strip().lower()
    name = KIND_ALIASES.get(name, name).replace("-", "_")
    if name in {k.value for k in TaskKind}:
        return TaskKind(name)
    problems.append(f"line {entry.line}: unknown kind {_short(entry.kind)!r}; use one of: {KNOWN_KINDS}")
    return TaskKind.CODE


def _estimate(entry: Entry, problems: list[str]) -> float | None:
    if not entry.estimate:
        return None
    found = _ESTIMATE.match(entry.estimate)
    if not found:
        problems.append(f"line {entry.line}: estimate {_short(entry.estimate)!r} is not a number of hours "
                        "(write 3, 3h, 90m or 1d)")
        return None
    unit = (found.group("unit") or "h").lower()
    scale = 1 / 60 if unit.startswith("m") else HOURS_PER_DAY if unit.startswith("d") else 1.0
    hours = round(float(found.group("n")) * scale, 4)
    if hours > MAX_ESTIMATE_HOURS:   # 400 digits would even make an infinite float
        problems.append(f"line {entry.line}: estimate {_short(entry.estimate)!r} is more than "
                        f"{MAX_ESTIMATE_HOURS:,.0f} hours; give the task's real size")
        return None
    return hours


def _ids(entries: list[Entry], problems: list[str]) -> list[str]:
    """Each entry's id (its slug when none was given); bad and repeated ids become problems.

    By position, not by line: a YAML flow list (`tasks: [a, b]`) puts several tasks on one line.
    """
    ids: list[str] = []
    first_line: dict[str, int] = {}
    for entry in entries:
        if not entry.title and not entry.id:
            problems.append(f"line {entry.line}: a task needs a title or an [id]")
        task_id = entry.id or slug(entry.title)
        if not _ID.match(task_id):
            problems.append(f"line {entry.line}: [{_short(task_id)}] is not usable as an id; use lowercase "
                            "letters, digits, '-' or '_' (at most 63 characters)")
        elif task_id in first_line:
            problems.append(f"line {entry.line}: the id {task_id!r} is already used on line "
                            f"{first_line[task_id]}; give this task its own [id]")
        first_line.setdefault(task_id, entry.line)
        ids.append(task_id)
    return ids


def _resolver(entries: list[Entry], ids: list[str]) -> dict[str, str]:
    """Names a dependency may be written as (id, title, slug of the title) -> id."""
    names: dict[str, str] = {}
    for entry, task_id in zip(entries, ids):
        for name in (slug(entry.title), entry.title.lower(), task_id):
            if name:
                names[name] = task_id
    return names


def _lookup(name: str, names: dict[str, str]) -> str | None:
    return names.get(name) or names.get(name.lower()) or names.get(slug(name)) if name else None


def _resolve(entry: Entry, names: dict[str, str], problems: list[str]) -> tuple[list[str], list[str]]:
    """depends_on and partial of an entry; names that match no task become problems.

    A name is tried whole ("DB Schema") and then word by word ("db auth~").
    Dicts keep the order and make a task after thousands of others linear.
    """
    depends: dict[str, None] = {}
    partial: dict[str, None] = {}
    for raw in entry.after:
        words = [raw] if _lookup(raw.rstrip("~").strip(), names) else raw.split()
        for word in words:
            name = word.rstrip("~").strip()
            dep = _lookup(name, names)
            if dep is None:
                problems.append(f"line {entry.line}: after {_short(name)!r}: no task has that id or title "
                                f"(ids: {_known_ids(names)})")
                continue
            depends[dep] = None
            if word.endswith("~"):
                partial[dep] = None
    return list(depends), list(partial)


def _known_ids(names: dict[str, str], shown: int = 20) -> str:
    known = sorted({i for i in names.values() if _ID.match(i)})
    return ", ".join(known[:shown]) + (f", … ({len(known)} in all)" if len(known) > shown else "")


def _cycle_problem(tasks: list[Task], lines: dict[str, int]) -> list[str]:
    graph = nx.DiGraph([(d, t.id) for t in tasks for d in t.depends_on if d != t.id])
    self_loops = [f"line {lines[t.id]}: {t.id!r} is after itself" for t in tasks if t.id in t.depends_on]
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return self_loops
    nodes = [u for u, _ in cycle]
    start = nodes.index(min(nodes, key=lines.__getitem__))   # read it from the earliest line
    nodes = nodes[start:] + nodes[:start]
    path = " -> ".join(f"{u} (line {lines[u]})" for u in nodes) + f" -> {nodes[0]}"
    return self_loops + [f"the plan has a dependency cycle: {path}; remove one of these `after`s"]


def _line_of(problem: str) -> int:
    """Problems in the order of their lines (those without a line last)."""
    found = re.match(r"line (\d+)", problem)
    return int(found.group(1)) if found else 1 << 30


def _first_problems(problems: list[str]) -> list[str]:
    """At most MAX_PROBLEMS problems, then how many more: 20,000 bad lines make a readable error."""
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return problems[:MAX_PROBLEMS] + [f"... and {len(problems) - MAX_PROBLEMS} more problems; fix these first"]


def plan_from_entries(entries: list[Entry], request: str = "") -> Plan:
    """Resolve names, check everything, and build the Plan; one PlanError lists every problem."""
    if not entries:
        raise PlanError("the plan has no tasks; write one list item per task, such as "
                        "`- [db] DB Schema (refactor): ...`")
    if len(entries) > MAX_TASKS:
        raise PlanError(f"the plan has {len(entries):,} tasks; a plan may have at most {MAX_TASKS:,} "
                        "(checking, drawing and predicting collisions grow with the pairs of tasks): "
                        "split the work into several runs")
    problems: list[str] = []
    ids = _ids(entries, problems)
    names = _resolver(entries, ids)
    tasks, lines = [], {}
    for entry, task_id in zip(entries, ids):
        depends, partial = _resolve(entry, names, problems)
        kind, hours = _kind(entry, problems), _estimate(entry, problems)
        lines.setdefault(task_id, entry.line)
        tasks.append(Task(task_id, entry.title or task_id, kind, "\n".join(entry.description), depends,
                          partial, entry.writes, entry.reads, entry.acceptance, hours))
    if not problems:
        problems += _cycle_problem(tasks, lines)
    raise_problems(_first_problems(sorted(problems, key=_line_of)))
    return Plan(tasks, request=request, planner=PLANNER_NAME)


def check_plan_text(text: object) -> None:
    """Refuse what is not plan text before any parsing: not a string, empty, or too long to read fast."""
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise PlanError(f"a plan is text, got {type(text).__name__}")
    if len(text) > MAX_PLAN_CHARS:
        raise PlanError(f"the plan is {len(text):,} characters long; a plan may have at most "
                        f"{MAX_PLAN_CHARS:,}: split the work into several runs")
    if not text.strip():
        raise PlanError("the plan is empty; write one list item per task")


def parse_plan(text: str) -> Plan:
    """The Plan written in `text`, in the Markdown or the YAML form (see the module docstring)."""
    check_plan_text(text)
    first = next(iter(_meaningful_lines(text)), "").strip()
    yaml_form = re.match(r"^tasks\s*:", first) or re.match(r"^-\s+id\s*:", first)
    try:
        entries = _yaml_entries(text) if yaml_form else _markdown_entries(text)
        return plan_from_entries(entries, request=text)
    except RecursionError:   # the depth limit prevents it; this keeps any slip a PlanError
        raise PlanError("the plan is nested too deeply to read; write tasks, their fields and "
                        "lists of values") from None


# --- back to text ---------------------------------------------------------------------------------

def _hours(hours: float) -> str:
    return f"{hours:g}h"


def _safe_title(title: str) -> bool:
    return not re.search(r":|\safter\s|\)\s*$|^\[", title, re.IGNORECASE)


def task_lines(task: dict[str, Any]) -> list[str]:
    """One task dict (possibly invalid, e.g. a model's) in the Markdown form."""
    deps = [f"{d}~" if d in (task.get("partial") or []) else str(d) for d in task.get("depends_on") or []]
    title = str(task.get("title") or "")
    head = f"- [{task.get('id', '?')}] {title if _safe_title(title) else ''}".rstrip()
    head += f" ({task.get('kind') or 'code'})" + (f" after {', '.join(deps)}" if deps else "")
    description = str(task.get("description") or "").splitlines()
    lines = [head + (f": {description[0]}" if description else "")]
    lines += [f"  title: {title}"] if not _safe_title(title) else []
    lines += [f"  {line}" for line in description[1:]]
    for key, label in (("writes", "writes"), ("reads", "reads")):
        if task.get(key):
            lines.append(f"  {label}: {', '.join(map(str, task[key]))}")
    lines += [f"  accept: {a}" for a in task.get("acceptance") or []]
    if isinstance(task.get("estimate_hours"), (int, float)):
        lines.append(f"  estimate: {_hours(task['estimate_hours'])}")
    return lines


def to_markdown(plan: Plan | list[dict[str, Any]]) -> str:
    """A plan in the explicit Markdown form: shown for editing, and parsed back to the same plan."""
    items = [t.to_dict() for t in plan.tasks] if isinstance(plan, Plan) else plan
    return "\n".join(line for item in items for line in (task_lines(item) if isinstance(item, dict)
                                                        else [f"- (not a task: {item!r})"]))


class ExplicitPlanner:
    """The `Planner` for a cell body that is itself a plan."""

    name = PLANNER_NAME

    def plan(self, request: str, repo: str | None = None) -> Plan:
        return parse_plan(request)
