"""osqr-nb: a Jupyter kernel as the control room for many AI coding agents."""

from .api import events, get_run, history, last_run, resume, start
from .autonomy.checkpoints import Checkpoint
from .engine.run import Run
from .plan.task import Plan, PlanError, Task, TaskKind

__all__ = ["start", "resume", "history", "events", "last_run", "get_run", "Run", "Plan", "Task",
           "TaskKind", "PlanError", "Checkpoint", "load_ipython_extension"]
__version__ = "0.1.0"


def load_ipython_extension(ipython) -> None:
    """`%load_ext osqr_nb`: the magics, and the OSQR settings for %config."""
    from .config import OSQR
    from .magics import OsqrMagics

    config = OSQR.instance(parent=ipython)
    if config not in ipython.configurables:
        ipython.configurables.append(config)
    ipython.register_magics(OsqrMagics)
