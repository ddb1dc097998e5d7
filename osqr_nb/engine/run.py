"""One orchestration: plan -> agents in worktrees -> messages -> integration.

The Run writes every step to the event log first, then folds it into its state
(engine/state.py); widgets read that state. Everything runs as asyncio tasks on
the loop the Run was started on (the kernel's own), owned by one main task.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable

import networkx as nx
import pandas as pd

from ..agents.agent import Agent, AgentError, AgentResult, AgentStopped
from ..agents.messages import Mediator, Message
from ..autonomy.checkpoints import COLLISION, CONFLICT, DECISION, LET_ME_THINK, Checkpoint
from ..autonomy.policy import AutonomyPolicy
from ..models.base import ModelClient
from ..models.catalog import ModelInfo, describe_client
from ..models.errors import ProviderError
from ..plan.collisions import (Choice, Collision, choose_by_policy, merge_reviews, predict_collisions,
                               score_predictions)
from ..plan.task import Plan, Task
from ..routing import Router
from ..store.events import Event, EventLog, to_json
from ..store.frames import events_frame, history_frame
from ..workspace import git
from ..workspace.merge import Integrator, problems_with
from ..workspace.task_workspace import LocalHost, TaskWorkspace, WorkspaceHost
from .budget import Budgets
from .inputs import TaskInputs
from .resolution import MergeResolution
from .scheduler import Scheduler, SchedulerCancelled
from .state import COMPLETE, SETTLED, RunState, TaskState
from .supervisor import TaskSupervisor
from .task_check import TaskChecks

def new_run_id() -> str:
    return time.strftime("%y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


class Run:
    """A running (or finished) orchestration. `await run` waits for it to end."""

    def __init__(self, state: RunState, root: Path, log: EventLog, router: Router,
                 model: ModelClient | None = None) -> None:
        self.state = state
        self.root = root
        self.log = log
        self.router = router
        self.model = model                    # one client for every task, when given (tests, custom)
        self.budgets = Budgets(self)
        self.policy = AutonomyPolicy.from_dict(state.policy) if state.policy else AutonomyPolicy(state.tier)
        self.checkpoint_timeout: float | None = state.checkpoint_timeout
        self.mediator = Mediator(state.plan.graph if state.plan else nx.DiGraph())
        self.mediator.messages = state.messages   # the mediator's inboxes are the folded messages
        self.version = 0                      # bumped on every event; widgets poll it
        self.streamed: dict[str, int] = {}    # characters streamed in per task (progress, not events)
        self._checkpoints: dict[str, Checkpoint] = {}
        self._checkpoint_ids = itertools.count(state.checkpoints_opened + 1)
        self._checkpoint_opened = asyncio.Event()
        self._gate = asyncio.Event()
        self._gate.set()
        self._scheduler: Scheduler | None = None
        self._main: asyncio.Task | None = None
        self._done: asyncio.Future | None = None
        self._listeners: list[Callable[[Event], None]] = []
        self.titles = {t.id: t.title for t in state.plan.tasks} if state.plan else {}
        self.planner = None                   # an async planner to run first, when no plan was given
        self._settled: dict[str, asyncio.Event] = {}
        self.keep_worktrees = False
        self.check: str | None = state.check  # a verification command run on the merged result
        self.checks = TaskChecks(self)        # ... and on a cascade's cheap attempts (task_check.py)
        self.collision_growth = 0.25     # tiers 3-4 serialize when the critical path grows less than this
        self.warnings: list[str] = []
        self.workspaces: WorkspaceHost = LocalHost(root, state.run_id)   # where tasks' files live
        self._workspaces: dict[str, TaskWorkspace] = {}     # the open workspace of each running task

    # ----- creation -------------------------------------------------------------------------

    @classmethod
    def create(cls, plan: Plan, repo: git.RepoInfo, log: EventLog, router: Router, *,
               policy: AutonomyPolicy, max_parallel: int | None, model: ModelClient | None = None,
               checkpoint_timeout: float | None = None, budget: float | None = None,
               task_budget: float | None = None) -> "Run":
        run = cls(RunState(new_run_id(), plan=plan), repo.root, log, router, model)
        run.emit("run_started", request=plan.request, plan=plan.to_dict(), repo=str(repo.root),
                  base=repo.head, branch=repo.branch, tier=policy.tier, max_parallel=max_parallel,
                  policy=policy.to_dict(), checkpoint_timeout=checkpoint_timeout, budget=budget,
                  task_budget=task_budget, model=run.model_name, pid=os.getpid(),
                  uncommitted=repo.uncommitted)
        run.policy, run.checkpoint_timeout = policy, checkpoint_timeout
        return run

    @classmethod
    def planning(cls, request: str, planner: Any, repo: git.RepoInfo, log: EventLog, router: Router, *,
                 policy: AutonomyPolicy, max_parallel: int | None, model: ModelClient | None = None,
                 checkpoint_timeout: float | None = None, budget: float | None = None,
                 task_budget: float | None = None) -> "Run":
        """A run whose plan a model makes first, on the loop (the cell still returns at once)."""
        run = cls(RunState(new_run_id()), repo.root, log, router, model)
        run.planner = planner
        run.emit("run_started", request=request, plan=None, planner=planner.name, repo=str(repo.root),
                  base=repo.head, branch=repo.branch, tier=policy.tier, max_parallel=max_parallel,
                  policy=policy.to_dict(), checkpoint_timeout=checkpoint_timeout, budget=budget,
                  task_budget=task_budget, model=run.model_name, pid=os.getpid(), uncommitted=repo.uncommitted)
        run.policy, run.checkpoint_timeout = policy, checkpoint_timeout
        return run

    async def _make_plan(self) -> None:
        """The model's plan; if its provider fails, or it gives no plan that can be repaired, the
        offline heuristic's (said in an event). Each of the planner's model calls is a `model_call`."""
        from ..plan.decompose import ModelPlanError
        from .report import model_call_fields
        if hasattr(self.planner, "on_reply"):
            self.planner.on_reply = lambda reply, latency: self.emit(
                "model_call", **model_call_fields("plan", self.planner.model, reply, latency))
        try:
            plan = await self.planner.plan(self.state.request, self.root)
        except (ProviderError, ModelPlanError) as exc:
            from ..plan.decompose import OfflinePlanner
            why = "failed" if isinstance(exc, ProviderError) else "gave no plan that could be repaired"
            warning = f"the planner's model {why} ({str(exc).splitlines()[0]}); planned offline instead"
            self.emit("planning_failed", error=str(exc), fallback="offline heuristic", warning=warning)
            self.warnings.append(warning)
            self.planner = OfflinePlanner()
            plan = self.planner.plan(self.state.request, str(self.root))
        self.emit("plan_ready", plan=plan.to_dict(), planner=self.planner.name,
                   attempts=getattr(self.planner, "attempts", []))
        self.mediator.graph = self.plan.graph
        self.titles.update({t.id: t.title for t in self.plan.tasks})

    @classmethod
    def reopen(cls, state: RunState, root: Path, log: EventLog, router: Router,
               model: ModelClient | None = None) -> "Run":
        """A run rebuilt from its log after the kernel that ran it went away."""
        run = cls(state, root, log, router, model)
        for data in state.open_checkpoints.values():
            run._checkpoints[data["id"]] = run._make_checkpoint(data, data["task_id"])
        run.emit("run_reopened", pid=os.getpid(),
                  finished=[t for t, s in state.tasks.items() if s.status == COMPLETE])
        for cid in state.parked:
            if cid in run._checkpoints:
                run._checkpoints[cid].parked = True
        run._redeliver()
        return run

    def _redeliver(self) -> None:
        """Finished tasks' outputs that never reached a dependent (a log from before task_finished
        and its messages were one transaction): delivered now, once, before anything starts."""
        if self.plan is None:
            return
        delivered = {(m.from_task, m.to_task) for m in self.state.messages if m.type == "task_output"}
        finished = {e.task_id: e.data for e in self.log.read(self.id) if e.type == "task_finished"}
        missing = []
        for task_id, data in finished.items():
            payload = {k: data[k] for k in ("summary", "decisions", "context", "commit", "files_created",
                                            "files_modified", "files_deleted") if k in data}
            missing += [m for m in self.mediator.route(task_id, payload) if (task_id, m.to_task) not in delivered]
        if missing:
            self.emit_all([("message", m.from_task, dict(m.to_dict(), redelivered=True)) for m in missing])

    def start(self, keep_worktrees: bool = False) -> "Run":
        """Start the main task on the running loop and return at once."""
        self.keep_worktrees = keep_worktrees
        if keep_worktrees and isinstance(self.workspaces, LocalHost):
            self.workspaces.lazy = False         # a worktree kept to be looked at holds every file
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self._main = loop.create_task(self._orchestrate(), name=f"osqr-run-{self.id}")
        self._main.add_done_callback(self._main_done)
        return self

    # ----- the public face ------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self.state.run_id

    @property
    def model_name(self) -> str:
        """What the widgets say about models: the one given, or that each task is routed."""
        if self.model is not None:
            return self.model.name
        used = {t.model for t in self.state.tasks.values() if t.model}
        return used.pop() if len(used) == 1 else "routed per task kind"

    @property
    def plan(self) -> Plan:
        return self.state.plan

    @property
    def status(self) -> str:
        if self.state.status == "running":
            if self.state.paused:
                return "paused"
            if any(t.status == "needs_input" for t in self.state.tasks.values()):
                return "needs_input"
        return self.state.status

    @property
    def tasks(self) -> dict[str, TaskState]:
        return self.state.tasks

    @property
    def checkpoints(self) -> list[Checkpoint]:
        """The pending checkpoints, oldest first."""
        return [c for c in self._checkpoints.values() if c.pending]

    @property
    def checkpoint_history(self) -> list[Checkpoint]:
        """Every checkpoint of this run, answered or not, oldest first (what the views show)."""
        return list(self._checkpoints.values())

    def checkpoint(self, checkpoint_id: str) -> Checkpoint | None:
        return self._checkpoints.get(checkpoint_id)

    @property
    def messages(self) -> list[Message]:
        return list(self.state.messages)

    @property
    def integration(self) -> dict[str, Any] | None:
        return self.state.integration

    @property
    def done(self) -> bool:
        return self._done is not None and self._done.done()

    def __await__(self):
        if self._done is None:
            raise RuntimeError("this run was not started")
        return asyncio.shield(self._done).__await__()

    async def next_checkpoint(self, timeout: float | None = None) -> Checkpoint:
        """Wait until a checkpoint is pending (and not parked); return the oldest."""
        async def wait() -> Checkpoint:
            while True:
                ready = [c for c in self.checkpoints if not c.parked]
                if ready:
                    return ready[0]
                if self.done:
                    raise RuntimeError(f"run {self.id} ended ({self.status}) with no pending checkpoint")
                self._checkpoint_opened.clear()
                waiter = asyncio.ensure_future(self._checkpoint_opened.wait())
                await asyncio.wait([waiter, self._done], return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
        return await asyncio.wait_for(wait(), timeout)

    def pause(self) -> None:
        """Start no new task and hold running agents at their next turn."""
        if not self.state.paused and not self.state.finished:
            self.emit("run_paused")
            self._gate.clear()
            if self._scheduler:
                self._scheduler.pause()

    def resume(self) -> None:
        if self.state.paused:
            self.emit("run_resumed")
            self._gate.set()
            if self._scheduler:
                self._scheduler.resume()

    def cancel(self) -> None:
        """Stop every agent; branches, worktrees and the log stay as they are."""
        if self._main is not None and not self._main.done():
            self._main.cancel()

    def add_task(self, task: Task) -> Task:
        """Add a task to the running run: it starts as soon as the tasks it names are done."""
        over = self._scheduler is not None and self._scheduler.finished
        if over or self.done or self.state.status in ("integrating", "planning") or self.state.finished:
            raise ValueError(f"run {self.id} is {self.status}: tasks can be added while its agents run; "
                             "start a new run for more work")
        self.plan.add_task(task)                       # a clear PlanError for a bad id, dependency or cycle
        self.emit("task_added", task.id, task=task.to_dict())
        self.titles[task.id] = task.title
        if self._scheduler is not None:
            self._scheduler.add(task.id)
        return task

    def events(self) -> pd.DataFrame:
        return events_frame(self.log.read(self.id))

    def cost_report(self, human_rate: float | None = None) -> pd.DataFrame:
        """Per task: model, tokens, dollars, wall time, and the human-equivalent estimate.

        `report.attrs["summary"]` holds the run's totals: wall time against the sum
        of task times (what a sequential run would take) and the speed-up.
        """
        from ..config import settings
        from .report import cost_report
        return cost_report(self.state, settings().human_rate if human_rate is None else human_rate,
                           self.log.read(self.id))

    def on_event(self, listener: Callable[[Event], None]) -> None:
        self._listeners.append(listener)

    def __repr__(self) -> str:
        counts = self.state.counts()
        return (f"<Run {self.id} {self.status}: {counts['running']} active, "
                f"{counts['waiting']} waiting, {counts['complete']} complete>")

    # ----- events ---------------------------------------------------------------------------

    def emit(self, event_type: str, task_id: str | None = None, **data: Any) -> Event:
        """Log first, then fold into the state, then tell listeners."""
        return self.emit_all([(event_type, task_id, data)])[0]

    def emit_all(self, items: list[tuple[str, str | None, dict[str, Any]]]) -> list[Event]:
        """Events that belong together, logged in one transaction: all of them or none."""
        events = self.log.append_all([Event(self.id, kind, task_id, data) for kind, task_id, data in items])
        for event in events:
            self.state.apply(event)
            if event.type == "run_finished":
                self._close_checkpoints(f"the run ended ({event.data['status']})")
            if event.type in ("task_finished", "task_failed", "task_skipped", "task_cancelled"):
                self._settled.setdefault(event.task_id, asyncio.Event()).set()
            self.version += 1
            for listener in self._listeners:
                listener(event)
        return events

    # ----- orchestration --------------------------------------------------------------------

    async def _orchestrate(self) -> None:
        await git.git(self.root, "worktree", "prune")     # forget worktrees whose folders were deleted
        await asyncio.to_thread(git.clear_staging, await git.common_dir(self.root))   # and half-made ones
        try:
            if self.state.plan is None:
                if self.planner is None:     # reopened while planning: plan again, offline
                    from ..plan.decompose import OfflinePlanner, as_async
                    self.planner = as_async(OfflinePlanner())
                await self._make_plan()
            if not self.state.preflight_done:
                await self._preflight()
            graph = self.plan.graph
            self.mediator.graph = graph
            self._scheduler = Scheduler(graph, self._run_task, max_parallel=self.state.max_parallel,
                                        on_error="skip")
            if self.state.paused:
                self._scheduler.pause()
            premerge = asyncio.get_running_loop().create_task(self._premerge(), name=f"osqr-premerge-{self.id}")
            try:
                await self._scheduler.run()
            except BaseException:
                premerge.cancel()
                await asyncio.gather(premerge, return_exceptions=True)
                raise
        except (asyncio.CancelledError, SchedulerCancelled):
            for task_id, task in self.state.tasks.items():
                if task.status not in SETTLED:
                    self.emit("task_cancelled", task_id)
            self.emit("run_finished", status="cancelled")
            return
        for task_id in sorted(self._scheduler.skipped):
            failed = [p for p in nx.ancestors(graph, task_id) if p in self._scheduler.errors]
            self.emit("task_skipped", task_id, because=sorted(failed))
        if any(s.status not in SETTLED for s in self.state.tasks.values()):
            premerge.cancel()
        premerged = (await asyncio.gather(premerge, return_exceptions=True))[0]
        if all(s.status == COMPLETE for s in self.state.tasks.values()):
            await self.workspaces.done()     # nothing left to resume: workers may drop the run's clone
        await self._integrate(premerged if isinstance(premerged, dict) else {})

    async def _premerge(self) -> dict[tuple[str, str], str]:
        """Clean merges made ahead, in plan order, while later tasks still work: the integration
        at the end then finds them done (its own loop, events and resolvers are unchanged),
        and a person waits for the merges of the last tasks only. Stops at the first merge
        that needs more than git (a conflict, a check), and never fails the run."""
        integrator = Integrator(self.root, self.id, self.state.base, self.worktree("_integration"), {},
                                merge_reviews(self.plan))
        try:
            for task in self.state.plan.tasks:
                await self.settled(task.id)
                state = self.state.tasks[task.id]
                if state.status != COMPLETE:
                    continue
                if state.start_commit and not self.partial_inputs(task.id):
                    integrator.starts[task.id] = state.start_commit
                if not await integrator.merge_ahead(task.id, self.branch(task.id), state.files):
                    break
        except (git.GitError, OSError, ValueError):
            pass                                       # the integration does it all, as before
        return integrator.premerged

    async def _preflight(self) -> None:
        """Tier 1 prevention: files that tasks free to run at once may both write, decided
        before any agent starts (the person at tiers 1-2, the policy at tiers 3-4)."""
        plan = self.plan
        collisions = await asyncio.to_thread(predict_collisions, plan, self.root)
        self.emit("collisions_predicted", collisions=[c.to_dict() for c in collisions], plan=plan.to_dict())
        for collision in collisions:
            if self.policy.tier >= 3:
                choice, reason = choose_by_policy(collision, plan, self.collision_growth)
                decided_by = "auto"
            else:
                choice, decided_by = await self._ask_collision(collision)
                reason = "the person chose"
            effect = collision.apply(plan, choice)
            self.emit("collision_resolved", collision.task_a, collision=collision.to_dict(),
                       choice=str(choice), action=choice.action, first=choice.first, reason=reason,
                       decided_by=decided_by, effect=effect.to_dict(), plan=plan.to_dict())
        self.emit("preflight_done", collisions=len(collisions))

    async def _ask_collision(self, collision: Collision) -> tuple[Choice, str]:
        options = collision.options(self.plan)
        labels = [o.label for o in options]
        notes = {o.label: {"pros": [o.effect.summary], "cons": []} for o in options}
        evidence = [f"{f}: {'; '.join(why)}" for f, why in collision.evidence.items()]
        answer = await self.ask(collision.task_a, kind=COLLISION, question=collision.message, options=labels,
                                 attempt=0, proposed=labels[-1], category="collision", free_text=False,
                                 reason="tasks that may run at the same time may both change these files",
                                 details={"options": notes, "evidence": evidence[:6]})
        checkpoint = next(c for c in self._checkpoints.values() if c.question == collision.message)
        return next(o.choice for o in options if o.label == answer), checkpoint.decided_by or "human"

    async def _learn(self, check_failed: str | None) -> None:
        """This run's decisions and outcomes into the personal store, so later runs ask less
        where the person agrees and route better (counts only; never text or ids)."""
        from ..learning.wiring import record_run
        history = history_frame(self.log.read(self.id))
        overridden = set(history[(history.chosen != history.proposed)
                                 & history.decided_by.isin(["human", "code"])].task_id)
        outcomes = [row for t, s in self.state.tasks.items() if s.route
                    for row in _outcome_rows(self.plan[t].kind.value, s,
                                             s.status == COMPLETE and t not in overridden and not check_failed)]
        models = {t: s.route for t, s in self.state.tasks.items() if s.route}
        try:
            await asyncio.to_thread(record_run, history, outcomes, models)
            self.emit("learned", decisions=len(history), outcomes=len(outcomes))
        except (OSError, ValueError, sqlite3.Error) as exc:       # learning never costs a run
            self.emit("learning_skipped", error=str(exc))

    def collision_report(self) -> pd.DataFrame:
        """Predicted collisions against the files both tasks of a pair really changed."""
        predicted = [Collision.from_dict(c) for c in self.state.collisions]
        plan_then = Plan.from_dict(self.state.predicted_plan) if self.state.predicted_plan else self.plan
        actual = {t: s.files for t, s in self.state.tasks.items() if s.status == COMPLETE}
        precision, recall, details = score_predictions(predicted, actual, plan_then)
        frame = pd.DataFrame(details, columns=["task_a", "task_b", "file", "predicted", "actual"])
        frame.attrs.update(precision=precision, recall=recall)
        return frame

    async def _integrate(self, premerged: dict[tuple[str, str], str] | None = None) -> None:
        done = [t for t in self.state.plan.tasks if self.state.tasks[t.id].status == COMPLETE]
        self.emit("integration_started", tasks=[t.id for t in done])
        intents = {t.id: {"title": t.title, "description": t.description,
                          "decisions": [d["chosen"] for d in self.state.decisions if d["task_id"] == t.id]}
                   for t in done}
        starts = {t.id: self.state.tasks[t.id].start_commit for t in done     # a branch that merged no input
                  if self.state.tasks[t.id].start_commit and not self.partial_inputs(t.id)}   # late forks there
        integrator = Integrator(self.root, self.id, self.state.base, self.worktree("_integration"), intents,
                                merge_reviews(self.plan), starts)
        integrator.premerged = premerged or {}
        resolution = MergeResolution(self)
        result = await integrator.integrate([(t.id, self.branch(t.id), self.state.tasks[t.id].files)
                                             for t in done], resolve=resolution.resolve)
        self.emit("integration_finished", branch=result.branch, merged=result.merged,
                   head=result.head, conflicts=[c.to_dict() for c in result.conflicts],
                   report=[c.describe() for c in result.conflicts])
        check_failed = None
        if self.check and result.merged:
            await integrator.check_out(result.head)          # the check runs in a checkout
            check_failed = await resolution.verify(result)
        if not self.keep_worktrees:     # their work is committed on the branches, which stay
            await git.remove_worktrees(self.root, [self.worktree(t.id) for t in done]
                                       + [self.worktree("_integration")])
        await git.git(self.root, "maintenance", "run", "--auto", check=False)   # what each commit skipped
        report = await asyncio.to_thread(self.collision_report)     # pairs of tasks: off the loop
        self.emit("collision_report", precision=report.attrs["precision"], recall=report.attrs["recall"],
                   rows=report.to_dict("records"))
        await self._learn(check_failed)
        failed = [t for t, s in self.state.tasks.items() if s.status != COMPLETE]
        status = "failed" if failed or check_failed else "conflicts" if result.conflicts else "complete"
        error = f"tasks not completed: {', '.join(failed)}" if failed else check_failed
        self.emit("run_finished", status=status, error=error)

    def _main_done(self, task: asyncio.Task) -> None:
        if task.cancelled():
            # Cancelled before _orchestrate could record it (e.g. the loop is closing).
            if not self.state.finished:
                self.emit("run_finished", status="cancelled")
            self._done.set_result(self)
            return
        exc = task.exception()
        if exc is not None:
            self.emit("run_finished", status="failed", error=f"{type(exc).__name__}: {exc}")
        if not self._done.done():
            self._done.set_result(self)

    def branch(self, task_id: str) -> str:
        return f"osqr/{self.id}/{task_id}"

    def worktree(self, task_id: str) -> Path:
        return self.root / ".osqr" / "worktrees" / self.id / task_id

    async def _run_task(self, task_id: str) -> None:
        if self.state.tasks[task_id].status == COMPLETE:
            return                                   # finished before a restart
        while True:
            workspace = self.workspaces.make(task_id, self.branch(task_id), self._emitter(task_id))
            self._workspaces[task_id] = workspace
            try:
                result = await self._attempt(task_id, workspace)
                await self._gate.wait()
                payload = await self._commit_result(task_id, workspace, result)
                await self.checks.after(task_id, workspace)
                messages = self.mediator.route(task_id, payload)
                break
            except asyncio.CancelledError:
                self.emit("task_cancelled", task_id)
                self._close_checkpoints("the task was cancelled", task_id)
                raise
            except Exception as exc:
                target = self._escalation(task_id, exc)
                if target is None:
                    self.emit("task_failed", task_id, error=f"{type(exc).__name__}: {exc}")
                    self._close_checkpoints("the task failed", task_id)
                    raise
                await self._escalate(task_id, workspace, target, exc)
            finally:
                self._workspaces.pop(task_id, None)
        # One transaction: a crash can never leave a finished task whose dependents lack its output.
        self.emit_all([("task_finished", task_id, dict(payload, turns=result.turns))]
                       + [("message", task_id, m.to_dict()) for m in messages])
        if not self.keep_worktrees and "not_committed" not in payload:
            await workspace.close()       # the branch holds the work

    async def _attempt(self, task_id: str, workspace: TaskWorkspace) -> AgentResult:
        """One agent's go at the task in its workspace, on the model routed for it now."""
        task_state = self.state.tasks[task_id]
        resumed = task_state.attempt > 0 and not task_state.fresh_start
        notes = await self._open_workspace(task_id, workspace)
        info, client = self._model_for(task_id)
        await self.checks.before(task_id, workspace, fresh=not resumed)     # on the route just chosen
        self.emit("task_started", task_id, attempt=task_state.attempt + 1, model=info.display,
                   branch=self.branch(task_id), worker=workspace.where)
        agent = Agent(self.plan[task_id], workspace, client,
                      inbox=self.mediator.inbox(task_id), titles=self.titles,
                      supervisor=TaskSupervisor(self, task_id, task_state.attempt, info),
                      emit=self._emitter(task_id),
                      gate=self._gate, resumed=resumed, notes=notes)
        return await agent.run()

    def _escalation(self, task_id: str, error: Exception) -> str | None:
        """Where a failed attempt goes on: the cascade's last model, when the agent itself failed
        (no finish, no tools: the signals a run sees), not when the person, the policy or a budget
        stopped it, nor when git or a workspace failed (another model would not help); once."""
        task = self.state.tasks[task_id]
        if not isinstance(error, AgentError) or isinstance(error, AgentStopped):
            return None
        if task.escalated_from or not task.escalate_to or task.escalate_to == task.route:
            return None
        return task.escalate_to

    async def _escalate(self, task_id: str, workspace: TaskWorkspace, target: str, error: Exception) -> None:
        """Log the escalation, then drop the failed attempt's workspace: the next attempt starts
        from the same commit, and nothing of this one (files, commits) reaches the result."""
        task = self.state.tasks[task_id]
        self._close_checkpoints("the task went on to another model", task_id)
        self.emit("task_escalated", task_id, from_model=task.route, to_model=target,
                   reason=f"{type(error).__name__}: {error}", attempt=task.attempt,
                   cost_usd=task.cost_usd, cost_unknown=task.cost_unknown)
        try:
            await workspace.close()
        except (git.GitError, OSError):
            pass                        # the next attempt's fresh workspace clears the folder anyway

    async def _commit_result(self, task_id: str, workspace: TaskWorkspace, result: Any) -> dict[str, Any]:
        """Commit the agent's work on its branch; the output its dependents receive."""
        saved = await workspace.save(f"osqr: {self.plan[task_id].title}\n\n{result.summary}",
                                     author=f"osqr-nb agent ({task_id})")
        changes = await self._own_changes(task_id, saved.commit)
        payload = {"summary": result.summary, "decisions": result.decisions, "context": result.context,
                   "commit": saved.commit,
                   "files_created": sorted(f for f, s in changes.items() if s == "A"),
                   "files_modified": sorted(f for f, s in changes.items() if s == "M"),
                   "files_deleted": sorted(f for f, s in changes.items() if s == "D")}
        if saved.left_out:
            payload["not_committed"] = [f"{n}/ is a git repository of its own (made in the task); "
                                        "its files are left in the worktree, not on the branch"
                                        for n in saved.left_out]
        return payload

    async def _own_changes(self, task_id: str, tip: str) -> dict[str, str]:
        """What the task changed since it started, less what partial inputs merged in late brought."""
        start = self.state.tasks[task_id].start_commit
        changes = await git.changed_files(self.root, start, tip)
        for input_id in self.partial_inputs(task_id):
            if self.state.tasks[input_id].status == COMPLETE and \
                    await git.is_merged(self.root, self.branch(input_id), tip):
                beyond = await git.changed_files(self.root, self.branch(input_id), tip, two_dot=True)
                changes = {f: s for f, s in changes.items() if f in beyond}
        return changes

    def partial_inputs(self, task_id: str) -> list[str]:
        """The tasks this one started before, on what they shared (`after x~`)."""
        graph = self.plan.graph
        return [p for p in graph.predecessors(task_id) if graph.edges[p, task_id].get("partial")]

    async def settled(self, task_id: str) -> None:
        """Wait until the task has finished, failed, been skipped or cancelled."""
        if self.state.tasks[task_id].status in SETTLED:
            return
        await self._settled.setdefault(task_id, asyncio.Event()).wait()

    async def bring_in_inputs(self, task_id: str, inputs: list[str]) -> list[str]:
        """Merge finished partial inputs into a running task's workspace (see engine/inputs.py)."""
        return await TaskInputs(self, task_id).bring_in(self._workspaces[task_id], inputs)

    def _model_for(self, task_id: str) -> tuple[ModelInfo, ModelClient]:
        """The task's model: the one given to the run, the model an escalated task went on to
        (after a restart too), or the route for its kind (an event)."""
        if self.model is not None:
            info = describe_client(self.model)
            self.emit("task_routed", task_id, model=info.name, model_id=info.model_id,
                       provider=info.provider, reason="given")
            return info, self.model
        task = self.state.tasks[task_id]
        if task.escalated_from and task.route and self.router.available(self.router.info(task.route)):
            info = self.router.info(task.route)
            self.emit("task_routed", task_id, model=info.name, model_id=info.model_id, provider=info.provider,
                       reason="escalated", escalated_from=task.escalated_from)
            return info, self.router.client(info, on_delta=self._streamed_to(task_id))
        route = self.router.route(self.plan[task_id].kind.value)
        self.emit("task_routed", task_id, **route.to_dict())
        return route.model, self.router.client(route.model, on_delta=self._streamed_to(task_id))

    def _streamed_to(self, task_id: str) -> Callable[[str, str], None]:
        """Count characters as they stream in (Python state only: the view shows them at its pace)."""
        def count(kind: str, piece: str) -> None:
            self.streamed[task_id] = self.streamed.get(task_id, 0) + len(piece or "")
        return count

    async def _open_workspace(self, task_id: str, workspace: TaskWorkspace) -> list[str]:
        """The task's workspace on its branch: the run's base plus its inputs' results, merged in
        memory first (partial inputs still running come in at the end). A resumed task keeps
        what its workspace holds (repaired); one that never started is simply made again; an
        escalated one starts again, fresh, from the commit its first attempt started from."""
        task = self.state.tasks[task_id]
        if task.start_commit is not None and not task.fresh_start:
            return await workspace.open(task.start_commit, fresh=False)
        if task.start_commit is not None:
            start, notes = task.start_commit, list(task.start_notes)
        else:
            inputs = [p for p in self.state.plan.graph.predecessors(task_id)
                      if self.state.tasks[p].status == COMPLETE]
            start, notes = await TaskInputs(self, task_id).start_from(inputs)
        await workspace.open(start, fresh=True)
        self.emit("workspace_ready", task_id, head=start, worker=workspace.where, notes=notes,  # a worker's
                   worktree=str(self.worktree(task_id)) if workspace.where == "local" else None)  # folder is its own
        return notes

    def _emitter(self, task_id: str):
        """Events from an agent; tool arguments and results go to the blob store by hash."""
        def emit(event_type: str, **data: Any) -> None:
            for field in ("args", "result"):
                if field in data:
                    data[field] = self.log.put_blob(to_json(data[field]))
            self.emit(event_type, task_id, **data)
        return emit

    def transcript(self, task_id: str, attempt: int | None = None) -> pd.DataFrame:
        """The task's conversation with its model (the latest attempt by default), from the log."""
        self.plan[task_id]
        replies = [e for e in self.log.read(self.id) if e.type == "model_reply" and e.task_id == task_id]
        if not replies:
            return pd.DataFrame(columns=["role", "content", "tool_calls", "tool_call_id"])
        attempt = attempt or max(e.data.get("attempt", 1) for e in replies)
        replies = [e for e in replies if e.data.get("attempt", 1) == attempt]
        hashes = [h for e in replies for h in e.data.get("sent", [])] + [replies[-1].data["reply"]]
        rows = [json.loads(self.log.get_blob(h)) for h in hashes]
        return pd.DataFrame(rows).reindex(columns=["role", "content", "tool_calls", "tool_call_id"])

    # ----- checkpoints ----------------------------------------------------------------------

    async def ask(self, task_id: str, *, kind: str, question: str, options: list[str],
                   attempt: int, **fields: Any) -> str:
        """Open a checkpoint (or find the one re-shown after a restart) and wait for its answer."""
        checkpoint = next((c for c in self._checkpoints.values()
                           if c.task_id == task_id and c.question == question and c.pending), None)
        if checkpoint is None:
            affects = [self.plan[t].title for t in nx.descendants(self.plan.graph, task_id)]
            data = dict(id=f"{self.id}-cp{next(self._checkpoint_ids)}", kind=kind, question=question,
                        options=options, attempt=attempt, affects=affects, created_at=time.time(),
                        task_kind=self.plan[task_id].kind.value, **fields)
            self.emit("checkpoint_opened", task_id, **data)
            checkpoint = self._make_checkpoint(data, task_id)
            self._checkpoints[checkpoint.id] = checkpoint
        self._checkpoint_opened.set()
        timeout = (self.checkpoint_timeout or None) if kind == DECISION else None   # None: no deadline
        try:
            async with asyncio.timeout(timeout):
                return await checkpoint
        except TimeoutError:
            checkpoint.timed_out = True
            checkpoint.resolve(checkpoint.proposed or checkpoint.choices[0], by="auto")
            return checkpoint.answer

    def _make_checkpoint(self, data: dict[str, Any], task_id: str) -> Checkpoint:
        return Checkpoint(data["id"], self.id, task_id, data["question"], data["options"],
                          kind=data.get("kind", DECISION), proposed=data.get("proposed"),
                          confidence=data.get("confidence"), category=data.get("category", "general"),
                          task_title=self.plan[task_id].title, reason=data.get("reason", ""),
                          details=data.get("details"), affects=data.get("affects"),
                          free_text=data.get("free_text", True), created_at=data.get("created_at"),
                          record=self._record_answer, validate=_merge_check(data))

    def _record_answer(self, checkpoint: Checkpoint, label: str, by: str) -> None:
        if label == LET_ME_THINK:
            self.emit("checkpoint_parked", checkpoint.task_id, checkpoint_id=checkpoint.id, by=by)
            return
        opened = self.state.open_checkpoints.get(checkpoint.id, {})
        self.emit("decision", checkpoint.task_id, checkpoint_id=checkpoint.id, checkpoint_kind=checkpoint.kind,
                   question=checkpoint.question, options=checkpoint.choices, proposed=checkpoint.proposed,
                   chosen=label, custom=label not in checkpoint.choices, confidence=checkpoint.confidence,
                   category=checkpoint.category, task_kind=self.plan[checkpoint.task_id].kind.value,
                   decided_by=by, reason=checkpoint.reason, created_at=checkpoint.created_at,
                   resolved_at=checkpoint.resolved_at, latency=checkpoint.resolved_at - checkpoint.created_at,
                   attempt=opened.get("attempt", 0), timed_out=checkpoint.timed_out)

    def _close_checkpoints(self, why: str, task_id: str | None = None) -> None:
        for checkpoint in self._checkpoints.values():
            if task_id is None or checkpoint.task_id == task_id:
                checkpoint.close(why)


def _outcome_rows(kind: str, task: TaskState, success: bool) -> list[dict[str, Any]]:
    """What a task teaches the route learner: its attempt, or an escalated task's two (the first
    model's failure, then the last model's attempt, marked with the model it took over from).
    A cascade's first try names the model it would have gone on to: a failure the run did not
    see (an override, a failed check) shows how often a cascade misses one."""
    cost = None if task.cost_unknown else task.cost_usd
    seconds = (task.finished_at - task.started_at) if task.finished_at and task.started_at else None
    if not task.escalated_from:
        return [{"task_kind": kind, "model": task.route, "success": success, "cost_usd": cost, "seconds": seconds,
                 "escalate_to": task.escalate_to}]
    first = None if task.cost_unknown or task.escalation_cost_usd is None else task.escalation_cost_usd
    return [{"task_kind": kind, "model": task.escalated_from, "success": False, "cost_usd": first,
             "seconds": task.escalation_seconds, "escalate_to": task.route},
            {"task_kind": kind, "model": task.route, "success": success, "seconds": seconds,
             "cost_usd": None if cost is None or first is None else cost - first,
             "escalated_from": task.escalated_from}]


def _merge_check(data: dict[str, Any]):
    """A hand-made merge must pass the same checks as the others before it is taken."""
    if data.get("kind") != CONFLICT or "file" not in (data.get("details") or {}):
        return None
    d = data["details"]
    return lambda text: problems_with(text, d["file"], d.get("base", ""), d.get("ours", ""), d.get("theirs", ""))
