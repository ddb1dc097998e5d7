"""The run's live view, as the seed draws it: the task graph, one row per task (status
symbol, title, model, progress bar with its percentage, cost), the legend, the counts
Active / Waiting / Complete / Needs input, [+ Add Task] [Pause All] [View Outputs],
and the checkpoint cards.

Agents only change Python state; this view redraws from the run's snapshot
(ui/snapshot.py, the same one the JupyterLab sidebar gets) at most
`REFRESH_HZ` times a second, and only when something changed, so that 200
busy agents cost the kernel a handful of widget messages a second.
"""

from __future__ import annotations

import asyncio
from html import escape
from typing import TYPE_CHECKING

import ipywidgets as widgets

from . import theme
from .checkpoint import card_for
from .dag import render_dag
from .snapshot import LEGEND, describe_run

if TYPE_CHECKING:
    from ..engine.run import Run

REFRESH_HZ = 5
MAX_ROWS = 40        # more tasks than this: the first rows, then a one-line summary of the rest


class RunView(widgets.VBox):
    def __init__(self, run: "Run") -> None:
        self.run = run
        self.header = widgets.HTML()
        self.dag = widgets.HTML()
        self.rows = widgets.HTML()
        self.legend = widgets.HTML()
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
        super().__init__([self.header, self.dag, self.rows, self.legend,
                          widgets.HBox([self.counts, self.add_button, self.pause_button, self.outputs_button]),
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
        # done resolves after the last event; the stylesheet may arrive after the first draw
        seen = (run.version, sum(run.streamed.values()), run.done, theme.styled())
        if seen == self._seen:
            return
        self._seen = seen
        state = run.state
        snap = describe_run(run)
        self.header.value = render_header(run)
        self.dag.value = render_dag(run.plan, state.tasks, run.streamed, snap["paused"]) \
            if run.plan is not None else \
            f"<i>Planning: {escape(run.planner.name if run.planner else 'the planner')} is writing the plan…</i>"
        self.rows.value = render_rows(snap["tasks"])
        self.legend.value = f"<div {theme.attrs('osqr-legend')}>{escape(LEGEND)}</div>" if snap["tasks"] else ""
        cost = f" · {snap['cost_text']}" + (f" of ${state.budget:.2f}" if state.budget else "")
        self.counts.value = f"<span class='osqr-counts'>{escape(snap['count_text'])}{escape(cost)}</span>"
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
        finished = asyncio.ensure_future(_finished(self.run))
        try:
            while not self.run.done:
                self.refresh()
                if finished.done():           # a run never started: nothing to wake on
                    await asyncio.sleep(1 / REFRESH_HZ)
                else:
                    await asyncio.wait([finished], timeout=1 / REFRESH_HZ)   # the end is drawn at once
        finally:
            finished.cancel()
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


def render_header(run: "Run") -> str:
    """Run id, status, model; at the end, where the merge went or what conflicted."""
    state, note = run.state, ""
    if state.integration and run.done:
        integ = state.integration
        if integ["conflicts"]:
            note = "<br>" + "<br>".join(theme.span(r, "osqr-error") for r in integ["report"])
        else:
            note = f"<br>Merged {len(integ['merged'])} task(s) into <code>{escape(integ['branch'])}</code>"
    if state.error:
        note += "<br>" + theme.span(state.error, "osqr-error")
    return (f"<b>osqr run {escape(run.id)}</b> · {escape(run.status)} · "
            f"model: {escape(run.model_name)}{note}")


def render_rows(tasks: list[dict]) -> str:
    """One row per task from the snapshot: ● title, model, progress bar, percentage, cost.
    The full title is on hover; the bar's tooltip says what the percentage measures."""
    rows = [_row(t) for t in tasks[:MAX_ROWS]]
    rest = tasks[MAX_ROWS:]
    if rest:
        symbols = "".join(t["symbol"] for t in rest)
        rows.append(f"<li class='osqr-task-more'>… and {len(rest)} more: {escape(symbols)}</li>")
    return f"<ul class='osqr-task-rows' style='list-style:none;padding:0;margin:4px 0'>{''.join(rows)}</ul>"


def _row(task: dict) -> str:
    shown, width = task["shown"], int(task["progress"] * 100)
    fill = "" if theme.styled() else f"background:{theme.FILL.get(shown, 'var(--jp-border-color0,#bdbdbd)')}"
    title = escape(task["title"], quote=True)
    return (f"<li {theme.attrs('osqr-task-row')} data-task='{escape(task['id'], quote=True)}' data-status='{shown}'>"
            f"<span {theme.attrs(f'osqr-status-{shown}')}>{task['symbol']}</span>"
            f"<span {theme.attrs('osqr-task-title')} title='{title}'>{escape(task['title'])}</span>"
            f"<span {theme.attrs('osqr-task-model')} title='{escape(task['worker'] or '', quote=True)}'>"
            f"{escape(task['model_text'])}</span>"
            f"<span {theme.attrs('osqr-progress')} title='{escape(task['progress_note'], quote=True)}'>"
            f"<span class='osqr-progress-fill osqr-status-{shown}' "
            f"style='display:block;height:100%;width:{width}%;{fill}'></span></span>"
            f"<span {theme.attrs('osqr-task-percent')}>{task['progress_text']}</span>"
            f"<span {theme.attrs('osqr-task-cost')}>{escape(task['cost_text'])}</span></li>")


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
        self.add = widgets.Button(description="Add")
        self.add.add_class("osqr-option")
        self.add.on_click(self._added)
        self.status = widgets.HTML()
        super().__init__([widgets.HBox([self.title, self.kind]), self.after, self.description,
                          widgets.HBox([self.add, self.status])],
                         layout=widgets.Layout(display="none", padding="4px",
                                               border=None if theme.styled() else theme.PLAIN_BORDER))
        self.add_class("osqr-add-task")

    def refresh_choices(self) -> None:
        if self.run.plan is not None:
            self.after.options = [(t.title, t.id) for t in self.run.plan.tasks]

    def _added(self, _button: widgets.Button) -> None:
        from ..plan.task import PlanError, Task, slug
        title = self.title.value.strip()
        if not title:
            self.status.value = theme.span("give the task a title", "osqr-error")
            return
        task_id, n = slug(title), 1
        while task_id in self.run.plan.graph:
            n += 1
            task_id = f"{slug(title)}-{n}"
        try:
            self.run.add_task(Task(task_id, title, self.kind.value, self.description.value.strip() or title,
                                   depends_on=list(self.after.value)))
        except (PlanError, ValueError) as exc:
            self.status.value = theme.span(str(exc), "osqr-error")
            return
        self.status.value = f"✓ added <code>{escape(task_id)}</code>"
        self.title.value = self.description.value = ""
        self.refresh_choices()


async def _finished(run: "Run") -> None:
    """Returns when the run ends, however it ends."""
    try:
        await run
    except Exception:
        pass
