"""Git repositories, branches and worktrees, through git's own command line.

Checks that must answer before a cell returns (is this a repository?) run
synchronously and take milliseconds; everything else is a subprocess awaited on
the event loop, so git never blocks the kernel. The small calls a task makes
(a branch, a commit object, a tip, a diff's file list) go through libgit2 in
process instead (libgit.py), falling back to git where libgit2 cannot. The user's working tree and
current branch are never touched: agents work in worktrees under `.osqr/`.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from ..agents.secrets import looks_secret
from ..models.errors import KEY_VARIABLES
from . import libgit

T = TypeVar("T")
AGENT_IDENTITY = {
    "GIT_AUTHOR_NAME": "osqr-nb agent",
    "GIT_AUTHOR_EMAIL": "agent@osqr-nb.invalid",
    "GIT_COMMITTER_NAME": "osqr-nb",
    "GIT_COMMITTER_EMAIL": "agent@osqr-nb.invalid",
}


class RepoError(ValueError):
    """The repository cannot be used; the message says why and what to do."""


class GitError(RuntimeError):
    def __init__(self, args: tuple[str, ...], code: int, output: str) -> None:
        self.code = code
        self.output = output
        super().__init__(f"git {' '.join(args)} failed ({code}): {output.strip()[-2000:]}")


@dataclass
class RepoInfo:
    root: Path
    head: str
    branch: str | None
    uncommitted: list[str] = field(default_factory=list)

    @property
    def warning(self) -> str | None:
        if not self.uncommitted:
            return None
        shown = ", ".join(self.uncommitted[:5]) + (" ..." if len(self.uncommitted) > 5 else "")
        return (f"{len(self.uncommitted)} uncommitted change(s) in {self.root} ({shown}). "
                f"Agents start from the last commit ({self.head[:8]}) and will not see them; "
                "commit first if they should. Your working tree is left as it is.")


# The orchestrator's own git runs no hook of the repository's (an agent, or a user's failing
# post-checkout, must not run code with the kernel's environment or fail a run) and no
# command that config in a worktree could name (fsmonitor); it never asks anything.
SAFE_CONFIG = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false",
               "-c", "core.quotePath=false", "-c", "advice.detachedHead=false")
MERGING = "OSQR_MERGING"     # in a worktree's git dir: the commit a merge in progress started from


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The kernel's environment less anything secret: whatever a worktree's files or config
    could make git run (a filter, a textconv) never sees a key."""
    env = {k: v for k, v in os.environ.items() if not looks_secret(k) and k not in KEY_VARIABLES.values()}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_EDITOR="true", LC_ALL="C")
    env.update(AGENT_IDENTITY)
    env.update(extra or {})
    return env


def git_sync(cwd: str | Path, *args: str) -> str:
    done = subprocess.run(["git", *SAFE_CONFIG, *args], cwd=cwd, env=_env(), capture_output=True, text=True)
    if done.returncode:
        raise GitError(args, done.returncode, done.stderr + done.stdout)
    return done.stdout


async def git(cwd: str | Path, *args: str, check: bool = True,
              env: dict[str, str] | None = None, stderr: bool = True,
              input: bytes | None = None) -> tuple[int, str]:
    """Run git off the event loop; returns (exit code, stdout+stderr, or stdout alone).

    The process is started and awaited in one of `git_threads()`: a fork from a big
    kernel process costs a millisecond or more, which on the loop every agent and
    every click would wait for; asyncio's own subprocesses also start a watcher thread
    each. A cancelled call kills its process and waits for it: no git is left behind.
    """
    code, out = await _git_bytes(cwd, *args, env=env, stderr=stderr, input=input)
    text = out.decode(errors="replace")
    if check and code:
        raise GitError(args, code, text)
    return code, text


async def _git_bytes(cwd: str | Path, *args: str, env: dict[str, str] | None = None, stderr: bool = False,
                     input: bytes | None = None) -> tuple[int, bytes]:
    child = _GitChild(cwd, args, env, stderr, input)
    future = asyncio.get_running_loop().run_in_executor(git_threads(), child.run)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        child.kill()
        await asyncio.shield(future)
        raise


class _GitChild:
    """One git process, run to its end in a thread; `kill` may come from the loop at any time."""

    def __init__(self, cwd: str | Path, args: tuple[str, ...], env: dict[str, str] | None,
                 stderr: bool, input: bytes | None) -> None:
        self.cwd, self.args, self.env, self.stderr, self.input = str(cwd), args, env, stderr, input
        self.killed = False
        self.process: subprocess.Popen[bytes] | None = None

    def run(self) -> tuple[int, bytes]:
        if self.killed:
            return -9, b""
        self.process = subprocess.Popen(
            ["git", *SAFE_CONFIG, *self.args], cwd=self.cwd, env=_env(self.env),
            stdin=subprocess.PIPE if self.input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT if self.stderr else subprocess.DEVNULL,
            process_group=0)              # its own group: a kill reaches what git started too
        if self.killed:                   # killed between the check above and the start
            self.kill()
        out, _ = self.process.communicate(self.input)
        return self.process.returncode, out

    def kill(self) -> None:
        """Kill git and whatever it started (a filter, an alias's shell): those hold its output
        open, and a kill of git alone would leave them running and this call waiting on them."""
        self.killed = True
        if self.process is not None and self.process.returncode is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


GIT_THREADS = 16     # git processes running at once; each thread only waits on its process
GIT_NICENESS = 10    # git yields the CPU to the kernel's loop: clicks and cells before merges
_git_pool: ThreadPoolExecutor | None = None


def git_threads() -> ThreadPoolExecutor:
    global _git_pool
    if _git_pool is None:
        _git_pool = ThreadPoolExecutor(GIT_THREADS, "osqr-git", initializer=_yield_to_the_kernel)
    return _git_pool


async def off_the_loop(function: Callable[..., T], *args: Any) -> T:
    """`function(*args)` in one of `libgit_threads()`: libgit2's work, which on the loop would
    hold it for 0.1-0.8 ms a call, and for as long as it takes for what grows with the
    repository (a diff, a scan)."""
    return await asyncio.get_running_loop().run_in_executor(libgit_threads(), functools.partial(function, *args))


LIBGIT_THREADS = 4   # libgit2 calls at once
_libgit_pool: ThreadPoolExecutor | None = None


def libgit_threads() -> ThreadPoolExecutor:
    """Threads at the kernel's own priority, unlike git's: pygit2 holds the GIL through much of
    its work, files written included (an object, a ref and its reflog), and a thread at nice 10
    that a busy machine stops while it holds the GIL stops the kernel's loop with it (a
    1,000-task run on a cluster: 4.7 s of the GIL held in such calls, loop p99 100-160 ms)."""
    global _libgit_pool
    if _libgit_pool is None:
        _libgit_pool = ThreadPoolExecutor(LIBGIT_THREADS, "osqr-libgit")
    return _libgit_pool


def _yield_to_the_kernel() -> None:
    """Lower this thread's priority, and so that of every git it starts (Linux keeps a nice
    value per thread, and a child inherits its parent thread's): on a busy machine the
    kernel's event loop then gets a core before git does. Elsewhere a no-op."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), GIT_NICENESS)
    except (AttributeError, OSError):
        pass


_version: tuple[int, ...] | None = None


async def version() -> tuple[int, ...]:
    """git's version, e.g. (2, 39, 5): newer options are used where they exist."""
    global _version
    if _version is None:
        _, out = await git(".", "--version", stderr=False)
        _version = tuple(int(n) for n in re.findall(r"\d+", out.split()[2])[:3]) if len(out.split()) > 2 else (0,)
    return _version


def inspect_repo(path: str | Path) -> RepoInfo:
    """Validate `path` as a git repository with at least one commit."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise RepoError(f"--repo {path}: no such directory")
    try:
        root = Path(git_sync(path, "rev-parse", "--show-toplevel").strip())
    except GitError:
        raise RepoError(f"--repo {path} is not a git repository; run `git init` there and "
                        "commit your code, or point --repo at a repository") from None
    try:
        head = git_sync(root, "rev-parse", "--verify", "HEAD^{commit}").strip()
    except GitError:
        raise RepoError(f"the repository {root} has no commit yet; agents start from a commit, "
                        "so commit something first (e.g. `git commit --allow-empty -m init`)") from None
    branch = git_sync(root, "rev-parse", "--abbrev-ref", "HEAD").strip()
    status = git_sync(root, "status", "--porcelain", "-z")
    uncommitted = [entry[3:] for entry in _porcelain_entries(status)
                   if entry[3:] and not entry[3:].startswith(".osqr")]
    return RepoInfo(root, head, None if branch == "HEAD" else branch, uncommitted)


def exclude_osqr_dir(root: Path) -> None:
    """Keep `.osqr/` (log, worktrees) out of `git status` without touching tracked files."""
    common = Path(git_sync(root, "rev-parse", "--git-common-dir").strip())
    exclude = (root / common if not common.is_absolute() else common) / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    text = exclude.read_text() if exclude.exists() else ""
    if ".osqr/" not in text.split():
        exclude.write_text(text + ("" if text.endswith("\n") or not text else "\n") + ".osqr/\n")


def _porcelain_entries(status: str) -> list[str]:
    """`git status --porcelain -z` entries ("XY path"); a rename's original path is dropped."""
    parts, entries = status.split("\0"), []
    index = 0
    while index < len(parts):
        entry = parts[index]
        if entry:
            entries.append(entry)
            if entry[:1] in ("R", "C"):
                index += 1
        index += 1
    return entries


async def branch_exists(root: Path, branch: str) -> bool:
    code, _ = await git(root, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False)
    return code == 0


async def add_worktree(root: Path, path: Path, branch: str, base: str, fresh: bool = False,
                       lazy: bool = False) -> list[str]:
    """Create (or, after a restart, repair and reuse) the worktree at `path` on `branch`;
    returns what was repaired.

    `fresh`: nothing in the folder or on the branch is worth keeping (no agent has worked
    there yet), so the folder is made again and the branch reset to `base`: a checkout a
    crash cut short would otherwise show its missing files as deletions. One git process
    in the usual case.

    `lazy`: nothing is checked out, and the worktree has no index yet: the caller
    fills it with `check_out_nothing`, which needs no lock.
    """
    if fresh and path.exists():
        await asyncio.to_thread(shutil.rmtree, path, True)
    if (path / ".git").exists():
        return await repair_worktree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    how = ["--no-checkout"] if lazy else []
    code, out = await git(root, "worktree", "add", "-q", *how, "-B" if fresh else "-b", branch, str(path), base,
                          check=False)
    notes: list[str] = []
    if code and ("already exists" in out or "already checked out" in out or "already used by worktree" in out) \
            and await branch_exists(root, branch):
        await _forget_worktree(root, path)
        flag = ["-B", branch] if fresh else ["-f"]
        await git(root, "worktree", "add", "-q", *how, "-f", *flag, str(path), base if fresh else branch)
        notes = ["checked the branch out again: its worktree was gone"] if not fresh else []
    elif code:
        raise GitError(("worktree", "add", "-b", branch, str(path), base), code, out)
    return notes


async def add_lazy_worktree(root: Path, path: Path, branch: str, start: str) -> None:
    """A new worktree at `path` on `branch`, reset to `start`, with nothing checked out and no
    index yet (`check_out_nothing` fills it): what `git worktree add --no-checkout -B` makes.

    Made as git makes one (gitrepository-layout: `worktrees/<id>/` holding HEAD, commondir
    and gitdir; a `.git` file in the folder naming it) with one git process for the branch
    instead of `worktree add`'s three, and its admin folder moved into place whole: two
    `git worktree add` at once fail reading each other's half-made admin folders, so those
    need a lock, and this does not.
    """
    common = await common_dir(root)
    await set_ref(root, f"refs/heads/{branch}", start, "osqr: the task's branch")
    await asyncio.to_thread(_write_worktree, common, path, branch)


def _write_worktree(common: Path, path: Path, branch: str) -> None:
    worktrees = common / "worktrees"
    staging = common / "osqr-staging" / uuid.uuid4().hex
    staging.mkdir(parents=True)
    (staging / "HEAD").write_text(f"ref: refs/heads/{branch}\n")
    (staging / "commondir").write_text("../..\n")
    (staging / "gitdir").write_text(f"{path}/.git\n")
    worktrees.mkdir(exist_ok=True)
    for number in range(1000):
        admin = worktrees / (f"{path.parent.name}-{path.name}" + (f"-{number}" if number else ""))
        if admin.exists() and _names(admin, path):
            _delete_admin(common, admin)                  # a stale one of this very folder
        path.mkdir(parents=True, exist_ok=True)
        (path / ".git").write_text(f"gitdir: {admin}\n")
        try:
            os.rename(staging, admin)                     # whole, or not at all
            return
        except OSError:                                   # the name is another worktree's
            continue
    raise GitError(("worktree", "add"), 1, f"no free name for {path} under {worktrees}")


def _names(admin: Path, path: Path) -> bool:
    try:
        return (admin / "gitdir").read_text().strip() == f"{path}/.git"
    except OSError:
        return False


def _delete_admin(common: Path, admin: Path) -> None:
    """Move a worktree's admin folder out of `worktrees/` at once, then delete it: git never
    reads one half gone."""
    trash = common / "osqr-staging" / uuid.uuid4().hex
    trash.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(admin, trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


STAGING_KEPT_SECONDS = 3600    # a younger folder there may be another kernel's, being written now


def clear_staging(common: Path) -> None:
    """Delete what a kill left in `osqr-staging/`: admin folders never moved into place, or
    moved out and not yet deleted."""
    staging = common / "osqr-staging"
    if not staging.is_dir():
        return
    old = time.time() - STAGING_KEPT_SECONDS
    for entry in staging.iterdir():
        try:
            if entry.lstat().st_mtime < old:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue


_common_dirs: dict[Path, Path] = {}


async def common_dir(root: Path) -> Path:
    """The repository's git directory shared by its worktrees (`.git`), asked once."""
    if root not in _common_dirs:
        _, out = await git(root, "rev-parse", "--git-common-dir", stderr=False)
        common = Path(out.strip())
        _common_dirs[root] = (common if common.is_absolute() else root / common).resolve()
    return _common_dirs[root]


async def check_out_nothing(path: Path) -> None:
    """Fill a `--no-checkout` worktree's index from its HEAD, every entry skip-worktree.

    One git process: read-tree applies a sparse pattern given for this call only, so
    neither the repository's config nor the worktree's is left in sparse mode. The
    index appears at once (git renames it into place), so a worktree without one is
    a worktree this never finished in. Such an index holds no trace of its worktree
    (nothing checked out, so no file's stat data), so the next worktree at the same
    tree gets a copy of the one git wrote, moved into place the same way: no process.
    """
    admin = git_dir(path)
    if admin is None:
        raise GitError(("read-tree",), 1, f"{path} is not a worktree")
    tree = await off_the_loop(libgit.tree, path, "HEAD")
    key = (str(admin.parent.parent), tree)
    if tree and key in _empty_indexes:
        _empty_indexes.move_to_end(key)
        await asyncio.to_thread(_place, admin / "index", _empty_indexes[key])
        return
    patterns = admin / "info" / "sparse-checkout"
    patterns.parent.mkdir(exist_ok=True)
    patterns.write_text("/.osqr-no-file-matches-this\n")
    try:
        await git(path, "-c", "core.sparseCheckout=true", "-c", "core.sparseCheckoutCone=false",
                  "read-tree", "-m", "-u", "HEAD")
    finally:
        patterns.unlink(missing_ok=True)
    if tree:
        _empty_indexes[key] = await asyncio.to_thread((admin / "index").read_bytes)
        while len(_empty_indexes) > INDEXES_KEPT:
            _empty_indexes.popitem(last=False)


INDEXES_KEPT = 4       # (repository, tree) -> the all-skip-worktree index git wrote for it
_empty_indexes: "OrderedDict[tuple[str, str], bytes]" = OrderedDict()


def _place(target: Path, content: bytes) -> None:
    """`content` at `target`, whole or not at all (written beside it, then renamed)."""
    scratch = target.with_name(f"{target.name}.osqr-{uuid.uuid4().hex}")
    scratch.write_bytes(content)
    os.replace(scratch, target)


async def _forget_worktree(root: Path, path: Path) -> None:
    """Let git forget a worktree whose folder is gone, even one a crash left locked."""
    _, listing = await git(root, "worktree", "list", "--porcelain", "-z", check=False)
    for record in listing.split("\0\0"):
        fields = record.split("\0")
        if fields and fields[0] == f"worktree {path}" and any(f.startswith("locked") for f in fields):
            await git(root, "worktree", "unlock", str(path), check=False)
    await git(root, "worktree", "prune")


def git_dir(path: Path) -> Path | None:
    """The worktree's own git directory (`.git/worktrees/<name>`), read from its `.git` file."""
    dot_git = path / ".git"
    if dot_git.is_dir():
        return dot_git
    try:
        text = dot_git.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("gitdir:"):
        return None
    named = text.removeprefix("gitdir:").strip()
    if os.path.isabs(named):             # as git and osqr write it: no symlink to follow that
        return Path(os.path.normpath(named))   # matters, and resolving cost a dozen lstat calls
    return (path / named).resolve()


def _git_running_in(path: Path) -> bool:
    """Whether a live git process works in `path` (Linux: /proc; elsewhere assume not)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return False
    target = str(path.resolve())
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip().startswith("git") and \
                    os.readlink(entry / "cwd") == target:
                return True
        except OSError:
            continue
    return False


async def repair_worktree(path: Path) -> list[str]:
    """Undo what a killed process left in a worktree, keeping the agent's work.

    A stale `index.lock` (no live git there) is removed; a merge the orchestrator
    started (marked by MERGING, written before it began, when the worktree was
    clean) is rolled back to its starting commit, whatever state git was killed
    in; a merge left in progress otherwise is aborted. Returns what was repaired.
    """
    repaired: list[str] = []
    admin = git_dir(path)
    if admin is None:
        return repaired
    lock = admin / "index.lock"
    if lock.exists() and not await asyncio.to_thread(_git_running_in, path):
        lock.unlink(missing_ok=True)
        repaired.append("removed a stale index.lock")
    marker = admin / MERGING
    if marker.exists():
        start = marker.read_text().strip()
        await git(path, "merge", "--abort", check=False)
        await git(path, "reset", "--hard", "-q", start)
        await git(path, "clean", "-fdq")
        marker.unlink(missing_ok=True)
        repaired.append(f"rolled back a merge cut short to {start[:8]}")
    elif (admin / "MERGE_HEAD").exists():
        await git(path, "merge", "--abort", check=False)
        repaired.append("aborted a merge left in progress")
    return repaired


async def remove_worktree(root: Path, path: Path) -> None:
    """Remove one worktree whose work is committed: its folder, then its admin folder under
    `.git/worktrees/` (what `git worktree remove --force` does, without a git process; a
    kill between the two leaves an admin folder that the next run's `worktree prune` drops)."""
    admin = git_dir(path)
    if admin is not None and admin.parent.name == "worktrees" and (admin / "gitdir").is_file():
        await asyncio.to_thread(_delete_both, path, admin)
        return
    code, _ = await git(root, "worktree", "remove", "--force", "--force", str(path), check=False)
    if code and path.exists():
        await asyncio.to_thread(shutil.rmtree, path, True)
        await git(root, "worktree", "prune")


def _delete_both(path: Path, admin: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    _delete_admin(admin.parent.parent, admin)


async def remove_worktrees(root: Path, paths: list[Path]) -> None:
    """Delete worktree folders whose work is committed, then let git forget them."""
    await asyncio.to_thread(lambda: [shutil.rmtree(p, ignore_errors=True) for p in paths])
    await git(root, "worktree", "prune")


async def head(path: Path) -> str:
    return await rev_parse(path, "HEAD")


async def rev_parse(path: Path, spec: str) -> str:
    """The commit `spec` names (libgit2 in process; `git rev-parse` where it cannot)."""
    return await off_the_loop(libgit.rev, path, spec) or (await git(path, "rev-parse", f"{spec}^{{commit}}"))[1].strip()


async def set_ref(root: Path, ref: str, target: str, message: str) -> None:
    """Point `ref` at `target` (libgit2 in process; `git update-ref` where it cannot)."""
    if not await off_the_loop(libgit.set_ref, root, ref, target, message):
        await git(root, "update-ref", "-m", message, ref, target)


async def commit_tree(root: Path, tree: str, parents: list[str], message: str, author: str | None = None) -> str:
    """A commit of `tree` on `parents`, by the agents' identity (`git commit-tree`, in process)."""
    made = await off_the_loop(libgit.commit_tree, root, tree, parents, message,
                              (author or AGENT_IDENTITY["GIT_AUTHOR_NAME"], AGENT_IDENTITY["GIT_AUTHOR_EMAIL"]),
                              (AGENT_IDENTITY["GIT_COMMITTER_NAME"], AGENT_IDENTITY["GIT_COMMITTER_EMAIL"]))
    if made:
        return made
    env = {"GIT_AUTHOR_NAME": author} if author else None
    _, out = await git(root, "commit-tree", tree, *[a for p in parents for a in ("-p", p)], "-m", message,
                       env=env, stderr=False)
    return out.strip()


async def delete_ref(root: Path, ref: str) -> None:
    """Remove `ref` if it is there (libgit2 in process; `git update-ref -d` where it cannot)."""
    if not await off_the_loop(libgit.delete_ref, root, ref):
        await git(root, "update-ref", "-d", ref, check=False)


async def write_tree(path: Path) -> str:
    """The tree of the worktree's index (libgit2 in process; `git write-tree` where it cannot)."""
    return await off_the_loop(libgit.index_tree, path) or (await git(path, "write-tree", stderr=False))[1].strip()


def nested_repositories(path: Path) -> list[str]:
    """Folders of the worktree that are git repositories of their own (an agent ran `git init`).

    git would add them as gitlinks (or refuse an empty one): their files never reach a commit.
    """
    found = []
    for folder, dirs, files in os.walk(path):
        here = Path(folder)
        if here != path and (".git" in dirs or ".git" in files):
            found.append(here.relative_to(path).as_posix())
            dirs[:] = []
            continue
        dirs[:] = [d for d in dirs if d != ".git"]
    return sorted(found)


async def commit_all(path: Path, message: str, author: str | None = None,
                     leave_out: list[str] | None = None) -> str | None:
    """Commit everything in the worktree but `leave_out`; the new commit, or None if nothing changed."""
    spec = ["--", ".", *[f":(exclude,top){p}" for p in leave_out or []]]
    await git(path, "add", "-A", "--sparse", *spec)   # --sparse: files a lazy worktree never brought
    # out are skip-worktree, unchanged for git; without it, a pathspec matching only them fails
    env = {"GIT_AUTHOR_NAME": author} if author else None
    code, out = await git(path, "-c", "maintenance.auto=false", "commit", "--no-verify", "-q", "-m", message,
                          env=env, check=False)    # the run tidies the repository once, at its end
    if code:
        _, staged = await git(path, "diff", "--cached", "--name-only", check=False)
        if not staged.strip():
            return None               # nothing changed (asked only when the commit did not happen)
        raise GitError(("commit",), code, out)
    return await head(path)


async def changed_files(path: Path, base: str, tip: str = "HEAD", two_dot: bool = False) -> dict[str, str]:
    """{path: status letter} of what `tip` changed since `base` (A added, M modified, D deleted);
    `two_dot`: everything that differs between the two, whichever side changed it."""
    known = await off_the_loop(libgit.changed, path, base, tip, two_dot)    # 20,000 files: 50-100 ms
    if known is not None:
        return known
    _, out = await git(path, "diff", "--name-status", "--no-renames", "-z", f"{base}{'..' if two_dot else '...'}{tip}")
    parts = out.split("\0")
    return {name: status[:1] for status, name in zip(parts[::2], parts[1::2]) if name}


async def conflicted_files(path: Path) -> list[str]:
    _, listing = await git(path, "diff", "--name-only", "--diff-filter=U", "-z", check=False)
    return [name for name in listing.split("\0") if name]


async def files_in(root: Path, rev: str, names: set[str]) -> set[str]:
    """Which of `names` are files in `rev` (libgit2 looks up just those; git lists the tree)."""
    found = await off_the_loop(libgit.files_in, root, rev, names)
    if found is not None:
        return found
    _, out = await git(root, "ls-tree", "-r", "-z", "--name-only", rev)
    return set(out.split("\0")) & set(names)


async def is_merged(path: Path, branch: str, tip: str = "HEAD") -> bool:
    """`branch` is already part of `tip`'s history (merging it again changes nothing)."""
    known = await off_the_loop(libgit.is_ancestor, path, branch, tip)      # a walk of history
    if known is not None:
        return known
    code, _ = await git(path, "merge-base", "--is-ancestor", branch, tip, check=False)
    return code == 0


@dataclass
class TreeMerge:
    """A merge `git merge-tree` made with no checkout: the tree it wrote (conflicted files hold
    markers there) and, per conflicted file, its stages {1 base, 2 ours, 3 theirs: (mode, blob)}."""
    tree: str
    conflicts: dict[str, dict[int, tuple[str, str]]] = field(default_factory=dict)


async def merge_trees(root: Path, ours: str, theirs: str) -> TreeMerge:
    """Merge two commits of the repository at `root` in memory (git >= 2.38)."""
    code, out = await git(root, "merge-tree", "--write-tree", "-z", "--no-messages", ours, theirs,
                          check=False, stderr=False)
    if code not in (0, 1):
        raise GitError(("merge-tree", ours, theirs), code, out)
    tree, _, rest = out.partition("\0")
    merge = TreeMerge(tree.strip())
    for entry in rest.split("\0"):
        if not entry:
            break                               # the empty record ends the conflicted-file list
        info, _, name = entry.partition("\t")
        mode, blob, stage = info.split()
        merge.conflicts.setdefault(name, {})[int(stage)] = (mode, blob)
    return merge


async def read_blobs(root: Path, specs: list[str]) -> dict[str, str | None]:
    """Many files' texts at once (`<rev>:<path>` each), None where absent: one git process."""
    if not specs:
        return {}
    if any("\n" in s for s in specs):                     # the batch protocol is one name a line
        return {s: await read_blob(root, s) for s in specs}
    _, out = await _git_bytes(root, "cat-file", "--batch", input="".join(f"{s}\n" for s in specs).encode())
    texts: dict[str, str | None] = {}
    at = 0
    for spec in specs:
        end = out.index(b"\n", at)
        header = out[at:end].split()
        if len(header) != 3 or header[1] != b"blob":       # missing, ambiguous, or a tree
            texts[spec] = None
            at = end + 1 + (int(header[2]) + 1 if len(header) == 3 else 0)
            continue
        size = int(header[2])
        texts[spec] = out[end + 1:end + 1 + size].decode(errors="replace")
        at = end + 1 + size + 1
    return texts


async def read_blob(root: Path, spec: str) -> str | None:
    """A file's text at `spec` (`<commit>:<path>`, `<tree>:<path>` or a blob id); None if absent."""
    code, out = await git(root, "cat-file", "-p", spec, check=False, stderr=False)
    return out if code == 0 else None


async def commit_merge(root: Path, merge: TreeMerge, resolved: dict[str, str | None], parents: list[str],
                       message: str, author: str | None = None) -> str:
    """The merge commit of `merge` with each conflicted file replaced by its resolution (None:
    deleted), built through a temporary index: no worktree, no checkout."""
    for name, text in resolved.items():
        if text is not None and has_markers(text):
            raise ValueError(f"the resolution of {name} still has conflict markers")
    tree = merge.tree
    if resolved:
        tree = await _tree_with(root, merge, resolved)
    return await commit_tree(root, tree, parents, message, author)


async def _tree_with(root: Path, merge: TreeMerge, resolved: dict[str, str | None]) -> str:
    with tempfile.TemporaryDirectory(prefix="osqr-index-") as scratch:
        env = {"GIT_INDEX_FILE": os.path.join(scratch, "index")}
        await git(root, "read-tree", merge.tree, env=env)
        lines = []
        for name, text in resolved.items():
            if text is None:
                lines.append(f"0 {'0' * 40}\t{name}")
                continue
            _, blob = await git(root, "hash-object", "-w", "--stdin", input=text.encode(), stderr=False)
            stages = merge.conflicts.get(name, {})
            mode = (stages.get(2) or stages.get(3) or ("100644", ""))[0]
            lines.append(f"{mode} {blob.strip()}\t{name}")
        await git(root, "update-index", "-z", "--index-info", env=env,
                  input="".join(line + "\0" for line in lines).encode())
        _, tree = await git(root, "write-tree", env=env, stderr=False)
        return tree.strip()


async def start_merge(path: Path, branch: str, message: str) -> list[str]:
    """Merge one branch into a clean worktree, never an octopus: returns the conflicted files
    with the merge left in progress (`finish_merge` or `abort_merge` next); [] when committed.

    The starting commit is written down first (MERGING), so that a process killed at any
    point of the merge leaves a worktree `repair_worktree` can put back exactly.
    """
    admin = git_dir(path)
    start = await head(path)
    if admin is not None:
        (admin / MERGING).write_text(start + "\n")
    code, out = await git(path, "merge", "--no-edit", "-m", message, branch, check=False)
    if code == 0:
        _done_merging(admin)
        return []
    conflicted = await conflicted_files(path)
    if not conflicted:
        await abort_merge(path)
        raise GitError(("merge", branch), code, out)
    return conflicted


async def finish_merge(path: Path, resolved: dict[str, str | None]) -> str:
    """Write the resolved files, check none keeps a conflict marker, and commit the merge."""
    for name, text in resolved.items():
        if text is None:                      # the side kept had deleted the file
            await git(path, "rm", "-q", "--ignore-unmatch", "--", name)
            continue
        if has_markers(text):
            raise ValueError(f"the resolution of {name} still has conflict markers")
        (path / name).write_text(text)
        await git(path, "add", "--", name)
    await git(path, "commit", "--no-verify", "-q", "--no-edit")
    _done_merging(git_dir(path))
    return await head(path)


def _done_merging(admin: Path | None) -> None:
    if admin is not None:
        (admin / MERGING).unlink(missing_ok=True)


async def abort_merge(path: Path) -> None:
    await git(path, "merge", "--abort", check=False)
    _done_merging(git_dir(path))


_MARKER_LINE = re.compile(r"^(<<<<<<<|>>>>>>>) ", re.M)


def has_markers(text: str) -> bool:
    """Conflict markers at the start of a line (git's `<<<<<<< ` and `>>>>>>> `)."""
    return _MARKER_LINE.search(text) is not None
