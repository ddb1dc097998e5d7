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

from ..autonomy.checkpoints import CONFLICT, DECISION, LET_ME_THINK, WRITE, Checkpoint
from . import theme
from .snapshot import checkpoint_title

_cards: dict[str, "CheckpointCard"] = {}


def card_for(checkpoint: Checkpoint) -> "CheckpointCard":
    """The one card of this checkpoint."""
    card = _cards.get(checkpoint.id)
    if card is None or card.checkpoint is not checkpoint:
        card = _cards[checkpoint.id] = CheckpointCard(checkpoint)
    return card


def _list(items: list[str], mark: str) -> str:
    return "".join(f"<div style='margin-left:1em'>{mark} {escape(item)}</div>" for item in items)


def _small(text: str, *classes: str) -> str:
    return f"<small {theme.attrs(*classes)}>{text}</small>" if classes else f"<small>{text}</small>"


def describe(checkpoint: Checkpoint) -> str:
    """The card's text: question, proposal, pros and cons, diff or errors, affected tasks."""
    parts = [f"<b>{escape(checkpoint_title(checkpoint))}</b>", escape(checkpoint.question)]
    if checkpoint.kind == DECISION and checkpoint.proposed:
        confidence = f" (confidence {checkpoint.confidence:.2f})" if checkpoint.confidence is not None else ""
        parts.append(f"<small>Agent proposes <b>{escape(checkpoint.proposed)}</b>{confidence}</small>")
    for label, notes in checkpoint.details.get("options", {}).items():
        parts.append(f"<b>{escape(label)}</b>{_list(notes.get('pros', []), '+')}"
                     f"{_list(notes.get('cons', []), '−')}")
    if checkpoint.kind in (WRITE, CONFLICT) and checkpoint.details.get("diff"):
        parts.append(f"<pre {theme.attrs('osqr-diff')}>{escape(checkpoint.details['diff'])}</pre>")
    if checkpoint.details.get("errors"):
        parts.append(_list(checkpoint.details["errors"], "✗"))
    if checkpoint.details.get("evidence"):             # why a collision was predicted: not an error
        parts.append(_list(checkpoint.details["evidence"], "·"))
    if checkpoint.affects:
        parts.append(f"<small>Affects: {escape(', '.join(checkpoint.affects))}</small>")
    if checkpoint.reason:
        parts.append(_small(f"Asked because {escape(checkpoint.reason)}", "osqr-muted"))
    return "".join(f"<div style='margin:2px 0'>{part}</div>" for part in parts)


def _option(label: str, proposed: str | None) -> widgets.Button:
    """A plain button (ipywidgets' "primary" is white on a blue that Dark renders at 3.1:1)."""
    button = widgets.Button(description=label, tooltip=label, layout=widgets.Layout(width="auto"))
    button.add_class("osqr-option")
    if label == proposed and label != LET_ME_THINK:
        button.add_class("osqr-mod-recommended")
    return button


class CheckpointCard(widgets.VBox):
    """Clicking a button resolves the checkpoint (decided_by="human"); once answered, the card
    folds to one line that says who chose what (the question stays in its tooltip)."""

    def __init__(self, checkpoint: Checkpoint) -> None:
        self.checkpoint = checkpoint
        self.buttons = [_option(label, checkpoint.proposed) for label in checkpoint.options]
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
        self.body = [widgets.HTML(describe(checkpoint)), widgets.HBox(self.buttons)]   # hidden once answered
        if checkpoint.free_text and manual:
            self.body += [widgets.HTML("<small>Manual merge: edit the file below, then save.</small>"),
                          self.text, self.send]
        elif checkpoint.free_text:
            self.body.append(widgets.HBox([self.text, self.send]))
        border = None if theme.styled() else theme.CARD_BORDER
        super().__init__([*self.body, self.status],
                         layout=widgets.Layout(border=border, padding="6px", margin="4px 0"))
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
            self.status.value = theme.span(str(exc), "osqr-error")

    def _changed(self, checkpoint: Checkpoint) -> None:
        done = not checkpoint.pending
        if checkpoint.answer is not None:
            when = time.strftime("%H:%M:%S", time.localtime(checkpoint.resolved_at))
            late = " (no answer in time: the agent's proposal)" if checkpoint.timed_out else ""
            self.status.value = (f"<span title='{escape(checkpoint.question, quote=True)}'>"
                                 f"✓ {escape(checkpoint_title(checkpoint))}: <b>{escape(checkpoint.answer)}</b>, "
                                 f"decided by {checkpoint.decided_by} at {when}{late}</span>")
        elif checkpoint.closed:
            self.status.value = f"✗ Closed: {escape(checkpoint.closed)}"
        elif checkpoint.parked:
            self.status.value = "⚠ Parked: this agent waits; the others go on. Answer when ready."
        for control in (*self.buttons, self.text, self.send):
            control.disabled = done
        if done:                       # answered or closed: one line
            for row in self.body:
                row.layout.display = "none"
            self.add_class("osqr-answered")
            if self.layout.border:
                self.layout.border = theme.ANSWERED_BORDER
