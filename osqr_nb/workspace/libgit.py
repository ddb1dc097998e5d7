"""The small git calls a task makes, in process, through libgit2 (pygit2).

A git process costs about 1.2 ms of CPU, and a run of a thousand tasks started
ten per task: half of them only to write a commit object for a tree git already
wrote, point a branch at a commit, read a branch's tip, list the files two
commits differ in, or look for conflict markers in a few files. libgit2 does
each of those in 10-80 µs, with no fork, so they run right on the caller's
thread. Every function here answers None when libgit2 cannot do the job (a
repository it cannot read, such as one whose refs are in reftable, or a name it
does not know), and the caller then runs git as before: git stays the
authority, this is a shortcut.

Repositories are kept open per thread (see `open_repo`).
"""

from __future__ import annotations

import functools
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

T = TypeVar("T")

MARKERS = re.compile(rb"^(<<<<<<<|>>>>>>>) ", re.MULTILINE)    # as merge.py's `git grep -E` looks
pygit2: Any = None                  # imported at first use: 40 ms that `%load_ext` need not wait for
_FAILURES: tuple[type[BaseException], ...] = (KeyError, ValueError, TypeError, OSError)
KEPT_OPEN = 8                       # repositories kept open per thread
_kept = threading.local()           # a Repository is never shared between threads


def open_repo(path: str | Path) -> "Any | None":
    """The repository (or worktree) at `path`, or None where libgit2 cannot read it.

    Kept open per thread (opening costs 35-180 µs, a tenth of a run's Python CPU when
    every call opened its own): nothing in it goes stale, since libgit2 reads refs and
    HEAD from disk at each lookup and looks again for objects it does not find; one
    whose git directory is gone (a removed worktree) is opened afresh."""
    global pygit2, _FAILURES
    if pygit2 is None:
        try:
            import pygit2 as module
        except ImportError:          # a dependency, but git alone still does every job
            return None
        pygit2, _FAILURES = module, _FAILURES + (module.GitError,)
    kept: dict[str, Any] = _kept.__dict__.setdefault("repos", {})
    key = str(path)
    repo = kept.pop(key, None)
    if repo is None or not os.path.isdir(repo.path):
        try:
            repo = pygit2.Repository(key, pygit2.enums.RepositoryOpenFlag.NO_SEARCH)
        except _FAILURES:
            return None
    kept[key] = repo                                  # the most recently used last
    if len(kept) > KEPT_OPEN:
        del kept[next(iter(kept))]
    return repo


def _in_libgit2(answer: Callable[..., T]) -> Callable[..., T | None]:
    """`answer(repo, ...)` called as `answer(path, ...)`: None where libgit2 cannot open the
    repository at `path` or cannot answer (the caller then asks git)."""
    @functools.wraps(answer)
    def asked(path: str | Path, *args: Any, **kwargs: Any) -> T | None:
        repo = open_repo(path)
        if repo is None:
            return None
        try:
            return answer(repo, *args, **kwargs)
        except _FAILURES:
            return None
    return asked


def _entries(repo: Any, tree: str, names: Any) -> Any:
    """(name, object) for each of `names` present in `tree` (a tree, or what peels to one)."""
    root = repo.revparse_single(tree).peel(pygit2.Tree)
    for name in names:
        try:
            yield name, root[name]
        except KeyError:
            continue


def _commit(repo: Any, spec: str) -> Any:
    return repo.revparse_single(spec).peel(pygit2.Commit)


@_in_libgit2
def rev(repo: Any, spec: str) -> str | None:
    """The commit `spec` names (`HEAD`, a branch, an id), as `git rev-parse spec^{commit}`."""
    return str(_commit(repo, spec).id)


@_in_libgit2
def files_in(repo: Any, rev: str, names: "set[str] | list[str]") -> set[str] | None:
    """Which of `names` are files (not folders) in `rev`'s tree, as `git ls-tree -r` would list
    them, without listing the whole tree."""
    return {name for name, entry in _entries(repo, rev, names) if entry.type != pygit2.enums.ObjectType.TREE}


@_in_libgit2
def is_ancestor(repo: Any, ancestor: str, tip: str) -> bool | None:
    """Whether `ancestor` is `tip` or in its history, as `git merge-base --is-ancestor`."""
    old, new = _commit(repo, ancestor).id, _commit(repo, tip).id
    return old == new or repo.descendant_of(new, old)


@_in_libgit2
def tree(repo: Any, spec: str) -> str | None:
    """The tree `spec` names or peels to (`HEAD`, a commit, a tree), as `git rev-parse spec^{tree}`."""
    return str(repo.revparse_single(spec).peel(pygit2.Tree).id)


@_in_libgit2
def commit_tree(repo: Any, tree: str, parents: list[str], message: str,
                author: tuple[str, str], committer: tuple[str, str]) -> str | None:
    """A commit of `tree` (a tree, or anything that peels to one) with `parents`, written to
    the object store and referenced by nothing yet, as `git commit-tree` writes it."""
    tree_id = repo.revparse_single(tree).peel(pygit2.Tree).id
    parent_ids = list(dict.fromkeys(_commit(repo, p).id for p in parents))   # git drops a repeated parent
    now = time.localtime()
    sign = [pygit2.Signature(name, email, int(time.mktime(now)), now.tm_gmtoff // 60)
            for name, email in (author, committer)]
    text = message if message.endswith("\n") else message + "\n"
    return str(repo.create_commit(None, sign[0], sign[1], text, tree_id, parent_ids))


@_in_libgit2
def set_ref(repo: Any, ref: str, target: str, message: str) -> bool:
    """Point `ref` (refs/heads/...) at the commit `target`, made or moved; False if not done."""
    repo.create_reference_direct(ref, _commit(repo, target).id, True, message=message)
    return True


@_in_libgit2
def changed(repo: Any, base: str, tip: str, two_dot: bool) -> dict[str, str] | None:
    """{file: A, M, D or T} as `git diff --name-status --no-renames base...tip` (two_dot:
    `base..tip`); None where there is no merge base to measure from."""
    new = _commit(repo, tip)
    old = _commit(repo, base)
    if not two_dot:
        start = repo.merge_base(old.id, new.id)
        if start is None:
            return None
        old = repo[start]
    diff = old.tree.diff_to_tree(new.tree, flags=pygit2.enums.DiffOption.INCLUDE_TYPECHANGE)
    return {delta.new_file.path: delta.status_char() for delta in diff.deltas}


@_in_libgit2
def with_markers(repo: Any, tree: str, names: list[str]) -> set[str] | None:
    """Which of `names` in `tree` hold a conflict marker at a line's start; binary files never."""
    found = set()
    for name, blob in _entries(repo, tree, names):
        if blob.type == pygit2.enums.ObjectType.BLOB:
            data = blob.data
            if b"\0" not in data[:8000] and MARKERS.search(data):   # git's rule for binary: a NUL early on
                found.add(name)
    return found


@_in_libgit2
def has(repo: Any, commits: list[str]) -> list[str] | None:
    """Which of `commits` (full ids) the repository holds, as `git cat-file --batch-check`."""
    return [c for c in commits if pygit2.Oid(hex=c) in repo.odb]


@_in_libgit2
def delete_ref(repo: Any, ref: str) -> bool:
    """Remove `ref` if it is there, as `git update-ref -d`; False if not done."""
    found = repo.references.get(ref)
    if found is not None:
        found.delete()
    return True


@_in_libgit2
def objects_since(repo: Any, ref: str, haves: list[str], max_commits: int,
                  max_bytes: int) -> "tuple[str, list[str], list[tuple[str, int, bytes]]] | None":
    """What a repository holding `haves` (and everything they reach) lacks of `ref`: its tip,
    the commits the new ones stand on (which the other side must hold), and the new objects
    as (id, type, raw data). None past `max_commits` or `max_bytes`, where a pack travels better.

    A few commits' worth (a task's turn, its save) is the commits, and the trees and blobs
    each commit's tree does not share with its parents' at the same path: everything else is
    on the other side already, since a parent is either sent or reached by a have.
    """
    tip = _commit(repo, ref).id
    walker = repo.walk(tip, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE)
    for have in haves:
        walker.hide(pygit2.Oid(hex=have))
    commits = []
    for commit in walker:
        commits.append(commit)
        if len(commits) > max_commits:
            return None
    new = {c.id for c in commits}
    needs = list(dict.fromkeys(str(p) for c in commits for p in c.parent_ids if p not in new))
    out: list[tuple[str, int, bytes]] = []
    sent: set[Any] = set()
    budget = [max_bytes]
    for commit in commits:
        parents = [repo[p].tree for p in commit.parent_ids]
        if not _new_in_tree(repo, commit.tree, parents, sent, out, budget):
            return None
        out.append(_raw(repo, commit.id))
    return str(tip), needs, out


def _new_in_tree(repo: Any, tree: Any, olds: list[Any], sent: set[Any], out: list, budget: list[int]) -> bool:
    """Add to `out` the objects of `tree` that none of `olds` holds at the same path (trees
    before the tree that names them, so every object's parts come first); False over budget."""
    if tree.id in sent or any(old.id == tree.id for old in olds):
        return True
    for entry in tree:
        if entry.id in sent or entry.type == pygit2.enums.ObjectType.COMMIT:    # a submodule: nothing
            continue
        there = [old[entry.name] for old in olds if entry.name in old]
        if any(old.id == entry.id for old in there):
            continue
        if entry.type == pygit2.enums.ObjectType.TREE:
            if not _new_in_tree(repo, repo[entry.id], [o for o in there if o.type == entry.type], sent, out, budget):
                return False
        else:
            sent.add(entry.id)
            out.append(_raw(repo, entry.id))
            budget[0] -= len(out[-1][2])
            if budget[0] < 0:
                return False
    sent.add(tree.id)
    out.append(_raw(repo, tree.id))
    return True


def _raw(repo: Any, oid: Any) -> tuple[str, int, bytes]:
    kind, data = repo.odb.read(oid)
    return str(oid), int(kind), bytes(data)


@_in_libgit2
def store_objects(repo: Any, needs: list[str], objects: list[tuple[str, int, bytes]]) -> bool | None:
    """Write `objects` (from `objects_since`) into the repository; False, writing nothing, when
    it lacks one of the commits they stand on. What arrives from another machine is checked
    as git's fetch checks a pack: an object whose content does not hash to its id, or one
    that names an object neither sent nor here, is refused (CorruptObject), and the caller
    then points no ref at it."""
    odb = repo.odb
    if any(pygit2.Oid(hex=c) not in odb for c in needs):
        return False
    for oid, kind, data in objects:
        if str(odb.write(kind, data)) != oid:
            raise CorruptObject(f"object {oid} arrived with content that hashes to something else")
    for oid, kind, _ in objects:
        for named in _names(repo, oid, kind):
            if named not in odb:
                raise CorruptObject(f"object {oid} names {named}, which neither arrived nor is here")
    return True


def _names(repo: Any, oid: str, kind: int) -> list[Any]:
    """The objects a commit or a tree names (a tree's submodule entries name other repositories)."""
    if kind == pygit2.enums.ObjectType.COMMIT:
        commit = repo[oid]
        return [commit.tree_id, *commit.parent_ids]
    if kind == pygit2.enums.ObjectType.TREE:
        return [entry.id for entry in repo[oid] if entry.type != pygit2.enums.ObjectType.COMMIT]
    return []


class CorruptObject(Exception):
    """Objects that arrived are not a sound history: one's content is not what its id says, or one
    names an object that is missing. Not among the failures that fall back to git: git would
    refuse them too."""


@_in_libgit2
def index_tree(repo: Any) -> str | None:
    """The tree of the index as it is on disk now, written to the object store (`git write-tree`)."""
    index = repo.index
    index.read(True)                 # git may have written it since this repository was opened
    return str(index.write_tree())
