"""The agent's file tools: confinement, edit, search, read ranges, argument checks, bounds."""

import asyncio
import os
from pathlib import Path

import pytest

from tool_fuzzing import snapshot
from osqr_nb.agents.tools import (MAX_MATCH_LINE, MAX_MATCHES, MAX_RESULT, TOOL_SPECS, ToolError, Workspace,
                                  validate_arguments)


@pytest.fixture
def ws(tmp_path):
    root = tmp_path / "wt"
    (root / ".git").mkdir(parents=True)
    (root / "src").mkdir()
    (root / "src" / "a.py").write_text("x = 1\n")
    return Workspace(root)




def test_read_write_list_inside_the_worktree(ws):
    assert ws.call("write_file", {"path": "docs/new.md", "content": "hi"}) == "created docs/new.md (2 characters)"
    assert ws.call("read_file", {"path": "docs/new.md"}) == "hi"
    assert ws.call("write_file", {"path": "docs/new.md", "content": "ho"}) == "replaced docs/new.md (2 characters)"
    assert ws.call("list_files", {}).split("\n") == ["docs/new.md", "src/a.py"]
    assert ws.call("list_files", {"path": "src"}) == "src/a.py"


# -- confinement -------------------------------------------------------------

@pytest.fixture
def escapes(ws, tmp_path):
    """A worktree with every kind of way out: a file link, a directory link, a dangling link, a hard link."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret = 'outside'\n")
    (outside / "hard.txt").write_text("hard = 'outside'\n")
    os.symlink(outside / "secret.txt", ws.root / "link.txt")
    os.symlink(outside, ws.root / "linkdir")
    os.symlink(outside / "new.txt", ws.root / "dangling.txt")
    os.link(outside / "hard.txt", ws.root / "hard.txt")
    return outside


ESCAPING_PATHS = ["../outside/secret.txt", "src/../../outside/secret.txt", "link.txt", "linkdir/secret.txt",
                  "linkdir/new.txt", "linkdir", "dangling.txt", "/etc/passwd"]


@pytest.mark.parametrize("path", ESCAPING_PATHS)
def test_every_way_out_is_refused_by_every_tool(ws, escapes, path):
    calls = [("read_file", {"path": path}), ("write_file", {"path": path, "content": "x"}),
             ("edit_file", {"path": path, "old": "outside", "new": "inside"}), ("list_files", {"path": path}),
             ("search", {"pattern": "outside", "path": path})]
    for name, args in calls:
        with pytest.raises(ToolError, match="outside the worktree"):
            ws.call(name, args)


def test_an_absolute_path_outside_is_refused(ws, escapes):
    with pytest.raises(ToolError, match="outside the worktree"):
        ws.call("write_file", {"path": str(escapes / "secret.txt"), "content": "x"})


def test_no_file_outside_the_worktree_changes(ws, escapes, tmp_path):
    before = snapshot(tmp_path, ws.root)
    for path in [*ESCAPING_PATHS[:-1], str(escapes / "secret.txt")]:
        for name, args in [("write_file", {"path": path, "content": "x"}),
                           ("edit_file", {"path": path, "old": "outside", "new": "inside"})]:
            with pytest.raises(ToolError):
                ws.call(name, args)
    # A hard link is inside the worktree: editing it replaces the worktree's entry, not the shared file.
    ws.call("edit_file", {"path": "hard.txt", "old": "outside", "new": "inside"})
    ws.call("write_file", {"path": "hard.txt", "content": "rewritten"})
    assert snapshot(tmp_path, ws.root) == before
    assert (ws.root / "hard.txt").read_text() == "rewritten"
    assert not (escapes / "new.txt").exists()


def test_listing_and_search_leave_out_what_lies_outside(ws, escapes):
    assert ws.call("list_files", {}).split("\n") == ["hard.txt", "src/a.py"]
    assert "link.txt" not in ws.call("search", {"pattern": "outside"})
    assert ws.call("search", {"pattern": "secret"}) == "no matches for 'secret' in '.'"


def test_git_internals_are_refused(ws):
    (ws.root / ".git" / "config").write_text("[core]\n")
    for name, args in [("write_file", {"path": ".git/config", "content": "x"}), ("read_file", {"path": ".git/config"}),
                       ("edit_file", {"path": ".git/config", "old": "core", "new": "x"})]:
        with pytest.raises(ToolError, match=r"inside \.git"):
            ws.call(name, args)
    assert ws.call("search", {"pattern": "core"}) == "no matches for 'core' in '.'"


# -- edit_file ---------------------------------------------------------------

def test_edit_file_replaces_exact_text(ws):
    ws.call("write_file", {"path": "m.py", "content": "def f():\n    return 1\n\ndef g():\n    return 1\n"})
    result = ws.call("edit_file", {"path": "m.py", "old": "def g():\n    return 1", "new": "def g():\n    return 2"})
    assert result == "edited m.py: replaced 1 occurrence (at line 4)"
    assert ws.read_file("m.py").endswith("return 2\n")
    result = ws.call("edit_file", {"path": "m.py", "old": "def", "new": "async def", "replace_all": True})
    assert result == "edited m.py: replaced 2 occurrences (first at line 1)"
    assert ws.read_file("m.py").count("async def") == 2


def test_edit_file_errors_say_what_to_do(ws):
    ws.call("write_file", {"path": "m.py", "content": "a = 1\na = 1\nb = 2\n"})
    with pytest.raises(ToolError, match=r"occurs 2 times in 'm.py'; include more surrounding lines .* replace_all"):
        ws.call("edit_file", {"path": "m.py", "old": "a = 1", "new": "a = 3"})
    with pytest.raises(ToolError, match=r"not found in 'm.py'; read the file and copy the exact text"):
        ws.call("edit_file", {"path": "m.py", "old": "c = 3", "new": "c = 4"})
    with pytest.raises(ToolError, match="leading and trailing whitespace"):
        ws.call("edit_file", {"path": "m.py", "old": "  b = 2", "new": "b = 3"})
    with pytest.raises(ToolError, match="old is empty"):
        ws.call("edit_file", {"path": "m.py", "old": "", "new": "x"})
    with pytest.raises(ToolError, match="no file 'none.py'"):
        ws.call("edit_file", {"path": "none.py", "old": "a", "new": "b"})
    assert ws.read_file("m.py") == "a = 1\na = 1\nb = 2\n"


def test_plan_edit_previews_without_writing(ws):
    old, new = ws.plan_edit("src/a.py", "x = 1", "x = 2")
    assert (old, new) == ("x = 1\n", "x = 2\n")
    assert ws.read_file("src/a.py") == "x = 1\n"


def test_edit_keeps_the_file_mode(ws):
    script = ws.root / "run.sh"
    script.write_text("echo one\n")
    script.chmod(0o755)
    ws.call("edit_file", {"path": "run.sh", "old": "one", "new": "two"})
    assert script.stat().st_mode & 0o777 == 0o755 and script.read_text() == "echo two\n"
    assert sorted(p.name for p in ws.root.iterdir()) == [".git", "run.sh", "src"]   # no temporary left


# -- search ------------------------------------------------------------------

@pytest.fixture
def tree(ws):
    ws.write_file("src/b.py", "def alpha():\n    return 'Alpha'\n\ndef beta():\n    pass\n")
    ws.write_file("docs/notes.md", "alpha in docs\n")
    (ws.root / "blob.bin").write_bytes(b"alpha\0\1\2")
    (ws.root / "big.txt").write_text("alpha\n" * 200_000)       # over the size limit: not searched
    (ws.root / "__pycache__").mkdir()
    (ws.root / "__pycache__" / "b.txt").write_text("alpha\n")
    return ws


def test_search_plain_text(tree):
    assert tree.call("search", {"pattern": "alpha"}).split("\n") == [
        "docs/notes.md:1: alpha in docs", "src/b.py:1: def alpha():"]
    assert tree.call("search", {"pattern": "alpha", "glob": "*.py"}) == "src/b.py:1: def alpha():"
    assert tree.call("search", {"pattern": "alpha", "path": "docs"}) == "docs/notes.md:1: alpha in docs"
    assert tree.call("search", {"pattern": "alpha", "path": "src/b.py"}) == "src/b.py:1: def alpha():"
    assert tree.call("search", {"pattern": "a(", "glob": "**/*.py"}).split("\n") == [
        "src/b.py:1: def alpha():", "src/b.py:4: def beta():"]
    assert tree.call("search", {"pattern": "zeta", "glob": "*.md"}) == (
        "no matches for 'zeta' in '.' (files matching '*.md')")


def test_search_regular_expression(tree):
    assert tree.call("search", {"pattern": r"^def \w+\(", "regex": True, "glob": "src/*.py"}).split("\n") == [
        "src/b.py:1: def alpha():", "src/b.py:4: def beta():"]
    assert tree.call("search", {"pattern": "(?i)return 'alpha'", "regex": True}) == "src/b.py:2:     return 'Alpha'"


def test_search_with_a_bad_regular_expression_says_so(tree):
    with pytest.raises(ToolError, match=r"bad regular expression 'def \(': missing \).*regex false"):
        tree.call("search", {"pattern": "def (", "regex": True})


def test_search_is_bounded_and_marks_the_cut(ws):
    ws.write_file("many.txt", "hit\n" * (MAX_MATCHES + 50) + "hit " + "x" * 1000 + "\n")
    lines = ws.call("search", {"pattern": "hit"}).split("\n")
    assert len(lines) == MAX_MATCHES + 1
    assert lines[-1] == (f"[... cut: {MAX_MATCHES + 51} matches in all, {MAX_MATCHES} shown; "
                         "narrow the pattern, path or glob]")
    ws.write_file("long.txt", "needle " + "y" * 1000)
    hit = ws.call("search", {"pattern": "needle"})
    assert hit.startswith("long.txt:1: needle yyy") and hit.endswith("[... 707 more characters]")
    assert len(hit) < MAX_MATCH_LINE + 60


# -- read_file ranges and bounds ---------------------------------------------

def test_read_file_line_ranges(ws):
    ws.write_file("n.txt", "".join(f"line {i}\n" for i in range(1, 11)))
    assert ws.call("read_file", {"path": "n.txt", "offset": 3, "limit": 2}) == (
        "line 3\nline 4\n[... lines 5-10 of 10 not shown; read on with offset=5]")
    assert ws.call("read_file", {"path": "n.txt", "offset": 9}) == "line 9\nline 10\n"
    assert ws.call("read_file", {"path": "n.txt", "offset": 9.0, "limit": 5}) == "line 9\nline 10\n"
    with pytest.raises(ToolError, match="offset 11 is past the end: 'n.txt' has 10 lines"):
        ws.call("read_file", {"path": "n.txt", "offset": 11})
    with pytest.raises(ToolError, match="positive"):
        ws.call("read_file", {"path": "n.txt", "offset": 0})


def test_big_files_are_cut_at_a_line_and_say_where_to_read_on(ws):
    ws.write_file("big.txt", "y" * 99 + "\n" + ("z" * 99 + "\n") * (MAX_RESULT // 100 + 5))
    text = ws.call("read_file", {"path": "big.txt"})
    shown = MAX_RESULT // 100
    assert text.endswith(f"[... lines {shown + 1}-{shown + 6} of {shown + 6} not shown; "
                         f"read on with offset={shown + 1}]")
    assert len(text) < MAX_RESULT + 100
    assert ws.call("read_file", {"path": "big.txt", "offset": shown + 1}) == ("z" * 99 + "\n") * 6
    ws.write_file("one_line.txt", "w" * (MAX_RESULT + 10))
    assert ws.call("read_file", {"path": "one_line.txt"}).endswith(
        "[... cut: 10 more characters not shown]\n[... line 1 cut; read on with offset=2]")


def test_binary_files_are_refused(ws):
    (ws.root / "img.png").write_bytes(b"\x89PNG\xff\xfe")
    with pytest.raises(ToolError, match="'img.png' is not a text file"):
        ws.call("read_file", {"path": "img.png"})


# -- arguments and dispatch --------------------------------------------------

def test_missing_and_wrong_typed_arguments_name_the_argument_and_type(ws):
    with pytest.raises(ToolError, match=r"write_file needs the argument 'content' \(a string\)"):
        ws.call("write_file", {"path": "a"})
    with pytest.raises(ToolError, match=r"read_file: the argument 'offset' must be an integer, got str '10'"):
        ws.call("read_file", {"path": "src/a.py", "offset": "10"})
    with pytest.raises(ToolError, match=r"'replace_all' must be true or false, got int 1"):
        ws.call("edit_file", {"path": "src/a.py", "old": "x", "new": "y", "replace_all": 1})
    with pytest.raises(ToolError, match=r"read_file has no argument 'file'; its arguments are: path, offset, limit"):
        ws.call("read_file", {"file": "src/a.py"})
    with pytest.raises(ToolError, match="must be a JSON object, got list"):
        ws.call("read_file", ["src/a.py"])
    with pytest.raises(ToolError, match=r"'command' must be a string or a list of strings, got int 3"):
        validate_arguments("run_command", {"command": 3})
    with pytest.raises(ToolError, match=r"'files' must be a list of strings"):
        validate_arguments("share", {"context": "schema", "files": [1]})


def test_unknown_tools_and_directories(ws):
    with pytest.raises(ToolError, match="unknown tool 'rm'; the workspace tools are: read_file, write_file, edit_file"):
        ws.call("rm", {"path": "a"})
    with pytest.raises(ToolError, match="is a directory"):
        ws.call("write_file", {"path": "src", "content": "x"})
    with pytest.raises(ToolError, match="no file 'nope.py'"):
        ws.call("read_file", {"path": "nope.py"})
    with pytest.raises(ToolError, match="run_command is asynchronous"):
        ws.call("run_command", {"command": "true"})


def test_acall_runs_file_tools_too(ws):
    async def calls():
        return (await ws.acall("search", {"pattern": "x ="}), await ws.acall("read_file", {"path": "src/a.py"}))
    assert asyncio.run(calls()) == ("src/a.py:1: x = 1", "x = 1\n")


def test_specs_are_valid_and_unique():
    names = [s.name for s in TOOL_SPECS]
    assert names == ["read_file", "write_file", "edit_file", "list_files", "search", "run_command",
                     "report_decision", "share", "finish"]
    for spec in TOOL_SPECS:
        assert spec.parameters["type"] == "object"
        assert set(spec.parameters.get("required", [])) <= set(spec.parameters["properties"])
