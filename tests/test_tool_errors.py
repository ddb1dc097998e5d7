"""One bad tool argument never ends a task: every failure is an error the model reads.

Issue 12 item 4: a NUL byte or a lone surrogate in a path, `write_file("README.md/x")`,
an over-long name, a symlink loop, a permission denied; a repository with one committed
`loopy -> loopy` symlink used to fail every task that listed or searched.
"""

import asyncio
import os
from pathlib import Path

import pytest

import osqr_nb
from osqr_nb import Plan, Task
from osqr_nb.agents import tools
from osqr_nb.agents.tools import ToolError, Workspace, validate_arguments
from osqr_nb.models.base import Reply, ToolCall

from conftest import git, make_repo, run_async


@pytest.fixture
def ws(tmp_path):
    root = tmp_path / "wt"
    (root / ".git").mkdir(parents=True)
    (root / "README.md").write_text("# demo\n")
    (root / "src").mkdir()
    (root / "src" / "a.py").write_text("x = 1\n")
    os.symlink("loopy", root / "loopy")
    return Workspace(root)


def error_of(ws: Workspace, name: str, args: dict) -> str:
    with pytest.raises(ToolError) as caught:
        ws.call(name, args)
    return str(caught.value)


PATH_TOOLS = [("read_file", {}), ("write_file", {"content": "x"}), ("edit_file", {"old": "a", "new": "b"}),
              ("list_files", {}), ("search", {"pattern": "x"})]


@pytest.mark.parametrize("name,extra", PATH_TOOLS)
def test_a_nul_byte_in_a_path_is_an_error_naming_it(ws, name, extra):
    assert error_of(ws, name, {"path": "src/a\0.py", **extra}) == (
        f"{name}: path 'src/a\\x00.py' holds a NUL byte (\\x00), which no file name may contain")


@pytest.mark.parametrize("name,extra", PATH_TOOLS)
def test_a_lone_surrogate_in_a_path_is_an_error_naming_it(ws, name, extra):
    message = error_of(ws, name, {"path": "src/a\ud800.py", **extra})
    assert message == (f"{name}: path 'src/a\\ud800.py' holds '\\ud800', a lone surrogate (half of a "
                       "UTF-16 pair), which no file name may contain")
    message.encode("utf-8")            # the message itself can go to a model and the log


def test_a_lone_surrogate_in_content_writes_nothing(ws):
    assert error_of(ws, "write_file", {"path": "new.txt", "content": "ok \udc80"}) == (
        "write_file: content holds '\\udc80' at character 3, a lone surrogate (half of a UTF-16 pair) "
        "that cannot be written as UTF-8; remove it")
    assert not (ws.root / "new.txt").exists()
    assert "lone surrogate" in error_of(ws, "edit_file", {"path": "README.md", "old": "demo", "new": "\ud800"})
    assert (ws.root / "README.md").read_text() == "# demo\n"


def test_a_file_where_a_directory_should_be(ws):
    assert error_of(ws, "write_file", {"path": "README.md/x", "content": "x"}) == (
        "write_file failed on 'README.md': it exists and is not a directory")
    assert error_of(ws, "write_file", {"path": "README.md/x/y", "content": "x"}) == (
        "write_file failed on 'README.md/x': a part of the path is a file, not a directory")
    assert error_of(ws, "read_file", {"path": "README.md/x"}) == "read_file: no file 'README.md/x' in the worktree"
    assert error_of(ws, "list_files", {"path": "README.md/x"}) == (
        "list_files: no directory 'README.md/x' in the worktree")


def test_over_long_names_and_paths(ws):
    name = "n" * 256
    assert error_of(ws, "write_file", {"path": f"src/{name}", "content": "x"}).startswith(
        "write_file: the name 'nnnnnnnn")
    assert "is 256 bytes long; a file name may have at most 255" in error_of(ws, "read_file", {"path": name})
    deep = "/".join(["d" * 200] * 25)
    assert "a path may have at most 4,096" in error_of(ws, "write_file", {"path": deep, "content": "x"})
    assert not any(p.name.startswith("nnn") for p in ws.root.rglob("*"))


@pytest.mark.parametrize("name,extra", PATH_TOOLS)
def test_a_symlink_loop_as_the_path(ws, name, extra):
    assert error_of(ws, name, {"path": "loopy", **extra}) == (
        f"{name}: path 'loopy' runs into a symlink loop; give a path that avoids it")


def test_listing_and_search_skip_a_symlink_loop_and_say_so(ws):
    assert ws.call("list_files", {}).split("\n") == [
        "README.md", "src/a.py", "[1 entry skipped: loopy (symlink loop)]"]
    assert ws.call("search", {"pattern": "x ="}).split("\n") == [
        "src/a.py:1: x = 1", "[1 entry skipped: loopy (symlink loop)]"]
    assert ws.call("search", {"pattern": r"x\s=", "regex": True}).split("\n") == [
        "src/a.py:1: x = 1", "[1 entry skipped: loopy (symlink loop)]"]
    assert ws.call("search", {"pattern": "zeta"}) == (
        "no matches for 'zeta' in '.'\n[1 entry skipped: loopy (symlink loop)]")


def test_unreadable_entries_are_skipped_and_named(ws, monkeypatch):
    """Root reads everything, so the denial is staged where the tools meet the OS."""
    (ws.root / "secret.txt").write_text("x = 'secret'\n")
    (ws.root / "locked").mkdir()
    (ws.root / "locked" / "b.py").write_text("x = 2\n")
    real_open, real_scandir = tools._open_regular, os.scandir

    def deny_open(path):
        if Path(path).name == "secret.txt":
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path)

    def deny_scandir(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(tools, "_open_regular", deny_open)
    monkeypatch.setattr(tools.os, "scandir", deny_scandir)
    assert ws.call("list_files", {}).split("\n") == [
        "README.md", "secret.txt", "src/a.py", "[2 entries skipped: loopy (symlink loop), locked/ (permission denied)]"]
    assert ws.call("search", {"pattern": "x ="}).split("\n") == [
        "src/a.py:1: x = 1", "[3 entries skipped: loopy (symlink loop), secret.txt (permission denied), "
        "locked/ (permission denied)]"]
    assert error_of(ws, "read_file", {"path": "secret.txt"}) == (
        "read_file failed on 'secret.txt': permission denied")


def test_a_fifo_never_hangs_a_tool(ws):
    os.mkfifo(ws.root / "pipe")
    assert "pipe" not in ws.call("list_files", {})
    assert ws.call("search", {"pattern": "x ="}).startswith("src/a.py:1: x = 1")
    assert error_of(ws, "read_file", {"path": "pipe"}) == "read_file: no file 'pipe' in the worktree"


def test_arguments_nested_too_deeply_to_show(ws):
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert error_of(ws, "write_file", {"path": "a.txt", "content": deep}) == (
        "write_file: the argument 'content' must be a string, got list (a list nested too deeply to show)")
    with pytest.raises(ToolError, match="nested too deeply"):
        validate_arguments("share", {"context": "c", "files": deep})


def test_a_regular_expression_that_backtracks_is_stopped_with_a_reason(ws):
    ws.write_file("a.txt", ("a" * 40 + "b\n") * 3)
    assert error_of(ws, "search", {"pattern": "(a|a)+$", "regex": True}) == (
        "search: the regular expression '(a|a)+$' took over 1 s on one line (a.txt:1): it backtracks "
        "catastrophically (nested repeats such as (a+)+ do); simplify it")


def test_big_files_are_sized_before_they_are_read(ws):
    with open(ws.root / "big.txt", "wb") as handle:
        handle.write(b"head\n")
        os.truncate(handle.fileno(), tools.MAX_EDIT_BYTES + 1)
    assert "more than edit_file works on" in error_of(ws, "edit_file", {"path": "big.txt", "old": "head", "new": "x"})
    assert ws.current_text("big.txt") == (
        f"[the current file has {tools.MAX_EDIT_BYTES + 1:,} bytes: too large to show]\n")
    assert ws.current_text("new.txt") is None


def test_acall_turns_failures_into_tool_errors_too(ws):
    async def calls():
        answers = []
        for name, args in [("read_file", {"path": "a\0"}), ("search", {"pattern": "(", "regex": True}),
                           ("search", {"pattern": "x", "path": "loopy", "regex": True}),
                           ("write_file", {"path": "README.md/x", "content": "x"})]:
            try:
                answers.append(await ws.acall(name, args))
            except ToolError as exc:
                answers.append(f"error: {exc}")
        return answers
    assert asyncio.run(calls()) == [
        "error: read_file: path 'a\\x00' holds a NUL byte (\\x00), which no file name may contain",
        "error: search: bad regular expression '(': missing ) at position 1; fix it, or search for plain "
        "text with regex false",
        "error: search: path 'loopy' runs into a symlink loop; give a path that avoids it",
        "error: write_file failed on 'README.md': it exists and is not a directory"]


# -- through a real run -------------------------------------------------------

class BadCallsModel:
    """Makes each call of `calls` in turn, then finishes; keeps what each call answered."""

    name = "bad calls"

    def __init__(self, calls):
        self.calls = calls
        self.answers: list[str] = []

    async def complete(self, system, messages, tools_):
        step = sum(1 for m in messages if m["role"] == "assistant")
        self.answers = [m["content"] for m in messages if m["role"] == "tool"]
        if step < len(self.calls):
            name, args = self.calls[step]
            return Reply(tool_calls=[ToolCall(f"c{step}", name, args)], stop_reason="tool_use")
        return Reply(tool_calls=[ToolCall("end", "finish", {"summary": "done despite bad calls"})],
                     stop_reason="tool_use")


BAD_CALLS = [
    ("read_file", {"path": "a\0b"}),
    ("write_file", {"path": "README.md/x", "content": "x"}),
    ("write_file", {"path": "n" * 300, "content": "x"}),
    ("read_file", {"path": "loopy"}),
    ("edit_file", {"path": "loopy", "old": "a", "new": "b"}),
    ("search", {"pattern": "(", "regex": True}),
    ("read_file", {"path": "README.md", "offset": 10**12}),
    ("edit_file", {"path": "README.md", "old": "absent", "new": "x"}),
    ("rm", {"path": "README.md"}),
]


def loopy_repo(tmp_path) -> Path:
    repo = make_repo(tmp_path / "repo")
    os.symlink("loopy", repo / "loopy")
    git(repo, "add", "loopy")
    git(repo, "commit", "-q", "-m", "a symlink loop")
    return repo


def start_and_wait(repo, model, title="Bad calls"):
    async def main():
        run = osqr_nb.start(plan=Plan([Task("bad", title)]), repo=repo, model=model, tier=4)
        await run
        return run
    return run_async(main())


def test_a_run_goes_on_after_every_bad_call(tmp_path):
    model = BadCallsModel(BAD_CALLS + [("list_files", {}), ("search", {"pattern": "hello"}),
                                       ("write_file", {"path": "notes.md", "content": "still working\n"})])
    repo = loopy_repo(tmp_path)
    run = start_and_wait(repo, model)
    assert run.status == "complete", run.state.error
    answers = model.answers
    assert len(answers) == len(BAD_CALLS) + 3
    for (name, _), answer in zip(BAD_CALLS, answers):
        assert answer.startswith("error: "), (name, answer)
    assert "NUL byte" in answers[0] and "it exists and is not a directory" in answers[1]
    assert "at most 255" in answers[2] and "symlink loop" in answers[3] and "symlink loop" in answers[4]
    listing, found, wrote = answers[len(BAD_CALLS):]
    assert listing.endswith("[1 entry skipped: loopy (symlink loop)]") and "app.py" in listing
    assert found.startswith("app.py:2:") and found.endswith("[1 entry skipped: loopy (symlink loop)]")
    assert wrote == "created notes.md (14 characters)"
    assert "still working" in git(repo, "show", f"osqr/{run.id}/integration:notes.md")


def test_a_run_goes_on_after_lone_surrogates(tmp_path):
    model = BadCallsModel([("read_file", {"path": "a\ud800b"}),
                           ("write_file", {"path": "ok.txt", "content": "x\udc80"})])
    run = start_and_wait(make_repo(tmp_path / "repo"), model)
    assert run.status == "complete", run.state.error
    assert all(a.startswith("error: ") and "lone surrogate" in a for a in model.answers)


def test_a_nested_git_init_by_an_agent_does_not_fail_the_task(tmp_path):
    model = BadCallsModel([("run_command", {"command": ["git", "init", "-q", "nested"]}),
                           ("write_file", {"path": "nested/x.txt", "content": "x\n"})])
    run = start_and_wait(make_repo(tmp_path / "repo"), model, title="Nested repository")
    assert model.answers[0].startswith("exit code 0"), model.answers
    assert run.status == "complete", run.state.error
