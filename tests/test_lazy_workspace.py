"""A task's worktree brings files out of git when its tools need them, yet agents,
tools and commands always see the whole repository, and a save records exactly
what the task changed: never a file it did not bring out as deleted."""

import asyncio
import os
import time

import pytest

import osqr_nb
from osqr_nb.config import settings
from osqr_nb.plan.task import Plan, Task
from osqr_nb.workspace.task_workspace import LocalHost

from conftest import git, run_async

FILES = {"README.md": "# app\n", "app.py": "def main():\n    return 'hello'\n",
         "pkg/core.py": "VALUE = 42\n", "pkg/deep/util.py": "def helper():\n    return 'needle'\n",
         "docs/guide.md": "Read me.\n", "bin/run.sh": "#!/bin/sh\necho ran\n"}


@pytest.fixture
def project(tmp_path):
    path = tmp_path / "project"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    for name, text in FILES.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    os.chmod(path / "bin/run.sh", 0o755)
    os.symlink("pkg/core.py", path / "core_link.py")
    os.symlink("pkg/deep", path / "deep_link")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "base")
    return path


def on_disk(worktree):
    return sorted(p.relative_to(worktree).as_posix() for p in worktree.rglob("*")
                  if ".git" not in p.relative_to(worktree).parts and not p.is_dir())


def changes(repo, start, tip):
    return git(repo, "diff", "--name-status", "--no-renames", start, tip).split("\n")[:-1]


async def opened(project, task="t", host=None):
    host = host or LocalHost(project, "run1")
    workspace = host.make(task, f"osqr/run1/{task}", lambda *a, **k: None)
    start = git(project, "rev-parse", "HEAD").strip()
    await workspace.open(start, fresh=True)
    return workspace, start


def test_a_new_workspace_checks_nothing_out_and_a_read_brings_just_that_file(project):
    async def main():
        workspace, start = await opened(project)
        before = on_disk(workspace.path)
        untouched = await workspace.save("nothing done", "agent")
        assert untouched.commit == start
        text = await workspace.call("read_file", {"path": "pkg/core.py"})
        after = on_disk(workspace.path)
        saved = await workspace.save("nothing changed", "agent")
        return before, text, after, saved, start

    before, text, after, saved, start = run_async(main())
    assert before == []
    assert "VALUE = 42" in text
    assert after == ["pkg/core.py"]
    assert saved.commit == start                 # reading is not a change, and no file counts as deleted


def test_a_save_records_the_edit_and_the_new_file_and_nothing_else(project):
    async def main():
        workspace, start = await opened(project)
        await workspace.call("edit_file", {"path": "app.py", "old": "'hello'", "new": "'hi'"})
        await workspace.call("write_file", {"path": "pkg/new.py", "content": "NEW = 1\n"})
        await workspace.call("write_file", {"path": "docs/guide.md", "content": "Rewritten.\n"})
        saved = await workspace.save("work", "agent")
        return start, saved

    start, saved = run_async(main())
    assert sorted(changes(project, start, saved.commit)) == ["A\tpkg/new.py", "M\tapp.py", "M\tdocs/guide.md"]
    assert git(project, "show", f"{saved.commit}:app.py") == "def main():\n    return 'hi'\n"
    assert git(project, "show", f"{saved.commit}:pkg/core.py") == "VALUE = 42\n"    # never brought out


def test_listing_and_searching_see_files_never_brought_out(project):
    async def main():
        workspace, _ = await opened(project)
        listing = await workspace.call("list_files", {"path": "."})
        found = await workspace.call("search", {"pattern": "needle"})
        regex = await workspace.call("search", {"pattern": "VAL.E", "regex": True, "path": "pkg"})
        return listing, found, regex

    listing, found, regex = run_async(main())
    for name in ("app.py", "pkg/core.py", "pkg/deep/util.py", "docs/guide.md"):
        assert name.rsplit("/", 1)[-1] in listing
    assert "pkg/deep/util.py:2" in found
    assert "pkg/core.py:1" in regex


def test_symbolic_links_are_followed_to_files_still_in_the_index(project):
    async def main():
        workspace, _ = await opened(project)
        through_file = await workspace.call("read_file", {"path": "core_link.py"})
        through_folder = await workspace.call("read_file", {"path": "deep_link/util.py"})
        return through_file, through_folder

    through_file, through_folder = run_async(main())
    assert "VALUE = 42" in through_file
    assert "needle" in through_folder


def test_a_command_sees_the_whole_repository_as_a_normal_worktree(project):
    async def main():
        workspace, start = await opened(project)
        await workspace.call("write_file", {"path": "extra.txt", "content": "x\n"})
        result = await workspace.run_command(
            "sh bin/run.sh && cat pkg/deep/util.py && test -x bin/run.sh && echo executable "
            "&& git status --porcelain", 30)
        saved = await workspace.save("work", "agent")
        return start, result, saved

    start, result, saved = run_async(main())
    assert result.exit_code == 0, result.text()
    assert "ran" in result.output and "needle" in result.output and "executable" in result.output
    assert result.output.strip().endswith("?? extra.txt")      # git sees no deletion and no change
    assert changes(project, start, saved.commit) == ["A\textra.txt"]


def test_a_file_a_command_deletes_is_recorded_as_deleted(project):
    async def main():
        workspace, start = await opened(project)
        await workspace.run_command("rm docs/guide.md", 30)
        return start, await workspace.save("work", "agent")

    start, saved = run_async(main())
    assert changes(project, start, saved.commit) == ["D\tdocs/guide.md"]


def test_an_edit_a_crash_left_unsaved_is_kept_when_the_task_resumes(project):
    """A file brought out and changed keeps its skip-worktree bit until a save; a kill in
    between must not make git overlook the change."""
    async def crash():
        workspace, start = await opened(project)
        await workspace.call("write_file", {"path": "pkg/core.py", "content": "VALUE = 7\n"})
        return workspace.path, start           # killed here: no save

    async def resume():
        workspace = LocalHost(project, "run1").make("t", "osqr/run1/t", lambda *a, **k: None)
        notes = await workspace.open(start, fresh=False)
        return notes, await workspace.save("resumed", "agent")

    path, start = run_async(crash())
    assert "S pkg/core.py" in git(path, "ls-files", "-v")    # what the kill left
    notes, saved = run_async(resume())
    assert changes(project, start, saved.commit) == ["M\tpkg/core.py"]


def test_moving_forward_to_an_inputs_commit_shows_its_files_and_loses_nothing(project):
    async def main():
        workspace, start = await opened(project)
        await workspace.call("write_file", {"path": "mine.txt", "content": "mine\n"})
        await workspace.call("read_file", {"path": "app.py"})
        mine = await workspace.save("mine", "agent")
        other = project.parent / "other"
        git(project, "worktree", "add", "-q", "-b", "input", str(other), mine.commit)
        (other / "app.py").write_text("def main():\n    return 'from input'\n")   # brought out here
        (other / "pkg/core.py").write_text("VALUE = 0\n")                         # not brought out here
        git(other, "commit", "-q", "-am", "input")
        moved_to = git(other, "rev-parse", "HEAD").strip()
        await workspace.advance(moved_to)
        app = await workspace.call("read_file", {"path": "app.py"})
        core = await workspace.call("read_file", {"path": "pkg/core.py"})
        await workspace.call("edit_file", {"path": "pkg/core.py", "old": "0", "new": "1"})
        after = await workspace.save("after", "agent")
        return moved_to, app, core, after

    moved_to, app, core, after = run_async(main())
    assert "from input" in app and "VALUE = 0" in core
    assert changes(project, moved_to, after.commit) == ["M\tpkg/core.py"]


def test_a_whole_run_commits_only_what_its_agents_wrote(project):
    """Four tasks on a repository with files no agent touched: the integration branch has
    every file of the base, unchanged, plus the four new ones."""
    from test_run_git import ListModel, finish

    scripts = {f"t{i}": [("write_file", {"path": f"out/t{i}.txt", "content": f"t{i}"}), finish()]
               for i in range(4)}
    plan = Plan([Task(f"t{i}", f"T{i}", "code") for i in range(4)])

    async def main():
        run = osqr_nb.start(plan=plan, repo=project, tier=4, model=ListModel(scripts))
        await run
        return run

    run = run_async(main())
    assert run.status == "complete"
    base = git(project, "rev-parse", "main").strip()
    assert sorted(changes(project, base, f"osqr/{run.id}/integration")) == [f"A\tout/t{i}.txt" for i in range(4)]
    assert not (project / ".osqr" / "worktrees" / run.id / "t0").exists()


def test_a_kept_worktree_holds_every_file(project, monkeypatch):
    from test_run_git import ListModel, finish

    plan = Plan([Task("t", "T", "code")])
    monkeypatch.setattr(settings(), "keep_worktrees", True)

    async def main():
        run = osqr_nb.start(plan=plan, repo=project, tier=4,
                            model=ListModel({"t": [("write_file", {"path": "x.txt", "content": "x"}), finish()]}))
        await run
        return run

    run = run_async(main())
    kept = project / ".osqr" / "worktrees" / run.id / "t"
    assert set(FILES) | {"x.txt", "core_link.py"} <= set(on_disk(kept))
    assert git(kept, "status", "--porcelain") == ""


def test_a_kill_between_making_the_worktree_and_filling_its_index_loses_no_file(project):
    """`git worktree add --no-checkout` leaves no index; were a save to run on that, every
    file would count as deleted. A resumed task fills the index first."""
    path = project / ".osqr" / "worktrees" / "run1" / "t"
    path.parent.mkdir(parents=True)
    start = git(project, "rev-parse", "HEAD").strip()
    git(project, "worktree", "add", "-q", "--no-checkout", "-b", "osqr/run1/t", str(path), start)  # killed here

    async def resume():
        workspace = LocalHost(project, "run1").make("t", "osqr/run1/t", lambda *a, **k: None)
        await workspace.open(start, fresh=False)
        await workspace.call("write_file", {"path": "new.txt", "content": "n\n"})
        return await workspace.save("resumed", "agent")

    saved = run_async(resume())
    assert changes(project, start, saved.commit) == ["A\tnew.txt"]


def test_tasks_starting_together_each_get_a_whole_worktree(project):
    """Twenty workspaces opened at once on one repository, with no lock: two `git worktree
    add` at once fail, so the workspace makes its worktree's admin folder whole and moves
    it into place; git sees each as a worktree of its own, and none once they are closed."""
    async def main():
        host = LocalHost(project, "run1")
        opened_all = await asyncio.gather(*[opened(project, f"t{i}", host) for i in range(20)])
        texts = await asyncio.gather(*[w.call("read_file", {"path": "app.py"}) for w, _ in opened_all])
        listed = git(project, "worktree", "list", "--porcelain")
        await asyncio.gather(*[w.close() for w, _ in opened_all])
        return texts, listed

    texts, listed = run_async(main())
    assert all("hello" in text for text in texts)
    for i in range(20):     # git knows each one, on its branch
        assert f"worktree {project}/.osqr/worktrees/run1/t{i}\nHEAD " in listed
        assert f"branch refs/heads/osqr/run1/t{i}\n" in listed
    git(project, "worktree", "prune")
    assert git(project, "worktree", "list", "--porcelain").count("worktree ") == 1    # all gone again


def test_admin_folders_a_kill_left_half_written_are_cleared_by_the_next_run(project):
    from test_run_git import ListModel, finish

    staging = project / ".git" / "osqr-staging"
    old, new = staging / "left-by-a-kill", staging / "being-written-now"
    for folder in (old, new):
        folder.mkdir(parents=True)
        (folder / "HEAD").write_text("ref: refs/heads/x\n")
    os.utime(old, (time.time() - 7200, time.time() - 7200))

    async def main():
        run = osqr_nb.start(plan=Plan([Task("t", "T", "code")]), repo=project, tier=4,
                            model=ListModel({"t": [finish()]}))
        await run
        return run

    assert run_async(main()).status == "complete"
    assert not old.exists() and new.exists()
