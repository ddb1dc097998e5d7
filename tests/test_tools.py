import os

import pytest

from osqr_nb.agents.tools import MAX_RESULT, ToolError, Workspace


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
    assert ws.call("list_files", {}).split("\n") == ["docs/new.md", "src/a.py"]


@pytest.mark.parametrize("path", ["../outside.txt", "src/../../outside.txt", "/etc/passwd"])
def test_paths_outside_the_worktree_are_refused(ws, path):
    with pytest.raises(ToolError, match="outside the worktree"):
        ws.call("write_file", {"path": path, "content": "x"})
    assert not (ws.root.parent / "outside.txt").exists()


def test_symlink_leading_out_is_refused(ws, tmp_path):
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", ws.root / "link.txt")
    with pytest.raises(ToolError, match="outside the worktree"):
        ws.call("read_file", {"path": "link.txt"})


def test_git_internals_are_refused(ws):
    with pytest.raises(ToolError, match=r"inside \.git"):
        ws.call("write_file", {"path": ".git/config", "content": "x"})


def test_clear_errors_for_missing_files_bad_arguments_and_unknown_tools(ws):
    with pytest.raises(ToolError, match="no file 'nope.py'"):
        ws.call("read_file", {"path": "nope.py"})
    with pytest.raises(ToolError, match="bad arguments for write_file"):
        ws.call("write_file", {"path": "a"})
    with pytest.raises(ToolError, match="unknown tool 'rm'"):
        ws.call("rm", {"path": "a"})
    with pytest.raises(ToolError, match="is a directory"):
        ws.call("write_file", {"path": "src", "content": "x"})


def test_big_results_are_cut_and_say_so(ws):
    ws.call("write_file", {"path": "big.txt", "content": "y" * (MAX_RESULT + 10)})
    text = ws.call("read_file", {"path": "big.txt"})
    assert text.endswith("[... cut: 10 more characters not shown]")
