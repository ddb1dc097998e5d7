"""Strategies and the invariant for fuzzing the agent's file tools (tests/test_tool_fuzz.py and
benchmarks/tool_fuzz.py share them).

The invariant: every call either returns a string or raises ToolError, never anything
else, and nothing outside the worktree (nor its .git) changes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from osqr_nb.agents.tools import SPECS, ToolError, Workspace

FILE_TOOLS = ["read_file", "write_file", "edit_file", "list_files", "search"]

# Text as a model might send it, worst cases included: NULs, lone surrogates, separators.
WEIRD = st.sampled_from(["\0", "\ud800", "\udc80", "\udfff", "/", "\\", "\n", "\r", "*", "?", "[", "{", "(", "~",
                         "\u2028", "\x1b", "\ufeff", "é", "𝔸"])
TEXT = st.one_of(st.text(max_size=30), st.text(st.characters(exclude_categories=()), max_size=30),
                 st.lists(st.one_of(WEIRD, st.text(max_size=3)), max_size=10).map("".join))
SEGMENT = st.one_of(st.sampled_from(["..", ".", "", ".git", "src", "a.py", "README.md", "loopy", "link.txt",
                                     "linkdir", "hard.txt", "secret.txt", "outside", "new", "HEAD"]),
                    TEXT, st.integers(250, 300).map(lambda n: "n" * n))
PATH = st.one_of(st.lists(SEGMENT, max_size=6).map("/".join),
                 st.lists(SEGMENT, max_size=4).map(lambda parts: "/" + "/".join(parts)),
                 st.sampled_from(["/etc/passwd", "/tmp", "~/.ssh/id_rsa", "../outside/secret.txt",
                                  "src/../../outside/secret.txt", ".git/config", "linkdir/secret.txt"]),
                 st.integers(1, 70).map(lambda n: "/".join(["d" * 100] * n)))
INTEGER = st.one_of(st.integers(-3, 50), st.integers(), st.sampled_from([10**30, -10**30, 2**63]))
PATTERN = st.one_of(TEXT, st.sampled_from(["(a+)+$", "(a|a)+$", "(", "[", "x{1000000}", "(?:a{1000}){1000}",
                                           "\\", "(?R)", "\\p{L}+", "(?i)readme", ".*", "^", "$"]))
ANYTHING = st.recursive(st.none() | st.booleans() | INTEGER | st.floats() | TEXT,
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                        max_leaves=6)
GOOD = {"path": PATH, "content": TEXT, "old": TEXT, "new": TEXT, "replace_all": st.booleans(),
        "offset": INTEGER, "limit": INTEGER, "pattern": PATTERN, "regex": st.booleans(),
        "glob": st.one_of(TEXT, st.sampled_from(["*.py", "**/*.md", "/", "src/*", "[", "**"]))}


def arguments(tool: str) -> st.SearchStrategy[dict[str, Any]]:
    """Argument dicts for `tool`: mostly well typed, sometimes anything, sometimes an unknown key."""
    properties = SPECS[tool].parameters["properties"]
    values = {key: st.one_of(GOOD[key], GOOD[key], ANYTHING) for key in properties}
    return st.fixed_dictionaries({}, optional={**values, "bogus": ANYTHING})


def make_worktree(top: Path) -> Workspace:
    """A worktree with every way out (links out, a hard link, a loop) next to an outside directory."""
    root, outside = top / "wt", top / "outside"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "config").write_text("[core]\n")
    outside.mkdir()
    (outside / "secret.txt").write_text("secret = 'outside'\n")
    (outside / "hard.txt").write_text("hard = 'outside'\n")
    (root / "README.md").write_text("# readme\naaaaaaaaaaaaaaaaaaaaaaaaaaaaab\n")
    (root / "src").mkdir()
    (root / "src" / "a.py").write_text("x = 1\n")
    os.symlink(outside / "secret.txt", root / "link.txt")
    os.symlink(outside, root / "linkdir")
    os.symlink("loopy", root / "loopy")
    os.link(outside / "hard.txt", root / "hard.txt")
    return Workspace(root)


def snapshot(top: Path, skip: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `top` but outside `skip` (its .git included), with content and mtime."""
    files = {}
    for folder, dirs, names in os.walk(top):
        dirs[:] = [d for d in dirs if Path(folder, d) != skip]
        for name in names:
            path = Path(folder, name)
            files[str(path)] = (path.read_bytes(), path.lstat().st_mtime_ns)
    return files


def guarded(ws: Workspace) -> dict[str, tuple[bytes, int]]:
    """What no tool may change: the worktree's neighbours and its .git."""
    return {**snapshot(ws.root.parent, ws.root), **snapshot(ws.root / ".git", ws.root / ".git" / "-")}


@dataclass
class Tally:
    tried: int = 0
    held: int = 0
    failures: list[str] = field(default_factory=list)


def check_call(ws: Workspace, tool: str, args: dict[str, Any], before: dict, tally: Tally | None = None) -> None:
    """Call the tool; fail unless it answered a string or a ToolError and changed nothing guarded."""
    if tally is not None:
        tally.tried += 1
    try:
        answer = ws.call(tool, args)
        assert isinstance(answer, str), f"{tool} answered {type(answer).__name__}"
        answer.encode("utf-8")
    except ToolError as exc:
        str(exc).encode("utf-8")
    assert guarded(ws) == before, f"{tool}({args!r}) changed something outside the worktree"
    if tally is not None:
        tally.held += 1
