"""The task graph drawn as SVG: one box per task, left to right in dependency order."""

from __future__ import annotations

from html import escape

import networkx as nx

from ..engine.state import TaskState
from ..plan.task import Plan
from . import theme
from .snapshot import SHOWN_SYMBOLS, shown_status

BOX_W, BOX_H, GAP_X, GAP_Y = 210, 46, 56, 16
MAX_DRAWN = 80


def positions(graph: nx.DiGraph) -> dict[str, tuple[int, int]]:
    """(column, row) per task: columns are topological generations."""
    return {node: (col, row)
            for col, generation in enumerate(nx.topological_generations(graph))
            for row, node in enumerate(sorted(generation, key=list(graph).index))}


def render_dag(plan: Plan, tasks: dict[str, TaskState] | None = None,
               streamed: dict[str, int] | None = None, paused: bool = False) -> str:
    """SVG of the plan, each task with its status symbol, model, cost and (streaming) progress.
    Colours are classes (theme.py); a paused run's running tasks show ⏸."""
    graph = plan.graph
    tasks = tasks or {}
    if len(graph) > MAX_DRAWN:
        return _render_summary(plan, tasks, paused)
    where = positions(graph)
    cols = max(c for c, _ in where.values()) + 1
    rows = max(r for _, r in where.values()) + 1
    width, height = cols * (BOX_W + GAP_X) - GAP_X + 8, rows * (BOX_H + GAP_Y) - GAP_Y + 8

    def box(node: str) -> tuple[int, int]:
        col, row = where[node]
        return 4 + col * (BOX_W + GAP_X), 4 + row * (BOX_H + GAP_Y)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" class="osqr-dag">',
             '<defs><marker id="osqr-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
             f'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" {theme.attrs("osqr-arrow")}/>'
             '</marker></defs>']
    for u, v, partial in graph.edges(data="partial"):
        (x1, y1), (x2, y2) = box(u), box(v)
        dash = ' stroke-dasharray="5,4" class="osqr-partial"' if partial else ""
        parts.append(f'<line x1="{x1 + BOX_W}" y1="{y1 + BOX_H // 2}" x2="{x2 - 2}" y2="{y2 + BOX_H // 2}" '
                     f'{theme.attrs("osqr-edge")} stroke-width="1.5" marker-end="url(#osqr-arrow)"{dash}/>')
    for node in graph:
        task = graph.nodes[node]["task"]
        state = tasks.get(node)
        status = state.status if state else "waiting"
        shown = shown_status(status, paused)
        model = (state.model if state and state.model else "") or ""
        if state and (state.cost_usd or state.cost_unknown):
            model += f" · ${state.cost_usd:.3f}" + ("+?" if state.cost_unknown else "")
        if streamed and status == "running" and streamed.get(node):
            model += f" · {streamed[node] / 1000:.1f}k chars"
        x, y = box(node)
        parts.append(
            f'<g data-task="{escape(node)}" data-status="{status}" data-shown="{shown}">'
            f'<title>{escape(task.title)}</title>'
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6" '
            f'{theme.attrs("osqr-box", f"osqr-box-{shown}", extra="stroke:" + theme.BOX_STROKE[shown])} '
            'stroke-width="2"/>'
            f'<text x="{x + 8}" y="{y + 19}" font-size="13" {theme.attrs("osqr-dag-title")}>'
            f'<tspan {theme.attrs(f"osqr-status-{shown}")}>{SHOWN_SYMBOLS[shown]}</tspan> '
            f'{escape(_clip(task.title, 22))}</text>'
            f'<text x="{x + 8}" y="{y + 36}" font-size="10" {theme.attrs("osqr-dag-sub")}>'
            f'{escape(_clip(task.kind.value + (" · " + model if model else ""), 38))}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _render_summary(plan: Plan, tasks: dict[str, TaskState], paused: bool = False) -> str:
    """Too many tasks to draw: one symbol per task, grouped by generation."""
    lines = []
    for col, generation in enumerate(nx.topological_generations(plan.graph)):
        symbols = "".join(SHOWN_SYMBOLS[shown_status(tasks[n].status, paused)] if n in tasks
                          else SHOWN_SYMBOLS["waiting"] for n in generation)
        lines.append(f"<div><b>step {col + 1}</b> ({len(generation)} tasks) "
                     f"<span style='letter-spacing:1px'>{symbols}</span></div>")
    return f"<div class='osqr-dag'>{''.join(lines)}</div>"
