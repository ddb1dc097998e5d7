"""A run's state as a fold over its events.

`RunState.apply` is the only place that changes state, and it only ever reads
events: a live run applies each event right after it is logged, and a resumed
run folds the whole log, so both see exactly the same state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from ..agents.messages import Message
from ..plan.task import Plan
from ..store.events import Event

WAITING, RUNNING, NEEDS_INPUT, COMPLETE, FAILED, SKIPPED, CANCELLED = (
    "waiting", "running", "needs_input", "complete", "failed", "skipped", "cancelled")
SETTLED = {COMPLETE, FAILED, SKIPPED, CANCELLED}
SYMBOLS = {WAITING: "○", RUNNING: "●", NEEDS_INPUT: "⚠", COMPLETE: "✓", FAILED: "✗",
           SKIPPED: "–", CANCELLED: "✗"}


@dataclass
class TaskState:
    id: str
    status: str = WAITING
    model: str | None = None
    attempt: int = 0
    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    start_commit: str | None = None
    commit: str | None = None
    summary: str = ""
    error: str | None = None
    files_created: list[str] = field(default_factory=list)
    files_modified: list[str] = field(default_factory=list)
    files_deleted: list[str] = field(default_factory=list)
    started_at: float | None = None
    finished_at: float | None = None
    model_id: str | None = None
    route_reason: str | None = None
    route: str | None = None         # the route name the task went to (e.g. claude-sonnet)
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0            # known costs only
    cost_unknown: bool = False       # some call of this task has no known price
    budget: float | None = None      # a raised per-task cap
    worker: str | None = None        # where its workspace is: "local", or a Dask worker's address
    escalate_to: str | None = None   # the model a failed attempt goes on to (a learned cascade)
    escalated_from: str | None = None   # the model whose failed attempt this task went on from
    escalation_cost_usd: float | None = None   # what that failed attempt cost (known prices)
    escalation_seconds: float | None = None    # and how long it ran
    fresh_start: bool = False        # the next workspace starts again from start_commit (escalated)
    start_notes: list[str] = field(default_factory=list)   # what the agent was told of its inputs

    def budget_cap(self, default: float) -> float:
        return self.budget or default

    @property
    def files(self) -> list[str]:
        """Every file this task changed."""
        return self.files_created + self.files_modified + self.files_deleted

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.status]


@dataclass
class RunState:
    run_id: str
    plan: Plan | None = None
    request: str = ""
    repo: str = ""
    base: str = ""
    tier: int = 2
    max_parallel: int | None = None
    policy: dict[str, Any] | None = None
    checkpoint_timeout: float | None = None
    status: str = "starting"
    paused: bool = False
    tasks: dict[str, TaskState] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    open_checkpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    parked: set[str] = field(default_factory=set)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    integration: dict[str, Any] | None = None
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    owner_pid: int | None = None
    checkpoints_opened: int = 0
    budget: float | None = None
    task_budget: float | None = None
    budget_warned: bool = False
    unpriced: set[str] = field(default_factory=set)
    _before_asking: dict[str, str] = field(default_factory=dict, repr=False)
    collisions: list[dict[str, Any]] = field(default_factory=list)   # predicted before the start
    predicted_plan: dict[str, Any] | None = None                       # the plan they were predicted on
    preflight_done: bool = False
    check: str | None = None
    collision_scores: dict[str, Any] | None = None
    events_seen: int = 0
    problems: list[str] = field(default_factory=list)     # events the fold had to skip
    own_cost_usd: float = 0.0          # the run's own model calls (planning, merging), known prices
    own_cost_unknown: bool = False

    @classmethod
    def fold(cls, run_id: str, events: Iterable[Event]) -> "RunState":
        """The state after `events`; an event missing what its kind needs is skipped and named
        in `problems`, so one damaged row never makes a run unreadable or unresumable."""
        state = cls(run_id)
        for event in events:
            try:
                state.apply(event)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                state.problems.append(f"event {event.seq} ({event.type}) skipped: {type(exc).__name__}: {exc}")
        return state

    @property
    def finished(self) -> bool:
        return self.status in ("complete", "conflicts", "failed", "cancelled")

    def counts(self) -> dict[str, int]:
        counts = {WAITING: 0, RUNNING: 0, NEEDS_INPUT: 0, COMPLETE: 0, FAILED: 0, SKIPPED: 0,
                  CANCELLED: 0}
        for task in self.tasks.values():
            counts[task.status] += 1
        return counts

    def apply(self, event: Event) -> None:
        self.events_seen += 1
        handler = getattr(self, "_on_" + event.type, None)
        if handler is not None:
            handler(event, event.data)

    def _task(self, event: Event) -> TaskState:
        return self.tasks.setdefault(event.task_id, TaskState(event.task_id))

    def _on_run_started(self, e: Event, d: dict[str, Any]) -> None:
        if d.get("plan") is not None:
            self.plan = self.plan or Plan.from_dict(d["plan"])
        self.request, self.repo, self.base = d["request"], d["repo"], d["base"]
        self.tier, self.max_parallel = d["tier"], d.get("max_parallel")
        self.policy, self.checkpoint_timeout = d.get("policy"), d.get("checkpoint_timeout")
        self.budget, self.task_budget = d.get("budget"), d.get("task_budget")
        self.status, self.started_at, self.owner_pid = "running", e.ts, d.get("pid")
        self.tasks = {t.id: TaskState(t.id) for t in self.plan.tasks} if self.plan else {}
        self.status = "running" if self.plan else "planning"

    def _on_check_configured(self, e: Event, d: dict[str, Any]) -> None:
        self.check = d["command"]

    def _on_task_added(self, e: Event, d: dict[str, Any]) -> None:
        if e.task_id not in self.plan.graph:            # a resumed run: the live one added it already
            from ..plan.task import Task
            self.plan.add_task(Task.from_dict(d["task"]))
        self.tasks.setdefault(e.task_id, TaskState(e.task_id))

    def _on_plan_ready(self, e: Event, d: dict[str, Any]) -> None:
        self.plan = Plan.from_dict(d["plan"])
        self.tasks = {t.id: TaskState(t.id) for t in self.plan.tasks}
        self.status = "running"

    def _on_run_reopened(self, e: Event, d: dict[str, Any]) -> None:
        self.status, self.owner_pid, self.paused = "running", d.get("pid"), False
        self.finished_at = None
        for task in self.tasks.values():
            if task.status in (RUNNING, NEEDS_INPUT, CANCELLED, SKIPPED, FAILED):
                task.status = WAITING

    def _on_run_paused(self, e: Event, d: dict[str, Any]) -> None:
        self.paused = True

    def _on_run_resumed(self, e: Event, d: dict[str, Any]) -> None:
        self.paused = False

    @property
    def total_cost(self) -> float:
        """Known costs: every agent's calls, and the run's own (planning, merging)."""
        return sum(t.cost_usd for t in self.tasks.values()) + self.own_cost_usd

    @property
    def cost_unknown(self) -> bool:
        return self.own_cost_unknown or any(t.cost_unknown for t in self.tasks.values())

    def _on_model_call(self, e: Event, d: dict[str, Any]) -> None:
        """A call the run made for itself (the planner, the merge agent): it counts toward the budget."""
        if d.get("cost_usd") is None:
            self.own_cost_unknown = True
        else:
            self.own_cost_usd += d["cost_usd"]

    def _on_collisions_predicted(self, e: Event, d: dict[str, Any]) -> None:
        self.collisions, self.predicted_plan = d["collisions"], d["plan"]

    def _on_collision_resolved(self, e: Event, d: dict[str, Any]) -> None:
        if self.plan is None or self.plan.to_dict() != d["plan"]:      # a live run changed it already
            self.plan = Plan.from_dict(d["plan"])
            self.tasks = {t.id: self.tasks.get(t.id, TaskState(t.id)) for t in self.plan.tasks}

    def _on_preflight_done(self, e: Event, d: dict[str, Any]) -> None:
        self.preflight_done = True

    def _on_collision_report(self, e: Event, d: dict[str, Any]) -> None:
        self.collision_scores = d

    def _on_task_routed(self, e: Event, d: dict[str, Any]) -> None:
        task = self._task(e)
        task.model, task.model_id, task.route_reason = d["model"], d.get("model_id"), d.get("reason")
        task.route, task.escalate_to = d["model"], d.get("escalate_to")

    def _on_task_escalated(self, e: Event, d: dict[str, Any]) -> None:
        """The attempt on the cascade's first model failed: the task starts again on the last one,
        from the same commit, its cost so far counted."""
        task = self._task(e)
        task.escalated_from, task.route, task.escalate_to = d["from_model"], d["to_model"], None
        task.escalation_cost_usd = d.get("cost_usd")
        task.escalation_seconds = e.ts - task.started_at if task.started_at else None
        task.fresh_start = True
        self._drop_checkpoints(e.task_id)

    def _on_cost_unknown(self, e: Event, d: dict[str, Any]) -> None:
        self.unpriced.add(d["model"])

    def _on_budget_warning(self, e: Event, d: dict[str, Any]) -> None:
        self.budget_warned = True

    def _on_budget_raised(self, e: Event, d: dict[str, Any]) -> None:
        self.budget, self.budget_warned = d["budget"], False

    def _on_task_budget_raised(self, e: Event, d: dict[str, Any]) -> None:
        self._task(e).budget = d["budget"]

    def _on_task_started(self, e: Event, d: dict[str, Any]) -> None:
        task = self._task(e)
        task.status, task.attempt = RUNNING, d.get("attempt", 1)
        task.model = d.get("model") or task.model
        task.started_at, task.error = e.ts, None
        task.worker = d.get("worker") or task.worker
        if any(c["task_id"] == e.task_id for c in self.open_checkpoints.values()):
            self._before_asking[e.task_id] = RUNNING        # a question re-shown after a restart
            task.status = NEEDS_INPUT

    def _on_workspace_ready(self, e: Event, d: dict[str, Any]) -> None:
        task = self._task(e)
        task.start_commit = task.start_commit or d["head"]
        task.fresh_start = False
        task.start_notes = d.get("notes", task.start_notes)

    def _on_task_moved(self, e: Event, d: dict[str, Any]) -> None:
        self._task(e).worker = d["worker"]          # its worker was lost: it goes on on another

    def _on_model_reply(self, e: Event, d: dict[str, Any]) -> None:
        task = self._task(e)
        task.turns += 1
        task.input_tokens += d.get("input_tokens", 0)
        task.output_tokens += d.get("output_tokens", 0)
        task.cache_read_tokens += d.get("cache_read_tokens", 0)
        task.cache_write_tokens += d.get("cache_write_tokens", 0)
        if d.get("cost_usd") is None:
            task.cost_unknown = True
        else:
            task.cost_usd += d["cost_usd"]

    def _on_checkpoint_opened(self, e: Event, d: dict[str, Any]) -> None:
        task = self._task(e)
        self.open_checkpoints[d["id"]] = dict(d, task_id=e.task_id)
        self.checkpoints_opened += 1
        if task.status in (WAITING, RUNNING):        # a finished task asked at the merge stays finished
            self._before_asking.setdefault(e.task_id, task.status)
            task.status = NEEDS_INPUT

    def _on_checkpoint_parked(self, e: Event, d: dict[str, Any]) -> None:
        self.parked.add(d["checkpoint_id"])

    def _on_decision(self, e: Event, d: dict[str, Any]) -> None:
        self.decisions.append(dict(d, task_id=e.task_id))
        checkpoint = d.get("checkpoint_id")
        if checkpoint:
            self.open_checkpoints.pop(checkpoint, None)
            self.parked.discard(checkpoint)
            if not any(c["task_id"] == e.task_id for c in self.open_checkpoints.values()):
                task = self._task(e)
                before = self._before_asking.pop(e.task_id, RUNNING)
                if task.status == NEEDS_INPUT:
                    task.status = before

    def _on_task_finished(self, e: Event, d: dict[str, Any]) -> None:
        task = self._task(e)
        task.status, task.finished_at = COMPLETE, e.ts
        task.summary, task.commit = d.get("summary", ""), d.get("commit")
        task.files_created = d.get("files_created", [])
        task.files_modified = d.get("files_modified", [])
        task.files_deleted = d.get("files_deleted", [])

    def _on_task_failed(self, e: Event, d: dict[str, Any]) -> None:
        task = self._task(e)
        task.status, task.error, task.finished_at = FAILED, d.get("error"), e.ts
        self._drop_checkpoints(e.task_id)

    def _on_task_skipped(self, e: Event, d: dict[str, Any]) -> None:
        self._task(e).status = SKIPPED

    def _on_task_cancelled(self, e: Event, d: dict[str, Any]) -> None:
        self._task(e).status = CANCELLED
        self._drop_checkpoints(e.task_id)

    def _drop_checkpoints(self, task_id: str) -> None:
        for cid in [c for c, data in self.open_checkpoints.items() if data["task_id"] == task_id]:
            self.open_checkpoints.pop(cid)
            self.parked.discard(cid)

    def _on_message(self, e: Event, d: dict[str, Any]) -> None:
        self.messages.append(Message(d["from_task"], d["to_task"], d.get("type", "task_output"),
                                     d.get("payload", {})))

    def _on_integration_started(self, e: Event, d: dict[str, Any]) -> None:
        self.status = "integrating"

    def _on_integration_finished(self, e: Event, d: dict[str, Any]) -> None:
        self.integration = d

    def _on_run_finished(self, e: Event, d: dict[str, Any]) -> None:
        self.status, self.finished_at, self.error = d["status"], e.ts, d.get("error")
        for task in self.tasks.values():
            if task.status in (WAITING, RUNNING, NEEDS_INPUT):
                task.status = CANCELLED if d["status"] == "cancelled" else task.status
