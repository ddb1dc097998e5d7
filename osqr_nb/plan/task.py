"""Tasks and the plan that orders them: a validated networkx DAG, editable in place."""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Iterable

import networkx as nx


class TaskKind(str, Enum):
    """What a task is, which decides the model it is routed to."""

    CODE = "code"
    ARCHITECTURE = "architecture"
    DOCS = "docs"
    QUICK_FIX = "quick_fix"
    REVIEW = "review"
    REFACTOR = "refactor"
    TESTS = "tests"


class PlanError(ValueError):
    """A plan that cannot run; the message says what is wrong and how to fix it.

    `problems` lists every problem found (the message shows them all), so a
    model asked to repair its plan can fix them in one go.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems) if problems else [message]


_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_LIST_FIELDS = ("depends_on", "partial", "writes", "reads", "acceptance")
KNOWN_KINDS = ", ".join(k.value for k in TaskKind)


@dataclass
class Task:
    """One unit of work for one agent.

    `partial` names dependencies the task may start without waiting for them
    to finish (a subset of `depends_on`); `writes` and `reads` are the paths or
    globs it expects to touch, which collision prediction uses; `estimate_hours`
    (human hours) weights the critical path when given.
    """

    id: str
    title: str
    kind: TaskKind = TaskKind.CODE
    description: str = ""
    depends_on: list[str] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)
    acceptance: list[str] = field(default_factory=list)
    estimate_hours: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.kind, str) and not isinstance(self.kind, TaskKind):
            try:
                self.kind = TaskKind(self.kind)
            except ValueError:
                raise PlanError(
                    f"task {self.id!r} has unknown kind {self.kind!r}; use one of: {KNOWN_KINDS}"
                ) from None
        for name in _LIST_FIELDS:
            setattr(self, name, list(getattr(self, name) or []))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Task":
        """The task of a dict from `to_dict` (or an older one without the newer fields)."""
        return cls(
            id=data["id"],
            title=data.get("title") or data["id"],
            kind=data.get("kind") or "code",
            description=data.get("description") or "",
            **{name: list(data.get(name) or []) for name in _LIST_FIELDS},
            estimate_hours=data.get("estimate_hours"),
        )


def slug(text: str) -> str:
    """A task id made from a title: lowercase words joined by '-'."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return "-".join(words)[:48].strip("-") or "task"


# --- validation -----------------------------------------------------------------------------------

def _field_problems(i: int, item: Any) -> list[str]:
    """What is wrong with one task dict on its own (types, id, kind, estimate)."""
    if not isinstance(item, dict):
        return [f"task #{i + 1} is not an object with id, title, kind, ..."]
    task_id = item.get("id")
    name = f"task {task_id!r}" if isinstance(task_id, str) else f"task #{i + 1}"
    if not isinstance(task_id, str) or not task_id:
        return [f"{name} has no id; give every task a short id such as 'db-schema'"]
    problems = []
    if not _ID.match(task_id):
        problems.append(f"task id {task_id!r} is not usable as a branch name; use lowercase "
                        "letters, digits, '-' or '_' (at most 63 characters)")
    kind = item.get("kind") or "code"
    if kind not in {k.value for k in TaskKind}:
        problems.append(f"{name} has unknown kind {kind!r}; use one of: {KNOWN_KINDS}")
    for key in _LIST_FIELDS:
        value = item.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(f"{name}: {key} must be a list of strings, got {value!r}")
    hours = item.get("estimate_hours")
    if hours is not None and (isinstance(hours, bool) or not isinstance(hours, (int, float)) or hours < 0):
        problems.append(f"{name}: estimate_hours must be a number of hours (0 or more), got {hours!r}")
    return problems


def _edge_problems(items: list[dict[str, Any]], ids: list[str]) -> list[str]:
    """Dependencies that point nowhere, at the task itself, or partial ones not in depends_on."""
    problems = []
    known = set(ids)
    for item in items:
        deps = [d for d in item.get("depends_on") or [] if isinstance(d, str)]
        for dep in deps:
            if dep == item["id"]:
                problems.append(f"task {item['id']!r} depends on itself")
            elif dep not in known:
                problems.append(f"task {item['id']!r} depends on {dep!r}, which is not in the plan "
                                f"(tasks: {', '.join(ids)})")
        for dep in item.get("partial") or []:
            if dep not in deps:
                problems.append(f"task {item['id']!r} lists {dep!r} in partial but not in depends_on; "
                                "partial dependencies must also be dependencies")
    return problems


def cycle_text(cycle: list[tuple[str, str]]) -> str:
    """'a -> b -> a' from the edges networkx.find_cycle returns."""
    return " -> ".join([u for u, _ in cycle] + [cycle[0][0]])


def _cycle_problems(items: list[dict[str, Any]]) -> list[str]:
    """Up to three cycles, each named; called once every dependency is known to exist."""
    graph = nx.DiGraph((d, item["id"]) for item in items for d in item.get("depends_on") or [])
    cycles = list(itertools.islice(nx.simple_cycles(graph), 3))
    return [f"the plan has a dependency cycle: {' -> '.join(c + [c[0]])}; remove one of these dependencies"
            for c in cycles]


def plan_problems(items: Any) -> list[str]:
    """Every reason the task dicts `items` do not make a valid plan (empty when they do).

    Checked on plain dicts, so that a model's plan can be judged (and all its
    problems reported at once) before anything is built from it.
    """
    if not isinstance(items, list) or not items:
        return ["the plan has no tasks; give a request or at least one task"]
    problems = [p for i, item in enumerate(items) for p in _field_problems(i, item)]
    valid = [item for item in items if isinstance(item, dict) and isinstance(item.get("id"), str)
             and item["id"]]
    ids = [item["id"] for item in valid]
    problems += [f"two tasks have the id {i!r}; ids must be unique"
                 for i, n in sorted(_counts(ids).items()) if n > 1]
    problems += _edge_problems(valid, list(dict.fromkeys(ids)))
    if not problems:
        problems += _cycle_problems(valid)
    return problems


def _counts(values: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def raise_problems(problems: list[str]) -> None:
    """A PlanError showing every problem (one line when there is one)."""
    if len(problems) == 1:
        raise PlanError(problems[0], problems)
    if problems:
        raise PlanError(f"the plan has {len(problems)} problems:\n" + "\n".join(f"- {p}" for p in problems),
                        problems)


# --- the plan -------------------------------------------------------------------------------------

class Plan:
    """Tasks with dependencies, held as a `networkx.DiGraph` (edge: input -> dependent).

    Built only from valid tasks: unique ids usable in branch names, known
    dependencies, no cycle. Each node carries its `Task` under the "task" key;
    each edge has `partial` (True when the dependent may start before its input
    finishes). The editing methods keep the graph and the tasks' `depends_on`
    in step and leave the plan unchanged when they refuse.

    `resolutions` records what was decided about predicted collisions
    (plan/collisions.py): a list of {"tasks": [a, b], "files": [...], "choice": ...}.
    """

    def __init__(self, tasks: Iterable[Task], request: str = "", planner: str = "",
                 resolutions: list[dict[str, Any]] | None = None) -> None:
        self.request = request
        self.planner = planner
        self.graph = self._build(list(tasks))
        self.resolutions: list[dict[str, Any]] = list(resolutions or [])

    @staticmethod
    def _build(tasks: list[Task]) -> nx.DiGraph:
        raise_problems(plan_problems([t.to_dict() for t in tasks]))
        graph = nx.DiGraph()
        for task in tasks:
            graph.add_node(task.id, task=task)
        for task in tasks:
            for dep in task.depends_on:
                graph.add_edge(dep, task.id, partial=dep in task.partial)
        return graph

    @property
    def tasks(self) -> list[Task]:
        """Tasks in a topological order (inputs before the tasks that use them)."""
        position = {node: i for i, node in enumerate(self.graph)}
        order = nx.lexicographical_topological_sort(self.graph, key=position.__getitem__)
        return [self.graph.nodes[n]["task"] for n in order]

    def __getitem__(self, task_id: str) -> Task:
        try:
            return self.graph.nodes[task_id]["task"]
        except KeyError:
            raise KeyError(f"no task {task_id!r} in this plan (tasks: {', '.join(self.graph)})") from None

    def __contains__(self, task_id: object) -> bool:
        return task_id in self.graph

    def __len__(self) -> int:
        return self.graph.number_of_nodes()

    def dependents(self, task_id: str) -> list[str]:
        return list(self.graph.successors(task_id))

    def copy(self) -> "Plan":
        """An independent copy, to try an edit (such as a collision choice) without committing to it."""
        return Plan.from_dict(copy.deepcopy(self.to_dict()))

    # --- critical path --------------------------------------------------------------------------

    def weights(self) -> dict[str, float]:
        """Each task's length on the critical path: its estimate, else the mean known estimate, else 1."""
        tasks = [self.graph.nodes[n]["task"] for n in self.graph]
        known = [t.estimate_hours for t in tasks if t.estimate_hours is not None]
        default = sum(known) / len(known) if known else 1.0
        return {t.id: float(default if t.estimate_hours is None else t.estimate_hours) for t in tasks}

    def critical_path(self) -> list[str]:
        """The longest chain of dependent tasks, weighted by estimate_hours where known.

        Node weights become edge weights (each edge weighs its target; a
        virtual start reaches every task) so that networkx's dag_longest_path
        can do the work.
        """
        weight = self.weights()
        start = object()
        weighted = nx.DiGraph()
        weighted.add_nodes_from(self.graph)
        weighted.add_weighted_edges_from((u, v, weight[v]) for u, v in self.graph.edges)
        weighted.add_weighted_edges_from((start, n, weight[n]) for n in self.graph)
        return nx.dag_longest_path(weighted)[1:]

    def critical_path_length(self) -> float:
        """Hours (or tasks, when nothing is estimated) along the critical path."""
        weight = self.weights()
        return sum(weight[n] for n in self.critical_path())

    # --- editing --------------------------------------------------------------------------------

    def add_task(self, task: Task) -> Task:
        """Add a task (its dependencies must already be in the plan)."""
        trial = [t.to_dict() for t in self.tasks] + [task.to_dict()]
        raise_problems(plan_problems(trial))
        self.graph.add_node(task.id, task=task)
        for dep in task.depends_on:
            self.graph.add_edge(dep, task.id, partial=dep in task.partial)
        return task

    def remove_task(self, task_id: str, *, cascade: bool = False) -> list[str]:
        """Remove a task; returns the ids removed.

        Refuses when other tasks depend on it, because they would silently lose
        an input; `cascade=True` removes those dependents (and theirs) too.
        Refuses to remove the last task, since an empty plan cannot run.
        """
        self._require(task_id)
        dependents = nx.descendants(self.graph, task_id)
        if dependents and not cascade:
            names = ", ".join(sorted(self.graph.successors(task_id), key=list(self.graph).index))
            raise PlanError(f"cannot remove {task_id!r}: {names} depend on it; remove those "
                            "dependencies first (remove_dependency) or pass cascade=True to remove "
                            f"every task that needs it ({', '.join(sorted(dependents))})")
        doomed = [n for n in self.graph if n == task_id or n in dependents]
        if len(doomed) == len(self.graph):
            raise PlanError(f"removing {', '.join(doomed)} would leave the plan empty; a plan needs a task")
        self.graph.remove_nodes_from(doomed)   # every task that depended on them is among them
        self.resolutions = [r for r in self.resolutions if not set(r.get("tasks", [])) & set(doomed)]
        return doomed

    def _require(self, task_id: str) -> Task:
        """The task, or a PlanError naming the tasks there are (editing raises only PlanError)."""
        if task_id not in self.graph:
            raise PlanError(f"no task {task_id!r} in this plan (tasks: {', '.join(self.graph)})")
        return self.graph.nodes[task_id]["task"]

    def add_dependency(self, task_id: str, on: str, partial: bool = False) -> None:
        """Make `task_id` wait for `on` (or only start after it starts, when partial).

        Refuses a dependency that would close a cycle, naming the cycle; the
        plan is unchanged then. Adding an existing dependency updates its
        partial flag.
        """
        task, _ = self._require(task_id), self._require(on)
        if task_id == on:
            raise PlanError(f"task {task_id!r} cannot depend on itself")
        if nx.has_path(self.graph, task_id, on):
            back = nx.shortest_path(self.graph, task_id, on)
            raise PlanError(f"{task_id!r} cannot depend on {on!r}: that would make a cycle "
                            f"{' -> '.join([on] + back)}; the plan is unchanged")
        if on not in task.depends_on:
            task.depends_on.append(on)
        task.partial = [d for d in task.partial if d != on] + ([on] if partial else [])
        self.graph.add_edge(on, task_id, partial=partial)

    def remove_dependency(self, task_id: str, on: str) -> None:
        """Let `task_id` run without waiting for `on`."""
        task = self._require(task_id)
        if on not in task.depends_on:
            deps = ", ".join(task.depends_on) or "nothing"
            raise PlanError(f"{task_id!r} does not depend on {on!r} (it depends on {deps})")
        task.depends_on.remove(on)
        task.partial = [d for d in task.partial if d != on]
        self.graph.remove_edge(on, task_id)

    def ordered(self, a: str, b: str, *, count_partial: bool = True) -> bool:
        """Whether one of the two tasks waits (directly or not) for the other.

        With count_partial=False, partial dependencies do not order: such tasks
        may run at the same time.
        """
        graph = self.graph if count_partial else nx.subgraph_view(
            self.graph, filter_edge=lambda u, v: not self.graph.edges[u, v].get("partial"))
        return nx.has_path(graph, a, b) or nx.has_path(graph, b, a)

    # --- persistence ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"request": self.request, "planner": self.planner,
                                "tasks": [t.to_dict() for t in self.tasks]}
        if self.resolutions:
            data["resolutions"] = copy.deepcopy(self.resolutions)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Plan":
        return cls([Task.from_dict(t) for t in data["tasks"]], request=data.get("request", ""),
                   planner=data.get("planner", ""), resolutions=data.get("resolutions"))

    def __repr__(self) -> str:
        arrows = ", ".join(f"{u}{'~>' if p else '->'}{v}" for u, v, p in self.graph.edges(data="partial"))
        return f"Plan({len(self)} tasks: {', '.join(self.graph)}; {arrows or 'no dependencies'})"
