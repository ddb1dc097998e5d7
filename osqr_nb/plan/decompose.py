"""Planners turn a request into a `Plan`.

The model planner asks the model routed for architecture to submit the plan
through one tool whose JSON schema is the plan, checks it, and lets the model
repair it a bounded number of times.

The offline planner is a heuristic, labelled as one: it splits the request on
its clauses and list items, guesses each task's kind from its words, and orders
the usual dependencies (data layer before the code that uses it, code before its
docs and tests, review last).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any, Protocol

import networkx as nx

from ..models.base import ModelClient, Reply, ToolSpec
from .repo_summary import summarize_repo
from .task import Plan, PlanError, Task, TaskKind, plan_problems, slug


class Planner(Protocol):
    name: str

    def plan(self, request: str, repo: str | None = None) -> Plan: ...


class AsyncPlanner(Protocol):
    """A planner that waits on a model; awaited on the kernel's loop, so the kernel stays free."""

    name: str

    async def plan(self, request: str, repo: str | None = None) -> Plan: ...


_KIND_WORDS: list[tuple[TaskKind, tuple[str, ...]]] = [
    (TaskKind.DOCS, ("doc", "docs", "documentation", "readme", "docstring", "guide", "changelog")),
    (TaskKind.TESTS, ("test", "tests", "testing", "coverage", "spec", "specs")),
    (TaskKind.REVIEW, ("review", "audit", "inspect")),
    (TaskKind.REFACTOR, ("refactor", "restructure", "rename", "clean", "cleanup", "simplify", "reorganize")),
    (TaskKind.QUICK_FIX, ("fix", "typo", "bump", "tweak", "patch")),
    (TaskKind.ARCHITECTURE, ("design", "architecture", "architect", "plan")),
]
_DATA_WORDS = ("schema", "database", "db", "model", "models", "migration", "migrations", "table", "tables", "data")
_VERBS = {
    "build", "add", "create", "write", "implement", "update", "refactor", "fix", "make", "design",
    "document", "test", "review", "improve", "rewrite", "restructure", "rename", "clean", "set",
    "setup", "introduce", "extend", "support", "audit", "simplify", "bump", "patch", "migrate",
}
_FILLER = {"the", "a", "an", "our", "my", "its", "their", "this", "that", "up", "new"}
_ABBREVIATIONS = {"database": "DB", "db": "DB", "api": "API", "apis": "APIs", "ui": "UI",
                  "cli": "CLI", "jwt": "JWT", "sql": "SQL", "http": "HTTP", "css": "CSS"}

# `(?<!\s)`: a run of spaces is tried once from its start, not from every space (cubic otherwise)
_SPLIT = re.compile(r"(?<!\s)\s*(?:\n+|;|,\s*(?:and|then)\s+|,|\s+and then\s+|\s+then\s+|\s+and\s+(?=(?:%s)\b))\s*"
                    % "|".join(sorted(_VERBS)), re.IGNORECASE)
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")


def split_clauses(request: str) -> list[str]:
    """The request's clauses: list items, or parts separated by ',', ';', 'and <verb>'."""
    lines = [_LIST_ITEM.sub("", line) for line in request.strip().splitlines()]
    clauses: list[str] = []
    for part in _SPLIT.split("\n".join(lines)):
        part = re.sub(r"^(?:and|then)\s+", "", part.strip(), flags=re.IGNORECASE).strip(" .")
        if part:
            clauses.append(part)
    return clauses


def guess_kind(clause: str) -> TaskKind:
    words = set(re.findall(r"[a-z]+", clause.lower()))
    for kind, keys in _KIND_WORDS:
        if words & set(keys):
            return kind
    return TaskKind.CODE


def title_for(clause: str) -> str:
    """'refactor the database schema' -> 'DB Schema': the object of the clause."""
    words = re.findall(r"[A-Za-z0-9_.]+", clause)
    while words and (words[0].lower() in _VERBS or words[0].lower() in _FILLER):
        words.pop(0)
    words = words[:4] or re.findall(r"[A-Za-z0-9_.]+", clause)[:4]
    return " ".join(_ABBREVIATIONS.get(w.lower(), w if w.isupper() else w.capitalize()) for w in words)


_PATH = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w-]+\.[A-Za-z][\w]{0,5}|(?:[\w.-]+/)+(?:\*\*?/?)?[\w*.-]*)")
_KIND_FOLDERS = {TaskKind.DOCS: "docs/**", TaskKind.TESTS: "tests/**"}


def guess_writes(clause: str, kind: TaskKind) -> list[str]:
    """Files a clause names ('fix utils.py', 'docs/API.md', 'auth/'), else the usual folder of its kind.

    A guess, for collision prediction; the model planner asks the model instead.
    """
    named = [p for p in _PATH.findall(clause) if not re.fullmatch(r"[\d.]+|e\.g|i\.e", p, re.I)]
    if named:
        return list(dict.fromkeys(p + "**" if p.endswith("/") else p for p in named))
    return [_KIND_FOLDERS[kind]] if kind in _KIND_FOLDERS else []


def _rank(task: Task) -> int:
    text = f"{task.title} {task.description}".lower()
    if task.kind is TaskKind.REVIEW:
        return 3
    if task.kind in (TaskKind.DOCS, TaskKind.TESTS):
        return 2
    if task.kind is TaskKind.ARCHITECTURE or set(re.findall(r"[a-z]+", text)) & set(_DATA_WORDS):
        return 0
    return 1


class OfflinePlanner:
    """A heuristic planner for when no model is configured (and for tests)."""

    name = "offline heuristic (no model)"

    def plan(self, request: str, repo: str | None = None) -> Plan:
        if not request or not request.strip():
            raise PlanError("the request is empty; write what you want built in the cell body")
        tasks: list[Task] = []
        seen: dict[str, int] = {}
        for clause in split_clauses(request):
            title = title_for(clause)
            base = slug(title)
            seen[base] = seen.get(base, 0) + 1
            task_id = base if seen[base] == 1 else f"{base}-{seen[base]}"
            kind = guess_kind(clause)
            tasks.append(Task(task_id, title, kind, clause[:1].upper() + clause[1:],
                              writes=guess_writes(clause, kind)))
        self._order(tasks)
        return Plan(tasks, request=request, planner=self.name)

    @staticmethod
    def _order(tasks: list[Task]) -> None:
        """Each task depends on the tasks of the nearest lower rank; then drop implied edges."""
        ranks = {t.id: _rank(t) for t in tasks}
        graph = nx.DiGraph()
        graph.add_nodes_from(ranks)
        for task in tasks:
            lower = [r for r in set(ranks.values()) if r < ranks[task.id]]
            if lower:
                graph.add_edges_from((other, task.id) for other, r in ranks.items() if r == max(lower))
        reduced = nx.transitive_reduction(graph)
        for task in tasks:
            task.depends_on = sorted(reduced.predecessors(task.id), key=list(ranks).index)
        # Tasks run in dependency order; keep the user's wording order otherwise.
        tasks.sort(key=lambda t: ranks[t.id])


# --- the model planner ----------------------------------------------------------------------------

_LIST = {"type": "array", "items": {"type": "string"}}
PLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"tasks": {"type": "array", "minItems": 1, "items": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$",
                   "description": "short, unique, usable in a git branch name: db-schema"},
            "title": {"type": "string", "description": "a few words: DB Schema"},
            "kind": {"type": "string", "enum": [k.value for k in TaskKind]},
            "description": {"type": "string", "description": "what the agent must do, self-contained"},
            "depends_on": {**_LIST, "description": "ids of tasks whose results this task needs"},
            "partial": {**_LIST, "description": "those of depends_on this task may start without "
                        "waiting for (their start or interface is enough)"},
            "writes": {**_LIST, "description": "files or globs it will create or change"},
            "reads": {**_LIST, "description": "files or globs it needs to read"},
            "acceptance": {**_LIST, "description": "checkable criteria for done"},
            "estimate_hours": {"type": ["number", "null"], "minimum": 0,
                               "description": "hours a person would need"},
        },
        "required": ["id", "title", "kind", "description", "depends_on"],
    }}},
    "required": ["tasks"],
}
SUBMIT_PLAN = ToolSpec("submit_plan", "Submit the whole plan: every task with its dependencies and the "
                       "files it will write. Call this once; if the plan is refused, fix what the "
                       "result says and call it again with the whole corrected plan.", PLAN_SCHEMA)

PLANNER_SYSTEM = """\
You plan software work for a team of AI coding agents. Each task is done by one \
agent in its own git worktree of the repository, at the same time as every task \
it does not depend on; at the end their branches are merged.

Break the request into tasks and answer ONLY by calling the submit_plan tool.
- Make tasks that one agent can finish; usually 2 to 8 of them.
- kind: code (new behaviour), architecture (design, interfaces), docs, quick_fix \
(a small fix), review, refactor, tests.
- depends_on: only the tasks whose results this one really needs. Independent \
tasks run in parallel, which is faster.
- partial: dependencies this task may start without waiting for, because their \
start (say, an agreed interface) is enough.
- writes: every file or glob the task will create or change. Two tasks that run \
at the same time and write the same file will collide at merge time, so be \
precise; order them with depends_on when they must share a file.
- reads, acceptance (checkable criteria) and estimate_hours (a person's hours) \
help schedule and check the work.
"""


class ModelPlanError(PlanError):
    """The model gave no valid plan; `last_plan` is its last attempt (None if it never submitted one)."""

    def __init__(self, message: str, problems: list[str] | None = None,
                 last_plan: Any = None, replies: int = 0) -> None:
        super().__init__(message, problems)
        self.last_plan = last_plan
        self.replies = replies


def _tasks_of(arguments: Any) -> tuple[Any, list[str]]:
    """The tasks a submit_plan call carries, and what is wrong with them."""
    if not isinstance(arguments, dict) or "tasks" not in arguments:
        return None, ['submit_plan takes {"tasks": [...]}; the call had no "tasks"']
    tasks = arguments["tasks"]
    if isinstance(tasks, str):   # some models send nested JSON as a string
        try:
            tasks = json.loads(tasks)
        except ValueError:
            return tasks, ["tasks must be a list of task objects, not a string"]
    return tasks, plan_problems(tasks)


def _refusal(problems: list[str]) -> str:
    return (f"The plan was not accepted ({len(problems)} problem{'s' if len(problems) > 1 else ''}):\n"
            + "\n".join(f"- {p}" for p in problems)
            + "\nCall submit_plan again with the whole corrected plan.")


class ModelPlanner:
    """Plans through a model (the one routed for architecture), repairing bad plans with its help."""

    def __init__(self, model: ModelClient, *, max_repairs: int = 2, max_summary_chars: int = 16_000) -> None:
        self.model = model
        self.max_repairs = max_repairs
        self.max_summary_chars = max_summary_chars
        self.name = f"model planner ({model.name})"
        self.attempts: list[list[str]] = []   # the problems of each reply, [] for the accepted one

    async def plan(self, request: str, repo: str | Path | None = None) -> Plan:
        """The model's plan for `request` in `repo`, or a ModelPlanError saying what went wrong."""
        if not request or not request.strip():
            raise PlanError("the request is empty; write what you want built in the cell body")
        summary = await asyncio.to_thread(summarize_repo, repo, max_chars=self.max_summary_chars)
        messages: list[dict[str, Any]] = [
            {"role": "user", "content": f"Request:\n{request.strip()}\n\nRepository:\n{summary}"}]
        self.attempts = []
        last: tuple[Any, list[str]] | None = None
        reply = Reply()
        for _ in range(1 + self.max_repairs):
            reply = await self.model.complete(PLANNER_SYSTEM, messages, [SUBMIT_PLAN])
            messages.append({"role": "assistant", "content": reply.text, "tool_calls": reply.tool_calls})
            submitted = self._answer(reply, messages)
            if submitted is None:
                self.attempts.append(["no submit_plan call"])
                continue
            last = submitted
            self.attempts.append(submitted[1])
            if not submitted[1]:
                return Plan([Task.from_dict(t) for t in submitted[0]], request=request, planner=self.name)
        raise self._failure(last, reply)

    def _answer(self, reply: Reply, messages: list[dict[str, Any]]) -> tuple[Any, list[str]] | None:
        """Answer every tool call in the reply; the (tasks, problems) of its first submit_plan call."""
        submitted = None
        for call in reply.tool_calls:
            if call.name != "submit_plan":
                result = f"There is no tool {call.name!r}; the only tool is submit_plan."
            elif submitted is not None:
                result = "Only the first submit_plan call of a reply is read; this one was ignored."
            else:
                submitted = _tasks_of(call.arguments)
                result = _refusal(submitted[1]) if submitted[1] else "Plan accepted."
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
        if submitted is None:
            messages.append({"role": "user", "content": "Answer by calling the submit_plan tool with "
                             "the whole plan; a plan written as text cannot be used."})
        return submitted

    def _failure(self, last: tuple[Any, list[str]] | None, reply: Reply) -> ModelPlanError:
        replies = len(self.attempts)
        if last is None:
            said = (reply.text or "").strip().replace("\n", " ")
            said = f"; its last reply said: {said[:300]!r}" if said else ""
            return ModelPlanError(
                f"the model {self.model.name} never called submit_plan in {replies} replies, so there "
                f"is no plan{said}. Route architecture to a model that calls tools, or write the plan "
                "yourself as an explicit plan (osqr_nb.plan.explicit).", ["no submit_plan call"],
                None, replies)
        tasks, problems = last
        from .explicit import to_markdown   # explicit.py imports this module; import late

        shown = to_markdown(tasks) if isinstance(tasks, list) else repr(tasks)[:2000]
        return ModelPlanError(
            f"the model {self.model.name} gave no valid plan in {replies} replies "
            f"({self.max_repairs} repairs allowed). What was wrong with its last plan:\n"
            + "\n".join(f"- {p}" for p in problems)
            + "\nIts last plan, as an explicit plan you can fix and run in a %%osqr cell:\n" + shown,
            problems, tasks, replies)


class _Awaitable:
    """A synchronous planner behind the async interface (for a run that plans on the loop)."""

    def __init__(self, planner: Planner) -> None:
        self.inner = planner
        self.name = planner.name

    async def plan(self, request: str, repo: str | Path | None = None) -> Plan:
        return self.inner.plan(request, str(repo) if repo else None)


def as_async(planner: Planner) -> _Awaitable:
    return _Awaitable(planner)
