"""Planners turn a request into a `Plan`.

The model planner asks the model routed for architecture to submit the plan
through one tool whose JSON schema is the plan, checks it, and lets the model
repair it a bounded number of times.

The offline planner is a heuristic, labelled as one: it reads the request's
sentences and clauses (plan/reading.py), takes each task's kind from its verb
and object, its title from the object, its files from the names it uses, and
orders what a careful engineer would: a design or schema change before the code
built on it, tests and docs after the code they describe, tasks that name the
same file one after the other, review last. `benchmarks/planner_corpus.py`
scores it against hand-written plans.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Protocol

import networkx as nx

from ..models.base import ModelClient, Reply, ToolSpec
from .reading import (Clause, clauses_with_order, headline, is_content_word, is_doc_file, norm_word,
                      read_clause, split_clauses, split_objects, title_words)
from .repo_summary import summarize_repo, tracked_files
from .task import Plan, PlanError, Task, TaskKind, plan_problems, slug


class Planner(Protocol):
    name: str

    def plan(self, request: str, repo: str | None = None) -> Plan: ...


class AsyncPlanner(Protocol):
    """A planner that waits on a model; awaited on the kernel's loop, so the kernel stays free."""

    name: str

    async def plan(self, request: str, repo: str | None = None) -> Plan: ...


def guess_kind(text: str) -> TaskKind:
    """A task's kind from its first clause: the verb (document, fix, migrate, ...), else the object."""
    clauses = split_clauses(text) or [text]
    return read_clause(clauses[0]).kind


def title_for(clause: str) -> str:
    """'refactor the database schema' -> 'DB Schema': the object, without filler, in title case."""
    return headline(title_words(read_clause(clause)))


def guess_writes(clause: str, kind: TaskKind) -> list[str]:
    """Files a clause names ('fix utils.py', 'the README'), else the usual folder of its kind."""
    reading = read_clause(clause)
    reading.kind = kind
    return writes_for(reading, {})


def _test_file(path: str) -> str:
    """Where the tests of a named source file go: shop/cart.py -> tests/test_cart.py."""
    pure = PurePosixPath(path)
    if pure.suffix != ".py" or "tests" in pure.parts or pure.name.startswith("test_"):
        return path
    return f"tests/test_{pure.stem}.py"


def writes_for(clause: Clause, names: dict[str, str]) -> list[str]:
    """The files a task will write: those its clause names (README means README.md; a bare name
    is the repository's one file of that name), tests beside `tests/`, else its kind's folder."""
    named = [names.get(f.lower(), f) for f in clause.files]
    if clause.kind is TaskKind.REVIEW:
        return []
    if clause.kind is TaskKind.TESTS:
        return list(dict.fromkeys(_test_file(f) for f in named if not is_doc_file(f))) or ["tests/**"]
    if clause.kind is TaskKind.DOCS:
        return named or ["docs/**"]
    return named


def repository_names(repo: str | None) -> dict[str, str]:
    """Bare file names ('models.py', 'readme.md') that one tracked file of the repository answers to."""
    if not repo or not Path(repo).is_dir():
        return {}
    seen: dict[str, list[str]] = {}
    for path in tracked_files(repo):
        seen.setdefault(PurePosixPath(path).name.lower(), []).append(path)
    names = {name: paths[0] for name, paths in seen.items() if len(paths) == 1 and "/" in paths[0]}
    for generic, real in (("readme.md", "readme"), ("changelog.md", "changelog")):
        top = [p for p in tracked_files(repo) if "/" not in p and p.lower().split(".")[0] == real]
        if top and generic not in {p.lower() for p in top}:
            names[generic] = top[0]
    return names


@dataclass
class _Reading:
    """A clause and what the planner made of it."""

    clause: Clause
    index: int
    antecedent: "_Reading | None" = None
    task: Task | None = None

    @property
    def builds(self) -> bool:
        return self.clause.kind in BUILD_KINDS


BUILD_KINDS = {TaskKind.CODE, TaskKind.REFACTOR, TaskKind.QUICK_FIX, TaskKind.ARCHITECTURE}


def read_request(request: str) -> list[_Reading]:
    """Each clause read, lists of things split, and 'them' tied to the thing built before it."""
    readings: list[_Reading] = []
    for text, then in clauses_with_order(request):
        for clause in split_objects(read_clause(text)):
            clause.then = then
            then = False
            reading = _Reading(clause, len(readings))
            if clause.pronoun and readings:
                built = [r for r in readings if r.builds]
                reading.antecedent = (built or readings)[-1]
            readings.append(reading)
    return readings


def _describes(doc: _Reading, code: _Reading) -> bool:
    """Whether a tests/docs task is about this code: it says 'them', or shares a word, file or name."""
    if doc.antecedent is code:
        return True
    a, b = doc.clause, code.clause
    files = {f for f in a.files if not is_doc_file(f)} & set(b.files)
    return bool(a.topic & b.topic or files or a.symbols & b.symbols)


def _edges(readings: list[_Reading]) -> list[tuple[int, int]]:
    """(before, after) pairs, strongest reasons first (a later one that would close a cycle is dropped)."""
    edges: list[tuple[int, int]] = []
    built = [r for r in readings if r.builds]
    for r in readings:
        c = r.clause
        if r.antecedent is not None:
            edges.append((r.antecedent.index, r.index))
        if c.then and r.index:
            edges.append((r.index - 1, r.index))
    for r in readings:
        c = r.clause
        if c.kind in (TaskKind.CODE, TaskKind.REFACTOR):
            for f in built:
                if f is r or not f.clause.foundation:
                    continue
                design = f.clause.kind is TaskKind.ARCHITECTURE
                related = bool(f.clause.topic & c.topic or set(f.clause.files) & set(c.files))
                if (design and c.kind is not TaskKind.ARCHITECTURE) or (not c.foundation and (
                        c.kind is TaskKind.CODE or related)):
                    edges.append((f.index, r.index))
        if c.kind is TaskKind.QUICK_FIX:     # 'upgrade X and fix the warnings': the fix follows
            edges += [(f.index, r.index) for f in built[: built.index(r)] if f.clause.foundation]
        if c.kind in (TaskKind.TESTS, TaskKind.DOCS):
            about = [b for b in built if _describes(r, b)]
            edges += [(b.index, r.index) for b in (about or built)]
        if c.kind is TaskKind.REVIEW:
            edges += [(o.index, r.index) for o in readings if o.clause.kind is not TaskKind.REVIEW]
    for r in readings:
        for o in readings[: r.index]:
            shared = set(r.clause.files) & set(o.clause.files) or r.clause.symbols & o.clause.symbols
            if shared and (r.builds == o.builds):
                edges.append((o.index, r.index))
            elif _same_thing(o.clause, r.clause):
                edges.append((o.index, r.index))
    return edges


def _same_thing(a: Clause, b: Clause) -> bool:
    """Two pieces of code about the same thing ('a Redis cache', 'the cache TTL'): one after the other,
    unless they were listed as separate things to build ('a JSON exporter and a YAML exporter')."""
    kinds = (TaskKind.CODE, TaskKind.REFACTOR)
    if a.kind not in kinds or b.kind not in kinds or (a.siblings and a.siblings == b.siblings):
        return False
    def words(clause: Clause) -> set[str]:
        return {norm_word(w) for w in clause.core if is_content_word(w)}
    return bool(words(a) & words(b))


def _order(readings: list[_Reading]) -> None:
    """Dependencies from the edges, without the ones implied by others."""
    graph = nx.DiGraph()
    graph.add_nodes_from(r.index for r in readings)
    for before, after in _edges(readings):
        if before != after and not nx.has_path(graph, after, before):
            graph.add_edge(before, after)
    reduced = nx.transitive_reduction(graph)
    for r in readings:
        r.task.depends_on = [readings[i].task.id for i in sorted(reduced.predecessors(r.index))]


def _describe(r: _Reading) -> str:
    text = r.clause.text[:1].upper() + r.clause.text[1:]
    text = text if text.endswith((".", "!", "?")) else text + "."
    if r.antecedent is not None and r.antecedent.task is not None:
        text += f" (About {r.antecedent.task.title}: task {r.antecedent.task.id}.)"
    return text


class OfflinePlanner:
    """A heuristic planner for when no model is configured, for tests, and as the fallback when a
    model's plan cannot be repaired: it reads the request as a careful engineer would (see reading.py)."""

    name = "offline heuristic (no model)"

    def plan(self, request: str, repo: str | None = None) -> Plan:
        if not request or not request.strip():
            raise PlanError("the request is empty; write what you want built in the cell body")
        readings = read_request(request)
        if not readings:
            raise PlanError("the request names nothing to do; write what you want built in the cell body")
        names = repository_names(repo)
        seen: dict[str, int] = {}
        for r in readings:
            antecedent = r.antecedent.clause if r.antecedent else None
            title = headline(title_words(r.clause, antecedent))
            base = slug(" ".join(title.split()[:5]))
            seen[base] = seen.get(base, 0) + 1
            task_id = base if seen[base] == 1 else f"{base}-{seen[base]}"
            r.task = Task(task_id, title, r.clause.kind, writes=writes_for(r.clause, names))
            r.task.description = _describe(r)
        _order(readings)
        for r in readings:
            if r.clause.kind in (TaskKind.TESTS, TaskKind.DOCS):
                deps = [x for x in readings if x.task.id in r.task.depends_on]
                r.task.reads = list(dict.fromkeys(w for d in deps for w in d.task.writes if not is_glob(w)))
        return Plan([r.task for r in readings], request=request, planner=self.name)


def is_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


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
        # Told of each reply and its latency in seconds, repairs included, so the run can log and price it.
        self.on_reply: Callable[[Reply, float], None] | None = None

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
            started = time.monotonic()
            reply = await self.model.complete(PLANNER_SYSTEM, messages, [SUBMIT_PLAN])
            if self.on_reply is not None:
                self.on_reply(reply, time.monotonic() - started)
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
