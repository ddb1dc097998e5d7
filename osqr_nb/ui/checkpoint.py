"""The checkpoint card: the question, one button per option, and who answered."""

from __future__ import annotations

import time
from html import escape

import ipywidgets as widgets

from ..autonomy.checkpoints import LET_ME_THINK, Checkpoint


class CheckpointCard(widgets.VBox):
    """Clicking a button resolves the checkpoint (decided_by="human")."""

    def __init__(self, checkpoint: Checkpoint) -> None:
        self.checkpoint = checkpoint
        title = widgets.HTML(
            f"<b>AGENT CHECKPOINT: {escape(checkpoint.task_title)}</b><br>{escape(checkpoint.question)}"
            + (f"<br><small>Agent proposes <b>{escape(checkpoint.proposed)}</b> with confidence "
               f"{checkpoint.confidence:.2f}</small>" if checkpoint.proposed else ""))
        self.buttons = [widgets.Button(description=label, tooltip=label,
                                       button_style="" if label == LET_ME_THINK else "primary")
                        for label in checkpoint.options]
        for button in self.buttons:
            button.on_click(self._clicked)
        self.status = widgets.HTML()
        super().__init__([title, widgets.HBox(self.buttons), self.status],
                         layout=widgets.Layout(border="1px solid #fb8c00", padding="6px", margin="4px 0"))
        self.add_class("osqr-checkpoint")
        checkpoint.on_change(self._changed)
        self._changed(checkpoint)

    def _clicked(self, button: widgets.Button) -> None:
        try:
            self.checkpoint.resolve(button.description, by="human")
        except ValueError as exc:
            self.status.value = f"<span style='color:#e53935'>{escape(str(exc))}</span>"

    def _changed(self, checkpoint: Checkpoint) -> None:
        if checkpoint.answer is not None:
            when = time.strftime("%H:%M:%S", time.localtime(checkpoint.resolved_at))
            self.status.value = (f"✓ <b>{escape(checkpoint.answer)}</b>, decided by "
                                 f"{checkpoint.decided_by} at {when}")
            for button in self.buttons:
                button.disabled = True
        elif checkpoint.parked:
            self.status.value = "⚠ Parked: this agent waits; the others go on. Answer when ready."
