"""A plan shown before anything runs (`%%osqr --dry-run`): the graph, the critical path,
the predicted collisions, and the plan as editable text for `%osqr go`."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Callable

import ipywidgets as widgets

from ..plan.collisions import Collision, predict_collisions
from ..plan.explicit import parse_plan, to_markdown
from ..plan.task import Plan, PlanError
from . import theme
from .dag import render_dag


MAX_COLLISIONS_SHOWN = 12   # each previews its choices on copies of the plan: 50 tasks sharing a file
                            # make 1,225 pairs, 17 s of previews for a page nobody reads


def _collision_item(plan: Plan, collision: Collision) -> str:
    choices = "".join(f"<li>{escape(o.label)}: {escape(o.effect.summary)}</li>" for o in collision.options(plan))
    return f"<li>{escape(collision.message)}<ul>{choices}</ul></li>"


def describe_plan(plan: Plan, repo: str | Path | None) -> str:
    path = " → ".join(plan[t].title for t in plan.critical_path())
    lines = [f"<b>Plan</b> ({escape(plan.planner or 'explicit')}), nothing started. "
             f"Critical path: {escape(path)} ({plan.critical_path_length():g}).",
             render_dag(plan)]
    collisions = predict_collisions(plan, repo)
    if collisions:
        items = [_collision_item(plan, c) for c in collisions[:MAX_COLLISIONS_SHOWN]]
        if len(collisions) > MAX_COLLISIONS_SHOWN:
            items.append(f"<li>… and {len(collisions) - MAX_COLLISIONS_SHOWN} more pairs of tasks</li>")
        lines.append("<b>Predicted collisions</b> (you choose when the run starts):"
                     f"<ul class='osqr-collisions'>{''.join(items)}</ul>")
    else:
        lines.append("No predicted collisions between tasks that may run at the same time.")
    return "".join(f"<div>{line}</div>" for line in lines)


class PlanDraft(widgets.VBox):
    """Edit the text, [Check plan] redraws it; `%osqr go` (or [Run this plan]) starts it."""

    def __init__(self, plan: Plan, repo: str | Path | None, start: Callable[[Plan], object]) -> None:
        self.repo = repo
        self.plan = plan
        self._start = start
        self.summary = widgets.HTML(describe_plan(plan, repo))
        self.text = widgets.Textarea(to_markdown(plan), layout=widgets.Layout(width="100%", height="12em"))
        self.check = widgets.Button(description="Check plan")
        self.go = widgets.Button(description="Run this plan")
        self.go.add_class("osqr-option")
        self.message = widgets.HTML()
        self.output = widgets.Output()
        self.check.on_click(lambda _: self.current_plan(quiet=True))
        self.go.on_click(self._go)
        super().__init__([self.summary, self.text, widgets.HBox([self.check, self.go]), self.message,
                          self.output])
        self.add_class("osqr-draft")

    def current_plan(self, quiet: bool = False) -> Plan | None:
        """The plan as the text now says; a mistake is shown with its line (or raised)."""
        try:
            plan = parse_plan(self.text.value)
        except PlanError as exc:
            self.message.value = theme.span(str(exc), "osqr-error")
            if quiet:
                return None
            raise
        plan.planner = self.plan.planner
        self.plan = plan
        self.summary.value = describe_plan(plan, self.repo)
        self.message.value = "✓ the plan is valid"
        return plan

    def _go(self, _button: widgets.Button) -> None:
        plan = self.current_plan(quiet=True)
        if plan is None:
            return
        try:
            run = self._start(plan)
        except (ValueError, TypeError, OSError) as exc:   # a click's error is shown nowhere else
            self.message.value = theme.span(str(exc), "osqr-error")
            return
        self.go.disabled = True
        from . import view
        self.output.append_display_data(view(run))
