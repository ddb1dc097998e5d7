"""What a person sees of osqr in a notebook: the run's dashboard, checkpoint cards, the
plan draft, and the kernel's side of the JupyterLab sidebar.

The engine knows nothing of these views (it publishes `run.state`, `run.version` and
its checkpoints); as in ipywidgets, the view is built here around the run, and
`%load_ext osqr_nb` teaches IPython to show a `Run` with it (`display(run)`, or a run
as a cell's last value).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..engine.run import Run
    from .dashboard import RunView

__all__ = ["view", "register_display", "sidebar_open"]


def view(run: "Run") -> "RunView":
    """The live dashboard of a run (what `display(run)` shows in a kernel)."""
    from .dashboard import RunView
    return RunView(run)


def _show(run: "Run") -> bool:
    from IPython.display import display
    display(view(run))
    return True


def register_display(ipython) -> None:
    """Show every `Run` as its dashboard in this IPython (ipython_display_formatter, as widgets do)."""
    from ..engine.run import Run
    ipython.display_formatter.ipython_display_formatter.for_type(Run, _show)


def sidebar_open() -> bool:
    """Whether a JupyterLab with the OSQR Agents sidebar is connected to this kernel: someone may
    be there to click, so a notebook can wait for them instead of answering from code."""
    from .theme import styled
    return styled()
