"""Planners turn a request into a `Plan`.

The offline planner is a heuristic, labelled as one: it splits the request on
its clauses and list items, guesses each task's kind from its words, and orders
the usual dependencies (data layer before the code that uses it, code before its
docs and tests, review last).
"""

from __future__ import annotations

import re
from typing import Protocol

import networkx as nx

from .task import Plan, PlanError, Task, TaskKind, slug


class Planner(Protocol):
    name: str

    def plan(self, request: str, repo: str | None = None) -> Plan: ...


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

_SPLIT = re.compile(r"\s*(?:\n+|;|,\s*(?:and|then)\s+|,|\s+and then\s+|\s+then\s+|\s+and\s+(?=(?:%s)\b))\s*"
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
            tasks.append(Task(task_id, title, guess_kind(clause), clause[:1].upper() + clause[1:]))
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
