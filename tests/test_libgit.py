"""The small git calls made in process (workspace/libgit.py) answer exactly what git answers,
and a run leaves git processes only for what needs git itself."""

import os
import stat
import subprocess
from pathlib import Path

import pytest

from osqr_nb.workspace import git as gitlib
from osqr_nb.workspace import libgit

from conftest import run_async


def sh(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env=gitlib._env()).stdout.strip()


@pytest.fixture
def history(repo: Path) -> tuple[Path, str, str]:
    """A commit that adds, modifies, deletes, turns a file into a link and adds a binary file."""
    (repo / "gone.txt").write_text("bye\n")
    (repo / "kept.txt").write_text("one\n")
    (repo / "link").write_text("a file, later a symlink\n")
    sh(repo, "add", "-A")
    sh(repo, "commit", "-q", "-m", "before")
    before = sh(repo, "rev-parse", "HEAD")
    (repo / "gone.txt").unlink()
    (repo / "kept.txt").write_text("two\n")
    (repo / "link").unlink()
    (repo / "link").symlink_to("kept.txt")
    (repo / "sub").mkdir()
    (repo / "sub" / "new.py").write_text("<<<<<<< ours\nx = 1\n=======\nx = 2\n>>>>>>> theirs\n")
    (repo / "sub" / "blob.bin").write_bytes(b"\0\1<<<<<<< not text\n")
    (repo / "sub" / "quote.md").write_text("text that quotes\n    <<<<<<< a marker, indented\n")
    (repo / "sub" / "ctl.txt").write_bytes(bytes(range(1, 9)) * 50 + b"\n>>>>>>> theirs\n")   # text to git: no NUL
    sh(repo, "add", "-A")
    sh(repo, "commit", "-q", "-m", "after")
    return repo, before, sh(repo, "rev-parse", "HEAD")


def git_changes(repo: Path, spec: str) -> dict[str, str]:
    parts = sh(repo, "diff", "--name-status", "--no-renames", "-z", spec).split("\0")
    return {name: status for status, name in zip(parts[::2], parts[1::2]) if name}


def test_changed_files_match_gits_name_status(history):
    repo, before, after = history
    expected = git_changes(repo, f"{before}...{after}")
    assert expected == {"gone.txt": "D", "kept.txt": "M", "link": "T", "sub/new.py": "A",
                        "sub/blob.bin": "A", "sub/quote.md": "A", "sub/ctl.txt": "A"}
    assert libgit.changed(repo, before, after, two_dot=False) == expected
    assert libgit.changed(repo, after, before, two_dot=True) == git_changes(repo, f"{after}..{before}")
    assert run_async(gitlib.changed_files(repo, before, after)) == expected


def test_three_dots_measure_from_the_merge_base(history):
    repo, before, after = history
    sh(repo, "checkout", "-q", "-b", "side", before)
    (repo / "side.txt").write_text("side\n")
    sh(repo, "add", "-A")
    sh(repo, "commit", "-q", "-m", "side")
    assert libgit.changed(repo, after, "side", two_dot=False) == git_changes(repo, f"{after}...side") \
        == {"side.txt": "A"}


def test_markers_are_found_as_git_grep_finds_them(history):
    repo, _, after = history
    names = ["sub/new.py", "sub/blob.bin", "sub/quote.md", "sub/ctl.txt", "kept.txt", "missing.txt"]
    found = libgit.with_markers(repo, f"{after}^{{tree}}", names)
    grep = subprocess.run(["git", "grep", "-l", "-z", "-I", "-E", "^(<<<<<<<|>>>>>>>) ", f"{after}^{{tree}}", "--",
                           *names[:-1]], cwd=repo, capture_output=True, text=True).stdout
    assert found == {n.split(":", 1)[1] for n in grep.split("\0") if n} == {"sub/new.py", "sub/ctl.txt"}


def test_a_commit_written_in_process_is_the_commit_git_writes(history):
    repo, before, after = history
    ours = run_async(gitlib.commit_tree(repo, f"{after}^{{tree}}", [before, after, after], "osqr: merge t1"))
    theirs = subprocess.run(["git", "commit-tree", f"{after}^{{tree}}", "-p", before, "-p", after, "-p", after,
                             "-m", "osqr: merge t1"], cwd=repo, capture_output=True, text=True,
                            env=gitlib._env()).stdout.strip()

    def body(commit):               # all but the times, which differ by the second they were made
        return [line.rsplit(" ", 2)[0] if line.startswith(("author", "committer")) else line
                for line in sh(repo, "cat-file", "commit", commit).splitlines()]

    assert body(ours) == body(theirs)
    assert sh(repo, "fsck", "--no-dangling", "--strict") == ""


def test_a_branch_set_in_process_is_seen_by_git(history):
    repo, before, _ = history
    run_async(gitlib.set_ref(repo, "refs/heads/osqr/r1/t1", before, "osqr: the task's branch"))
    assert sh(repo, "rev-parse", "osqr/r1/t1") == before
    assert "osqr: the task's branch" in sh(repo, "reflog", "show", "osqr/r1/t1")
    assert run_async(gitlib.head(repo)) == sh(repo, "rev-parse", "HEAD")


def test_what_libgit2_cannot_read_falls_back_to_git(history, monkeypatch):
    repo, before, after = history
    monkeypatch.setattr(libgit, "open_repo", lambda path: None)
    assert run_async(gitlib.changed_files(repo, before, after)) == git_changes(repo, f"{before}...{after}")
    made = run_async(gitlib.commit_tree(repo, f"{after}^{{tree}}", [after], "by git"))
    assert sh(repo, "rev-parse", f"{made}^") == after
    assert libgit.changed(repo, before, after, False) is None and libgit.rev(repo, "HEAD") is None


def test_worktrees_at_one_tree_share_one_index_git_would_write(repo, tmp_path):
    """The second lazy worktree at a tree gets a copy of the first one's index: git sees the
    same clean, all-skip-worktree state it would have written itself."""
    async def make(name):
        path = tmp_path / "wt" / name
        await gitlib.add_lazy_worktree(repo, path, f"osqr/r/{name}", sh(repo, "rev-parse", "HEAD"))
        await gitlib.check_out_nothing(path)
        return path

    first, second = run_async(make("a")), run_async(make("b"))
    third = tmp_path / "wt" / "c"
    run_async(gitlib.add_lazy_worktree(repo, third, "osqr/r/c", sh(repo, "rev-parse", "HEAD")))
    gitlib._empty_indexes.clear()
    run_async(gitlib.check_out_nothing(third))                       # made by git itself
    index = [(p / ".git").read_text().split()[1] + "/index" for p in (first, second, third)]
    assert Path(index[1]).read_bytes() == Path(index[2]).read_bytes()
    for path in (second, third):
        assert sh(path, "status", "--porcelain") == ""
        assert set(line[0] for line in sh(path, "ls-files", "-v").splitlines()) == {"S"}
        assert not [p for p in path.iterdir() if p.name != ".git"]     # nothing checked out


def test_a_run_starts_git_only_for_what_needs_git(repo, tmp_path, monkeypatch):
    """Per task: the index update, the commit and the merge. Branches, commit objects, tips,
    diffs, marker checks and indexes are made in process (a fork costs ~1 ms of CPU)."""
    import osqr_nb
    from osqr_nb.models.base import Reply, ToolCall
    from osqr_nb.plan.task import Plan, Task

    shim, log = tmp_path / "bin", tmp_path / "git.log"
    shim.mkdir()
    real = subprocess.run(["which", "git"], capture_output=True, text=True).stdout.strip()
    (shim / "git").write_text(f'#!/bin/sh\necho x >> "{log}"\nexec "{real}" "$@"\n')
    (shim / "git").chmod((shim / "git").stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")

    class Writer:
        name = "writer"

        async def complete(self, system, messages, tools):
            task_id = next(line[4:] for line in messages[0]["content"].splitlines() if line.startswith("id: "))
            if len(messages) == 1:
                return Reply(tool_calls=[ToolCall("w", "write_file", {"path": f"out/{task_id}.txt",
                                                                      "content": task_id})])
            return Reply(tool_calls=[ToolCall("f", "finish", {"summary": task_id})])

    async def main(n):
        log.unlink(missing_ok=True)
        run = osqr_nb.start(plan=Plan([Task(f"t{i}", f"T{i}", "code") for i in range(n)]), repo=repo, tier=4,
                            max_parallel=4, model=Writer())
        await run
        assert run.status == "complete"
        merged = sh(repo, "ls-tree", "-r", "--name-only", f"osqr/{run.id}/integration", "out/").split()
        assert merged == sorted(f"out/t{i}.txt" for i in range(n))
        return len(log.read_text().splitlines())

    small, large = run_async(main(4)), run_async(main(24))
    assert (large - small) / 20 <= 3.05                      # add, commit, merge-tree


def test_ancestry_is_answered_as_git_answers_it(history):
    repo, before, after = history
    for ancestor, tip in [(before, after), (after, before), (after, after), ("HEAD", before)]:
        git_says = subprocess.run(["git", "merge-base", "--is-ancestor", ancestor, tip], cwd=repo).returncode == 0
        assert libgit.is_ancestor(repo, ancestor, tip) is git_says
        assert run_async(gitlib.is_merged(repo, ancestor, tip)) is git_says
    assert run_async(gitlib.rev_parse(repo, "HEAD~1")) == before


def test_a_repository_kept_open_sees_what_git_did_since(history, tmp_path):
    """Kept open between calls, libgit2 still sees commits and branches git made since, and a
    worktree removed and made again at the same folder on another branch."""
    repo, before, after = history
    assert libgit.rev(repo, "HEAD") == after
    (repo / "later.txt").write_text("later\n")
    sh(repo, "add", "-A")
    sh(repo, "commit", "-q", "-m", "later")
    sh(repo, "branch", "made-by-git", before)
    assert libgit.rev(repo, "HEAD") == sh(repo, "rev-parse", "HEAD") != after
    assert libgit.rev(repo, "made-by-git") == before
    folder = tmp_path / "wt" / "t1"
    run_async(gitlib.add_lazy_worktree(repo, folder, "osqr/r/one", before))
    assert libgit.rev(folder, "HEAD") == before
    run_async(gitlib.remove_worktree(repo, folder))
    run_async(gitlib.add_lazy_worktree(repo, folder, "osqr/r/two", after))
    assert libgit.rev(folder, "HEAD") == after
    sh(repo, "gc", "-q", "--prune=now")                  # loose objects and refs packed away
    assert libgit.rev(repo, "made-by-git") == before
    assert libgit.changed(repo, before, after, two_dot=True) == git_changes(repo, f"{before}..{after}")


def test_files_in_a_tree_are_those_git_lists(history):
    repo, before, after = history
    names = {"kept.txt", "sub", "sub/new.py", "gone.txt", "link", "nowhere/x.py"}
    listed = set(sh(repo, "ls-tree", "-r", "--name-only", after).split("\n"))
    assert libgit.files_in(repo, after, names) == listed & names == {"kept.txt", "sub/new.py", "link"}
    assert run_async(gitlib.files_in(repo, before, names)) == {"kept.txt", "gone.txt", "link"}


def test_the_index_tree_of_a_lazy_worktree_is_what_git_writes(repo, tmp_path):
    """A snapshot's tree, written in process from a worktree whose files are mostly never
    checked out (skip-worktree): the tree `git write-tree` writes, read after git's `add`."""
    path = tmp_path / "wt" / "snap"
    run_async(gitlib.add_lazy_worktree(repo, path, "osqr/r/snap", sh(repo, "rev-parse", "HEAD")))
    run_async(gitlib.check_out_nothing(path))
    assert libgit.index_tree(path) == sh(path, "write-tree") == sh(repo, "rev-parse", "HEAD^{tree}")
    (path / "deep" / "er").mkdir(parents=True)
    (path / "deep" / "er" / "new.py").write_text("x = 1\n")
    sh(path, "add", "-A", "--sparse")
    assert libgit.index_tree(path) == sh(path, "write-tree") != sh(repo, "rev-parse", "HEAD^{tree}")
