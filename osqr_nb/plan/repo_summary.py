"""What a planner is told about the repository: its files, key files' heads, recent commits.

Kept small on purpose (a capped file tree, the first lines of a few files) so
that it fits in one prompt however large the repository is.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

KEY_FILES = ("README.md", "README.rst", "README.txt", "README", "pyproject.toml", "setup.cfg",
             "package.json", "Cargo.toml", "go.mod", "requirements.txt", "Makefile")
SKIP_DIRS = {".git", "node_modules", "__pycache__", ".venv", "venv", ".mypy_cache", ".pytest_cache",
             ".ipynb_checkpoints", "dist", "build", ".tox", ".osqr"}


def _git(root: Path, *args: str) -> str | None:
    """stdout of a git command in `root`, or None when it is not a git repository (or git fails)."""
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def tracked_files(root: str | Path) -> list[str]:
    """Repository-relative paths (with '/'): git's tracked files, or a walk of the folder outside git."""
    root = Path(root)
    listed = _git(root, "ls-files", "-z")
    if listed is not None:
        return sorted(p for p in listed.split("\0") if p)
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        found += [Path(folder, f).relative_to(root).as_posix() for f in files]
    return sorted(found)


def file_tree(files: list[str], max_files: int = 200) -> str:
    """At most `max_files` paths, shallowest first, then the folders of the rest with their counts.

    Shallow files say most about a repository's shape; a deep folder of test
    fixtures shows as one line instead of crowding out the source.
    """
    by_depth = sorted(files, key=lambda p: (p.count("/"), p))
    shown, rest = sorted(by_depth[:max_files]), by_depth[max_files:]
    folders: dict[str, int] = {}
    for path in rest:
        folder = "/".join(path.split("/")[:2][: path.count("/")]) or "."
        folders[folder] = folders.get(folder, 0) + 1
    return "\n".join(shown + [f"{folder}/ ... {n} more files" for folder, n in sorted(folders.items())])


def file_heads(root: Path, files: list[str], lines: int = 30) -> str:
    """The first lines of the key files the repository has (README, pyproject, ...)."""
    parts = []
    for name in KEY_FILES:
        if name not in files:
            continue
        try:
            text = (root / name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        head = text.splitlines()[:lines]
        parts.append(f"--- {name} (first {len(head)} lines) ---\n" + "\n".join(head))
    return "\n\n".join(parts)


def summarize_repo(repo: str | Path | None, *, max_files: int = 200, head_lines: int = 30,
                   max_chars: int = 16_000) -> str:
    """A plain-text summary of the repository at `repo` for a planning prompt, at most `max_chars`."""
    if repo is None or not Path(repo).is_dir():
        return "(no repository: the tasks will start from an empty folder)"
    root = Path(repo)
    files = tracked_files(root)
    log = _git(root, "log", "--oneline", "-n", "10")
    sections = [f"Files ({len(files)}):\n{file_tree(files, max_files) or '(none)'}"]
    heads = file_heads(root, files, head_lines)
    if heads:
        sections.append(f"Key files:\n{heads}")
    sections.append("Recent commits (git log --oneline -n 10):\n" + ((log or "").strip() or "(none)"))
    text = "\n\n".join(sections)
    return text if len(text) <= max_chars else text[: max_chars - 30] + "\n... (summary cut short)"
