"""Git repositories, branches and worktrees, through git's own command line.

Checks that must answer before a cell returns (is this a repository?) run
synchronously and take milliseconds; everything else is a subprocess awaited on
the event loop, so git never blocks the kernel. The user's working tree and
current branch are never touched: agents work in worktrees under `.osqr/`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

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


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_EDITOR="true", LC_ALL="C")
    env.update(AGENT_IDENTITY)
    env.update(extra or {})
    return env


def git_sync(cwd: str | Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env=_env(), capture_output=True, text=True)
    if done.returncode:
        raise GitError(args, done.returncode, done.stderr + done.stdout)
    return done.stdout


async def git(cwd: str | Path, *args: str, check: bool = True,
              env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run git on the event loop; returns (exit code, stdout+stderr)."""
    proc = await asyncio.create_subprocess_exec(
        "git", *args, cwd=str(cwd), env=_env(env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await proc.communicate()
    except asyncio.CancelledError:
        if proc.returncode is None:      # leave no git process behind a cancelled task
            proc.kill()
            await asyncio.shield(proc.wait())
        raise
    text = out.decode(errors="replace")
    if check and proc.returncode:
        raise GitError(args, proc.returncode, text)
    return proc.returncode, text


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
    status = git_sync(root, "status", "--porcelain")
    uncommitted = [line[3:] for line in status.splitlines()
                   if line[3:] and not line[3:].startswith(".osqr")]
    return RepoInfo(root, head, None if branch == "HEAD" else branch, uncommitted)


def exclude_osqr_dir(root: Path) -> None:
    """Keep `.osqr/` (log, worktrees) out of `git status` without touching tracked files."""
    common = Path(git_sync(root, "rev-parse", "--git-common-dir").strip())
    exclude = (root / common if not common.is_absolute() else common) / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    text = exclude.read_text() if exclude.exists() else ""
    if ".osqr/" not in text.split():
        exclude.write_text(text + ("" if text.endswith("\n") or not text else "\n") + ".osqr/\n")


async def branch_exists(root: Path, branch: str) -> bool:
    code, _ = await git(root, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False)
    return code == 0


async def add_worktree(root: Path, path: Path, branch: str, base: str) -> None:
    """Create (or, after a restart, reuse) the worktree at `path` on `branch`.

    One git process in the usual case: on this path, process start-up is the cost.
    """
    if (path / ".git").exists():
        if (await git(path, "rev-parse", "-q", "--verify", "MERGE_HEAD", check=False))[0] == 0:
            await git(path, "merge", "--abort", check=False)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    code, out = await git(root, "worktree", "add", "-q", "-b", branch, str(path), base, check=False)
    if code == 0:
        return
    if "already exists" in out and await branch_exists(root, branch):
        await git(root, "worktree", "prune")       # a worktree of this branch whose folder is gone
        await git(root, "worktree", "add", "-q", str(path), branch)
        return
    raise GitError(("worktree", "add", "-b", branch, str(path), base), code, out)


async def remove_worktrees(root: Path, paths: list[Path]) -> None:
    """Delete worktree folders whose work is committed, then let git forget them."""
    await asyncio.to_thread(lambda: [shutil.rmtree(p, ignore_errors=True) for p in paths])
    await git(root, "worktree", "prune")


async def head(path: Path) -> str:
    return (await git(path, "rev-parse", "HEAD"))[1].strip()


async def commit_all(path: Path, message: str, author: str | None = None) -> str | None:
    """Commit everything in the worktree; returns the new commit, or None if nothing changed."""
    await git(path, "add", "-A")
    code, _ = await git(path, "diff", "--cached", "--quiet", check=False)
    if code == 0:
        return None
    env = {"GIT_AUTHOR_NAME": author} if author else None
    await git(path, "commit", "--no-verify", "-q", "-m", message, env=env)
    return await head(path)


async def changed_files(path: Path, base: str, tip: str = "HEAD") -> dict[str, str]:
    """{path: status letter} of what `tip` changed since `base` (A added, M modified, D deleted)."""
    _, out = await git(path, "diff", "--name-status", "--no-renames", f"{base}...{tip}")
    changes = {}
    for line in out.splitlines():
        status, _, name = line.partition("\t")
        if name:
            changes[name] = status[:1]
    return changes


async def merge_branches(path: Path, branches: list[str], message: str,
                         fast_forward: bool = False) -> list[str]:
    """Merge `branches` into the worktree's branch with git's 3-way merge.

    Returns the conflicted files, with the merge left in progress so that the
    caller can read the conflict markers (then `abort_merge`); an empty list
    means the merge is committed.
    """
    mode = "--ff" if fast_forward else "--no-ff"
    code, out = await git(path, "merge", mode, "--no-edit", "-m", message, *branches, check=False)
    if code == 0:
        return []
    _, listing = await git(path, "diff", "--name-only", "--diff-filter=U", check=False)
    conflicted = listing.split()
    if not conflicted:
        await git(path, "merge", "--abort", check=False)
        raise GitError(("merge", *branches), code, out)
    return conflicted


async def abort_merge(path: Path) -> None:
    await git(path, "merge", "--abort", check=False)
