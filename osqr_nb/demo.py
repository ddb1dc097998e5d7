"""A small git repository to try osqr-nb on, for the quickstart."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

FILES = {
    "README.md": "# Demo app\n\nA tiny web app for trying osqr-nb.\n",
    "app.py": 'def main() -> str:\n    """Entry point of the demo app."""\n    return "hello"\n',
    "docs/README.md": "# API\n\n(to be written)\n",
}


def demo_repo(path: str | Path | None = None) -> str:
    """Create a demo repository with one commit (in a new temporary directory by default)."""
    root = Path(path) if path else Path(tempfile.mkdtemp(prefix="osqr-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    identity = ["-c", "user.name=osqr-nb demo", "-c", "user.email=demo@osqr-nb.invalid"]
    for args in (["init", "-q", "-b", "main"], ["add", "."], [*identity, "commit", "-q", "-m", "Demo app"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    return str(root)
