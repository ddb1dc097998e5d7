"""Tasks and the plan that orders them: a validated networkx DAG."""

from __future__ import annotations

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
    """A plan that cannot run; the message says what is wrong and how to fix it."""


_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass
class Task:
    id: str
    title: str
    kind: TaskKind = TaskKind.CODE
    description: str = ""
    depends_on: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.kind, str) and not isinstance(self.kind, TaskKind):
            try:
                self.kind = TaskKind(self.kind)
            except ValueError:
                known = ", ".join(k.value for k in TaskKind)
                raise PlanError(
                    f"task {self.id!r} has unknown kind {self.kind!r}; use one of: {known}"
                ) from None
        self.depends_on = list(self.depends_on)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Task":
        return cls(
            id=data["id"],
            title=data.get("title", data["id"]),
            kind=data.get("kind", "code"),
            description=data.get("description", ""),
            depends_on=list(data.get("depends_on", [])),
        )


def slug(text: str) -> str:
    """A task id made from a title: lowercase words joined by '-'."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    return "-".join(words)[:48].strip("-") or "task"


class Plan:
    """Tasks with dependencies, held as a `networkx.DiGraph` (edge: input -> dependent).

    Built only from valid tasks: unique ids usable in branch names, known
    dependencies, no cycle. Each node carries its `Task` under the "task" key.
    """

    def __init__(self, tasks: Iterable[Task], request: str = "", planner: str = "") -> None:
        self.request = request
        self.planner = planner
        self.graph = self._build(list(tasks))

    @staticmethod
    def _build(tasks: list[Task]) -> nx.DiGraph:
        if not tasks:
            raise PlanError("the plan has no tasks; give a request or at least one task")
        graph = nx.DiGraph()
        for task in tasks:
            if not _ID.match(task.id):
                raise PlanError(
                    f"task id {task.id!r} is not usable as a branch name; use lowercase "
                    "letters, digits, '-' or '_' (at most 63 characters)"
                )
            if task.id in graph:
                raise PlanError(f"two tasks have the id {task.id!r}; ids must be unique")
            graph.add_node(task.id, task=task)
        for task in tasks:
            for dep in task.depends_on:
                if dep not in graph:
                    raise PlanError(
                        f"task {task.id!r} depends on {dep!r}, which is not in the plan "
                        f"(tasks: {', '.join(graph)})"
                    )
                if dep == task.id:
                    raise PlanError(f"task {task.id!r} depends on itself")
                graph.add_edge(dep, task.id)
        try:
            cycle = nx.find_cycle(graph)
        except nx.NetworkXNoCycle:
            return graph
        path = " -> ".join([u for u, _ in cycle] + [cycle[0][0]])
        raise PlanError(f"the plan has a dependency cycle: {path}; remove one of these dependencies")

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

    def __len__(self) -> int:
        return self.graph.number_of_nodes()

    def dependents(self, task_id: str) -> list[str]:
        return list(self.graph.successors(task_id))

    def critical_path(self) -> list[str]:
        return nx.dag_longest_path(self.graph)

    def to_dict(self) -> dict[str, Any]:
        return {"request": self.request, "planner": self.planner,
                "tasks": [t.to_dict() for t in self.tasks]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Plan":
        return cls([Task.from_dict(t) for t in data["tasks"]],
                   request=data.get("request", ""), planner=data.get("planner", ""))

    def __repr__(self) -> str:
        arrows = ", ".join(f"{u}->{v}" for u, v in self.graph.edges)
        return f"Plan({len(self)} tasks: {', '.join(self.graph)}; {arrows or 'no dependencies'})"
