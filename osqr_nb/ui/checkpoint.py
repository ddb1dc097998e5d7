"""The checkpoint card: the question, why it was asked, the options, who answered.

One card (one set of widget models) per checkpoint: wherever it is shown (under
the run's cell, by `%osqr checkpoints`), every copy is a view of the same
models, so answering one answers all. Only standard ipywidgets are used, so
the card works in JupyterLab, Notebook 7 and VS Code alike.
"""

from __future__ import annotations

import time
from html import escape

import ipywidgets as widgets

from ..autonomy.checkpoints import COLLISION, CONFLICT, DECISION, LET_ME_THINK, WRITE, Checkpoint

_cards: dict[str, "CheckpointCard"] = {}


def card_for(checkpoint: Checkpoint) -> "CheckpointCard":
    """The one card of this checkpoint."""
    card = _cards.get(checkpoint.id)
    if card is None or card.checkpoint is not checkpoint:
        card = _cards[checkpoint.id] = CheckpointCard(checkpoint)
    return card


def _list(items: list[str], mark: str) -> str:
    return "".join(f"<div style='margin-left:1em'>{mark} {escape(item)}</div>" for item in items)


def describe(checkpoint: Checkpoint) -> str:
    """The card's text: question, proposal, pros and cons, diff or errors, affected tasks."""
    title = {COLLISION: "PREDICTED COLLISION", CONFLICT: "MERGE CONFLICT"}.get(
        checkpoint.kind, f"AGENT CHECKPOINT: {escape(checkpoint.task_title)}")
    parts = [f"<b>{title}</b>", escape(checkpoint.question)]
    if checkpoint.kind == DECISION and checkpoint.proposed:
        confidence = f" (confidence {checkpoint.confidence:.2f})" if checkpoint.confidence is not None else ""
        parts.append(f"<small>Agent proposes <b>{escape(checkpoint.proposed)}</b>{confidence}</small>")
    for label, notes in checkpoint.details.get("options", {}).items():
        parts.append(f"<b>{escape(label)}</b>{_list(notes.get('pros', []), '+')}"
                     f"{_list(notes.get('cons', []), '−')}")
    if checkpoint.kind in (WRITE, CONFLICT) and checkpoint.details.get("diff"):
        parts.append("<pre style='max-height:20em;overflow:auto;font-size:11px;background:#f6f8fa;"
                     f"padding:4px'>{escape(checkpoint.details['diff'])}</pre>")
    if checkpoint.details.get("errors"):
        parts.append(_list(checkpoint.details["errors"], "✗"))
    if checkpoint.affects:
        parts.append(f"<small>Affects: {escape(', '.join(checkpoint.affects))}</small>")
    if checkpoint.reason:
        parts.append(f"<small style='color:#616161'>Asked because {escape(checkpoint.reason)}</small>")
    return "".join(f"<div style='margin:2px 0'>{part}</div>" for part in parts)


class CheckpointCard(widgets.VBox):
    """Clicking a button resolves the checkpoint (decided_by="human")."""

    def __init__(self, checkpoint: Checkpoint) -> None:
        self.checkpoint = checkpoint
        self.buttons = [widgets.Button(description=label, tooltip=label,
                                       button_style="" if label == LET_ME_THINK else "primary",
                                       layout=widgets.Layout(width="auto"))
                        for label in checkpoint.options]
        for button in self.buttons:
            button.on_click(self._clicked)
        manual = checkpoint.kind == CONFLICT
        if manual:      # Manual merge: the file with its conflict markers, to edit and save
            self.text = widgets.Textarea(checkpoint.details.get("marked", ""),
                                         layout=widgets.Layout(width="100%", height="16em"))
            self.send = widgets.Button(description="Save merge", layout=widgets.Layout(width="auto"))
        else:
            self.text = widgets.Text(placeholder="…or answer in your own words",
                                     layout=widgets.Layout(width="28em"))
            self.send = widgets.Button(description="Answer", layout=widgets.Layout(width="auto"))
        self.send.on_click(self._typed)
        self.status = widgets.HTML()
        rows = [widgets.HTML(describe(checkpoint)), widgets.HBox(self.buttons)]
        if checkpoint.free_text and manual:
            rows += [widgets.HTML("<small>Manual merge: edit the file below, then save.</small>"),
                     self.text, self.send]
        elif checkpoint.free_text:
            rows.append(widgets.HBox([self.text, self.send]))
        super().__init__(rows + [self.status],
                         layout=widgets.Layout(border="1px solid #fb8c00", padding="6px", margin="4px 0"))
        self.add_class("osqr-checkpoint")
        checkpoint.on_change(self._changed)
        self._changed(checkpoint)

    def _clicked(self, button: widgets.Button) -> None:
        self._answer(lambda: self.checkpoint.resolve(button.description, by="human"))

    def _typed(self, _button: widgets.Button) -> None:
        self._answer(lambda: self.checkpoint.answer_text(self.text.value, by="human"))

    def _answer(self, act) -> None:
        try:
            act()
        except ValueError as exc:
            self.status.value = f"<span style='color:#e53935'>{escape(str(exc))}</span>"

    def _changed(self, checkpoint: Checkpoint) -> None:
        done = not checkpoint.pending
        if checkpoint.answer is not None:
            when = time.strftime("%H:%M:%S", time.localtime(checkpoint.resolved_at))
            late = " (no answer in time: the agent's proposal)" if getattr(checkpoint, "timed_out", False) else ""
            self.status.value = (f"✓ <b>{escape(checkpoint.answer)}</b>, decided by "
                                 f"{checkpoint.decided_by} at {when}{late}")
        elif checkpoint.closed:
            self.status.value = f"✗ Closed: {escape(checkpoint.closed)}"
        elif checkpoint.parked:
            self.status.value = "⚠ Parked: this agent waits; the others go on. Answer when ready."
        for control in (*self.buttons, self.text, self.send):
            control.disabled = done
