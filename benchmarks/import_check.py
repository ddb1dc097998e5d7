"""The Integrator's import check on real history: how often does it cry wolf, and what does it catch?

For every merge of two parents in a local repository, the Python files either
parent changed since their merge base are checked with
`osqr_nb.workspace.imports.broken_imports`, twice:

  on the person's merge commit   an import flagged there is a false alarm (or the
                                 project really was broken at that commit: each is
                                 listed with -v so that you can look);
  on git's own merge             (`git merge-tree --write-tree`, when git merges
                                 cleanly) an import flagged there but not in the
                                 person's merge is a catch: git's clean merge would
                                 have left an import broken that the person mended.

Mined code stays in the repository it came from; nothing is written.

    python benchmarks/import_check.py --mine REPO [--mine REPO ...] [--limit N] [-v]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from osqr_nb.workspace.imports import broken_imports, wanted_paths


class Blobs:
    """File texts by `rev:path`, through one `git cat-file --batch` process."""

    def __init__(self, repo: Path) -> None:
        self.process = subprocess.Popen(["git", "-C", str(repo), "cat-file", "--batch"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def read(self, rev: str, path: str) -> str | None:
        self.process.stdin.write(f"{rev}:{path}\n".encode())
        self.process.stdin.flush()
        header = self.process.stdout.readline().split()
        if len(header) < 3 or header[1] != b"blob":
            return None
        body = self.process.stdout.read(int(header[2]) + 1)[:-1]
        return body.decode(errors="replace")

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def _git(repo: Path, *args: str) -> tuple[int, str]:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    return done.returncode, done.stdout


def merges(repo: Path, limit: int | None):
    """(merge, first parent, second parent, merge base), newest first."""
    found = 0
    for line in _git(repo, "rev-list", "--merges", "--parents", "HEAD")[1].splitlines():
        merge, *parents = line.split()
        if len(parents) != 2:
            continue
        bases = _git(repo, "merge-base", "--all", *parents)[1].split()
        if len(bases) == 1:
            yield merge, parents[0], parents[1], bases[0]
            found += 1
            if limit and found >= limit:
                return


def changed(repo: Path, base: str, rev: str) -> set[str]:
    out = _git(repo, "diff", "--name-only", "--no-renames", base, rev, "--", "*.py")[1]
    return {name for name in out.splitlines() if name}


def flagged(blobs: Blobs, files: list[str], merged: str, sides: list[str]) -> list:
    versions = {rev: {path: blobs.read(rev, path) for path in files} for rev in (merged, *sides)}
    needed = {p for version in versions.values() for path in files for p in wanted_paths(path, version[path])}
    for rev, version in versions.items():
        version.update({p: blobs.read(rev, p) for p in needed - set(files)})
    return broken_imports(files, versions[merged], [versions[side] for side in sides])


def check(repo: Path, limit: int | None, verbose: bool) -> dict[str, int]:
    counts = dict.fromkeys(("merges", "checked", "alarms", "git clean", "caught"), 0)
    blobs = Blobs(repo)
    try:
        for merge, first, second, base in merges(repo, limit):
            counts["merges"] += 1
            ours, theirs = changed(repo, base, first), changed(repo, base, second)
            if not ours or not theirs:
                continue                # one side changed no Python: nothing to break between them
            counts["checked"] += 1
            files = sorted(ours | theirs)
            alarms = flagged(blobs, files, merge, [first, second])
            if alarms:
                counts["alarms"] += 1
                if verbose:
                    print(f"  alarm on the person's merge {merge[:10]}: {alarms[0].describe()}")
            code, tree = _git(repo, "merge-tree", "--write-tree", first, second)
            if code != 0:
                continue
            counts["git clean"] += 1
            found = flagged(blobs, files, tree.split()[0], [first, second])
            if found and not alarms:
                counts["caught"] += 1
                if verbose:
                    print(f"  caught in git's merge for {merge[:10]}: {found[0].describe()}")
    finally:
        blobs.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mine", type=Path, action="append", required=True, metavar="REPO")
    parser.add_argument("--limit", type=int, help="at most N merges per repository")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every alarm and catch")
    args = parser.parse_args(argv)
    print(f"{'repository':<28}{'merges':>8}{'checked':>9}{'alarms':>8}{'git clean':>11}{'caught':>8}{'s':>7}")
    for repo in args.mine:
        started = time.perf_counter()
        counts = check(repo, args.limit, args.verbose)
        name = repo.resolve().parent.name if repo.resolve().name in ("repo", ".git") else repo.resolve().name
        print(f"{name:<28}" + "".join(f"{counts[k]:>{w}}" for k, w in
                                      (("merges", 8), ("checked", 9), ("alarms", 8), ("git clean", 11), ("caught", 8)))
              + f"{time.perf_counter() - started:>7.0f}")
    print("checked: both parents changed Python files; alarms: imports flagged in the person's merge "
          "(false alarms, or a project broken at that commit); caught: flagged in git's clean merge only")
    return 0


if __name__ == "__main__":
    sys.exit(main())
