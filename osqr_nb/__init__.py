"""osqr-nb: a Jupyter kernel as the control room for many AI coding agents.

Names load on first use, so that `osqr_nb.gpkv` (a server) and the command line
import no kernel, widget or pandas code.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "start": "api", "resume": "api", "history": "api", "events": "api", "costs": "api",
    "last_run": "api", "get_run": "api", "Run": "engine.run", "Checkpoint": "autonomy.checkpoints",
    "Plan": "plan.task", "Task": "plan.task", "TaskKind": "plan.task", "PlanError": "plan.task",
}
__all__ = [*_EXPORTS, "load_ipython_extension"]
LABEXTENSION = "osqr-nb"


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'osqr_nb' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_ipython_extension(ipython) -> None:
    """`%load_ext osqr_nb`: the magics, and the OSQR settings for %config."""
    from .config import OSQR
    from .magics import OsqrMagics

    config = OSQR.instance(parent=ipython)
    if config not in ipython.configurables:
        ipython.configurables.append(config)
    ipython.register_magics(OsqrMagics)
    from .config import prefetch_priors
    prefetch_priors()
    from .ui import register_display
    register_display(ipython)
    _open_sidebar(ipython)


_sidebar = None


def _open_sidebar(ipython) -> None:
    """In a kernel, feed JupyterLab's osqr sidebar (a front end without it just closes the comm)."""
    global _sidebar
    kernel = getattr(ipython, "kernel", None)
    if kernel is None or _sidebar is not None:
        return                      # terminal IPython, or already open
    from . import api
    from .ui.sidebar import SidebarChannel

    _sidebar = SidebarChannel(api.live_runs)
    _sidebar.register_target(kernel)
    _sidebar.open()
    if not _labextension_installed():
        print("osqr: the OSQR Agents sidebar for JupyterLab is not installed here (it is built when "
              "osqr-nb is installed on a machine with Node.js 20+); the widgets in cells work without it. "
              "To get it: install Node.js, then pip install -e . (or pip install osqr-nb) again.")


def _labextension_installed() -> bool:
    """Whether JupyterLab can find the sidebar (pip puts it in <prefix>/share/jupyter/labextensions)."""
    from pathlib import Path

    from jupyter_core.paths import jupyter_path
    return any((Path(p) / LABEXTENSION / "package.json").exists() for p in jupyter_path("labextensions"))


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """For `jupyter labextension develop .`: the built sidebar, under its npm name."""
    return [{"src": "labextension", "dest": LABEXTENSION}]
