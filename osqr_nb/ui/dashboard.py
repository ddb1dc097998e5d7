"""The run's live view: DAG, counts, [Pause All], checkpoint cards.

Agents only change Python state; this view redraws from it at most
`REFRESH_HZ` times a second, and only when something changed, so that 200
busy agents cost the kernel a handful of widget messages a second.
"""

from __future__ import annotations

import asyncio
from html import escape
from typing import TYPE_CHECKING

import ipywidgets as widgets

from .checkpoint import card_for
from .dag import render_dag

if TYPE_CHECKING:
    from ..engine.run import Run

REFRESH_HZ = 5


class RunView(widgets.VBox):
    def __init__(self, run: "Run") -> None:
        self.run = run
        self.header = widgets.HTML()
        self.dag = widgets.HTML()
        self.counts = widgets.HTML()
        self.pause_button = widgets.Button(description="Pause All", icon="pause")
        self.pause_button.on_click(self._toggle_pause)
        self.outputs_button = widgets.Button(description="View Outputs", icon="list")
        self.outputs_button.on_click(self._toggle_outputs)
        self.outputs = widgets.HTML()
        self.add_button = widgets.Button(description="Add Task", icon="plus")
        self.adder = TaskAdder(run)
        self.add_button.on_click(self._toggle_adder)
        self.cards = widgets.VBox()
        self.decisions = widgets.HTML()
        self.problems = widgets.Output()
        self._shown: set[str] = set()
        self._seen = -1
        super().__init__([self.header, self.dag,
                          widgets.HBox([self.counts, self.pause_button, self.add_button, self.outputs_button]),
                          self.adder, self.outputs, self.cards, self.decisions, self.problems])
        self.add_class("osqr-run")
        self.refresh()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None        # no event loop (e.g. a plain script): a snapshot, call refresh() to update
        if loop is not None and not run.done:
            self._refresher = loop.create_task(self._refresh_loop())
            self._refresher.add_done_callback(self._show_crash)

    def refresh(self) -> None:
        run = self.run
        seen = (run.version, sum(run.streamed.values()), run.done)   # done resolves after the last event
        if seen == self._seen:
            return
        self._seen = seen
        state = run.state
        note = ""
        if state.integration and run.done:
            integ = state.integration
            if integ["conflicts"]:
                note = "<br>" + "<br>".join(f"<span style='color:#e53935'>{escape(r)}</span>"
                                            for r in integ["report"])
            else:
                note = f"<br>Merged {len(integ['merged'])} task(s) into <code>{escape(integ['branch'])}</code>"
        if state.error:
            note += f"<br><span style='color:#e53935'>{escape(state.error)}</span>"
        self.header.value = (f"<b>osqr run {escape(run.id)}</b> · {escape(run.status)} · "
                             f"model: {escape(run.model_name)}{note}")
        self.dag.value = render_dag(run.plan, state.tasks, run.streamed) if run.plan is not None else \
            f"<i>Planning: {escape(run.planner.name if run.planner else 'the planner')} is writing the plan…</i>"
        c = state.counts()
        extra = "".join(f" · {label} {c[key]}" for key, label in
                        (("needs_input", "Needs input"), ("failed", "Failed"), ("skipped", "Skipped"))
                        if c[key])
        cost = f" · ${state.total_cost:.4f}" + ("+?" if state.cost_unknown else "")
        if state.budget:
            cost += f" of ${state.budget:.2f}"
        self.counts.value = (f"Active {c['running']} · Waiting {c['waiting']} · "
                             f"Complete {c['complete']}{extra}{cost}")
        self.pause_button.description = "Resume All" if state.paused else "Pause All"
        self.pause_button.icon = "play" if state.paused else "pause"
        self.pause_button.disabled = run.done
        self.add_button.disabled = run.done or state.status != "running"
        new = [c for c in run.checkpoint_history if c.id not in self._shown]
        if new:
            self._shown.update(c.id for c in new)
            self.cards.children = (*self.cards.children, *(card_for(c) for c in new))
        self.decisions.value = render_decisions(run)
        if self.outputs.value:
            self.outputs.value = render_outputs(run)

    async def _refresh_loop(self) -> None:
        while not self.run.done:
            self.refresh()
            await asyncio.sleep(1 / REFRESH_HZ)
        self.refresh()

    def _toggle_pause(self, _button: widgets.Button) -> None:
        if self.run.state.paused:
            self.run.resume()
        else:
            self.run.pause()
        self.refresh()

    def _toggle_adder(self, _button: widgets.Button) -> None:
        self.adder.layout.display = None if self.adder.layout.display == "none" else "none"
        self.adder.refresh_choices()

    def _toggle_outputs(self, _button: widgets.Button) -> None:
        self.outputs.value = "" if self.outputs.value else render_outputs(self.run)
        self.outputs_button.description = "Hide Outputs" if self.outputs.value else "View Outputs"

    def _show_crash(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.problems.append_stderr(f"osqr view stopped: {task.exception()!r}\n")


def render_decisions(run: "Run") -> str:
    """Decisions the agents took without asking that the person should see: those
    logged for a look (tier 2-3), and every decision of a full-auto task (tier 4)."""
    rows = [d for d in run.state.decisions
            if d.get("decided_by") == "log"
            or (d.get("decided_by") == "auto" and run.policy.tier_for(d.get("task_kind")) == 4)]
    if not rows:
        return ""
    title = "Decisions taken alone, for review" if run.done else "Decisions taken alone so far"
    items = "".join(
        f"<li><b>{escape(run.plan[d['task_id']].title)}</b>: {escape(d.get('question') or '')} → "
        f"<b>{escape(str(d.get('chosen')))}</b> <small>(confidence {d.get('confidence', 0):.2f}, "
        f"{escape(d.get('decided_by'))})</small></li>" for d in rows)
    return f"<details class='osqr-decisions'><summary>{title} ({len(rows)})</summary><ul>{items}</ul></details>"


def render_outputs(run: "Run") -> str:
    """What each finished task produced: its summary, files and branch (its transcript is one
    call away: run.transcript(task_id))."""
    items = []
    for task in run.plan.tasks:
        state = run.state.tasks[task.id]
        if state.status != "complete":
            continue
        files = ", ".join(f"<code>{escape(f)}</code>" for f in state.files) or "no files"
        items.append(f"<li><b>{escape(task.title)}</b> <small>({escape(state.model or '')}, "
                     f"${state.cost_usd:.4f}, branch <code>osqr/{escape(run.id)}/{escape(task.id)}</code>)</small>"
                     f"<br>{escape(state.summary)}<br><small>{files}</small></li>")
    if not items:
        return "<div class='osqr-outputs'><i>No task has finished yet.</i></div>"
    return f"<div class='osqr-outputs'><ul>{''.join(items)}</ul></div>"


class TaskAdder(widgets.VBox):
    """A new task for the running run: title, kind, what it comes after, what to do."""

    def __init__(self, run: "Run") -> None:
        from ..plan.task import TaskKind
        self.run = run
        self.title = widgets.Text(placeholder="Title, e.g. Rate limiting")
        self.kind = widgets.Dropdown(options=[k.value for k in TaskKind], value="code")
        self.after = widgets.SelectMultiple(options=[], description="after", rows=3)
        self.description = widgets.Text(placeholder="What to do", layout=widgets.Layout(width="30em"))
        self.add = widgets.Button(description="Add", button_style="primary")
        self.add.on_click(self._added)
        self.status = widgets.HTML()
        super().__init__([widgets.HBox([self.title, self.kind]), self.after, self.description,
                          widgets.HBox([self.add, self.status])],
                         layout=widgets.Layout(display="none", border="1px solid #90a4ae", padding="4px"))
        self.add_class("osqr-add-task")

    def refresh_choices(self) -> None:
        if self.run.plan is not None:
            self.after.options = [(t.title, t.id) for t in self.run.plan.tasks]

    def _added(self, _button: widgets.Button) -> None:
        from ..plan.task import PlanError, Task, slug
        title = self.title.value.strip()
        if not title:
            self.status.value = "<span style='color:#e53935'>give the task a title</span>"
            return
        task_id, n = slug(title), 1
        while task_id in self.run.plan.graph:
            n += 1
            task_id = f"{slug(title)}-{n}"
        try:
            self.run.add_task(Task(task_id, title, self.kind.value, self.description.value.strip() or title,
                                   depends_on=list(self.after.value)))
        except (PlanError, ValueError) as exc:
            self.status.value = f"<span style='color:#e53935'>{escape(str(exc))}</span>"
            return
        self.status.value = f"✓ added <code>{escape(task_id)}</code>"
        self.title.value = self.description.value = ""
        self.refresh_choices()
