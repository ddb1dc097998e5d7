"""hatch-jupyter-builder's build function for the OSQR Agents sidebar.

Why not `hatch_jupyter_builder.npm_builder` alone: an install on a machine
without Node.js must still succeed (the widgets in cells work without the
sidebar) and say how to get the sidebar, and an install whose sources have not
changed since the last build should not spend a minute rebuilding them.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
OUTPUT = HERE.parent / "osqr_nb" / "labextension"
SOURCES = ["src", "style", "package.json", "yarn.lock", "tsconfig.json", ".yarnrc.yml"]
NODE_MAJOR = 20      # @rspack/core, which builds the extension, needs Node.js 20.19 or later
NO_NODE = ("osqr-nb: Node.js {found} was not found, so the OSQR Agents sidebar for JupyterLab was not "
           "built; the widgets in notebook cells work without it. To get the sidebar, install "
           "Node.js 20 or later (e.g. apt-get install nodejs, or conda install nodejs) and "
           "reinstall: pip install -e .")

log = logging.getLogger("osqr-nb.build")


def build(target_name: str, version: str, **kwargs) -> None:
    """Build labextension/ into osqr_nb/labextension when its sources changed (or it is missing)."""
    from hatch_jupyter_builder import npm_builder

    if not _stale():
        log.info("osqr-nb: the sidebar extension is up to date")
        return
    found = _node_major()
    if found < NODE_MAJOR:
        message = NO_NODE.format(found=f"{NODE_MAJOR}+ (found {found})" if found else f"{NODE_MAJOR}+")
        log.warning(message)
        print(message, file=sys.stderr)
        return
    npm_builder(target_name, version, path=str(HERE), **kwargs)
    if not (OUTPUT / "package.json").exists():
        raise RuntimeError(f"the sidebar build finished without writing {OUTPUT / 'package.json'}")


def _node_major() -> int:
    """The major version of the `node` on PATH; 0 when there is none."""
    node = shutil.which("node")
    if node is None:
        return 0
    try:
        version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    match = re.match(r"v?(\d+)", version.strip())
    return int(match.group(1)) if match else 0


def _stale() -> bool:
    built = OUTPUT / "package.json"
    if not built.exists():
        return True
    newest = max(_newest(HERE / name) for name in SOURCES)
    return newest > built.stat().st_mtime


def _newest(path: Path) -> float:
    if path.is_file():
        return path.stat().st_mtime
    return max((p.stat().st_mtime for p in path.rglob("*") if p.is_file()), default=0.0)
