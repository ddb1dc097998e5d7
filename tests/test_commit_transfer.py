"""Commits travel between the kernel's repository and a worker's clone whole: as a git
bundle, or, for a few commits on top of what the other side holds, as their objects
(cluster/bundles.py). What arrives is checked, and git finds the history complete."""

import os
import subprocess
from pathlib import Path

import pytest

from osqr_nb.cluster import bundles
from osqr_nb.workspace import git as gitlib
from osqr_nb.workspace import libgit

from conftest import run_async


def sh(cwd: Path, *args: str, check: bool = True) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=check, capture_output=True, text=True,
                          env=gitlib._env()).stdout.strip()


def commit(repo: Path, message: str) -> str:
    sh(repo, "add", "-A")
    sh(repo, "commit", "-q", "-m", message)
    return sh(repo, "rev-parse", "HEAD")


@pytest.fixture
def sides(repo: Path, tmp_path: Path) -> tuple[Path, Path, str]:
    """The kernel's repository with deep folders at `base`, and a worker's bare clone holding `base`."""
    for i in range(3):
        (repo / "src" / "deep" / f"d{i}").mkdir(parents=True)
        (repo / "src" / "deep" / f"d{i}" / "m.py").write_text(f"x = {i}\n")
    (repo / "run.sh").write_text("echo hi\n")
    base = commit(repo, "base")
    clone = tmp_path / "clone.git"
    sh(tmp_path, "clone", "-q", "--bare", str(repo), str(clone))
    return repo, clone, base


def grow(repo: Path, base: str) -> str:
    """Commits on top of `base` that change every kind of thing a tree holds, and a merge."""
    sh(repo, "checkout", "-q", "-b", "side", base)
    (repo / "src" / "deep" / "d1" / "side.py").write_text("side = 1\n")
    commit(repo, "side")
    sh(repo, "checkout", "-q", "-b", "work", base)
    (repo / "src" / "deep" / "d0" / "m.py").write_text("x = 'changed'\n")        # deep modification
    (repo / "src" / "deep" / "d2" / "m.py").unlink()                               # a folder emptied
    (repo / "src" / "new" / "a" / "b").mkdir(parents=True)
    (repo / "src" / "new" / "a" / "b" / "c.txt").write_text("new folders\n")
    (repo / "run.sh").chmod(0o755)                                                 # mode only
    (repo / "link").symlink_to("run.sh")
    (repo / "copy.py").write_text("x = 0\n")                                       # a blob git has
    commit(repo, "work")
    sh(repo, "update-index", "--add", "--cacheinfo", f"160000,{base},vendored")     # a submodule
    sh(repo, "commit", "-q", "-m", "gitlink")
    sh(repo, "merge", "-q", "--no-edit", "side")
    return sh(repo, "rev-parse", "HEAD")


def test_a_few_commits_travel_as_objects_and_git_finds_them_whole(sides):
    repo, clone, base = sides
    tip = grow(repo, base)
    data = run_async(bundles.make(repo, "refs/heads/work", [base], loose=True))
    assert isinstance(data, bundles.Objects) and data.tip == tip and data.needs == [base]
    run_async(bundles.take(clone, data, "refs/heads/work", "refs/heads/got"))
    assert sh(clone, "rev-parse", "refs/heads/got") == tip
    done = subprocess.run(["git", "fsck", "--full", "--strict", "--no-dangling"], cwd=clone,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    wanted = sh(repo, "rev-list", "--objects", f"{base}..{tip}").split("\n")
    assert sh(clone, "rev-list", "--objects", f"{base}..{tip}").split("\n") == wanted
    sent = {oid for oid, _, _ in data.objects}
    assert sent >= {line.split()[0] for line in wanted}
    # beyond that, only what the clone holds at another path (copy.py's content, found by path)
    assert sent - {line.split()[0] for line in wanted} == {sh(repo, "rev-parse", f"{tip}:copy.py")}


def test_objects_are_not_stored_where_what_they_stand_on_is_missing(sides, tmp_path):
    repo, _, base = sides
    grow(repo, base)
    empty = tmp_path / "empty.git"
    sh(tmp_path, "init", "-q", "--bare", str(empty))
    data = run_async(bundles.make(repo, "refs/heads/work", [base], loose=True))
    assert run_async(bundles.unbundle(empty, data)) is False
    assert sh(empty, "count-objects", "-v").splitlines()[0] == "count: 0", "nothing written"
    with pytest.raises(gitlib.GitError, match="lacks"):
        run_async(bundles.take(empty, data, "refs/heads/work", "refs/heads/got"))


def test_an_object_changed_on_the_way_is_refused(sides):
    repo, clone, base = sides
    tip = grow(repo, base)
    data = run_async(bundles.make(repo, "refs/heads/work", [base], loose=True))
    oid, kind, raw = next(o for o in data.objects if o[1] == 3)     # a blob
    altered = bundles.Objects(data.tip, data.needs,
                              [(o, k, raw + b"evil\n" if o == oid else r) for o, k, r in data.objects])
    with pytest.raises(libgit.CorruptObject, match=oid):
        run_async(bundles.take(clone, altered, "refs/heads/work", "refs/heads/got"))
    assert sh(clone, "rev-parse", "-q", "--verify", "refs/heads/got", check=False) == ""
    assert tip not in libgit.has(clone, [tip])


def test_objects_that_name_an_object_neither_sent_nor_there_are_refused(sides):
    """As git's fetch checks that a pack connects: no ref is pointed at a history with a hole."""
    repo, clone, base = sides
    tip = grow(repo, base)
    data = run_async(bundles.make(repo, "refs/heads/work", [base], loose=True))
    dropped = next(oid for oid, kind, _ in data.objects if kind == 3 and not libgit.has(clone, [oid]))
    holed = bundles.Objects(data.tip, data.needs, [o for o in data.objects if o[0] != dropped])
    with pytest.raises(libgit.CorruptObject, match=f"names {dropped}, which neither arrived nor is here"):
        run_async(bundles.take(clone, holed, "refs/heads/work", "refs/heads/got"))
    assert sh(clone, "rev-parse", "-q", "--verify", "refs/heads/got", check=False) == ""
    run_async(bundles.take(clone, data, "refs/heads/work", "refs/heads/got"))     # sent whole, it lands
    assert sh(clone, "rev-parse", "refs/heads/got") == tip


def test_many_commits_or_large_files_travel_as_a_bundle(sides, monkeypatch):
    repo, clone, base = sides
    tip = grow(repo, base)
    monkeypatch.setattr(bundles, "LOOSE_COMMITS", 2)
    data = run_async(bundles.make(repo, "refs/heads/work", [base], loose=True))
    assert isinstance(data, bytes) and data.startswith(b"# v")            # git's bundle header
    monkeypatch.setattr(bundles, "LOOSE_COMMITS", 16)
    monkeypatch.setattr(bundles, "LOOSE_BYTES", 10)
    assert isinstance(run_async(bundles.make(repo, "refs/heads/work", [base], loose=True)), bytes)
    run_async(bundles.take(clone, data, "refs/heads/work", "refs/heads/got"))
    assert sh(clone, "rev-parse", "refs/heads/got") == tip


def test_nothing_new_is_nothing_to_send(sides):
    repo, clone, base = sides
    tip = grow(repo, base)
    assert run_async(bundles.make(repo, "refs/heads/work", [tip], loose=True)) is None
    assert run_async(bundles.make(repo, "refs/heads/work", [tip])) is None
    assert run_async(bundles.present(repo, [base, tip, "0" * 40])) == [base, tip]


def test_a_repository_libgit2_cannot_read_gets_bundles(sides, monkeypatch):
    repo, clone, base = sides
    grow(repo, base)
    monkeypatch.setattr(libgit, "open_repo", lambda path: None)
    assert run_async(bundles.reads_objects(clone)) is False
    assert isinstance(run_async(bundles.make(repo, "refs/heads/work", [base], loose=True)), bytes)
