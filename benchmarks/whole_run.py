"""Whole runs, not just the scheduler: what a run of N tasks costs in one kernel.

Each size runs in a fresh process on a fresh repository: N independent tasks
(or a layered plan), each writing one file, the model answering at once, tier 4,
8 agents at a time. Reported per size: wall time per task, CPU of git (the
children) and of Python, events, log size, peak memory, worktrees left after the
run, and the p99 lateness of a 10 ms ticker on the run's event loop; then the
growth exponent of wall time between the smallest and largest size.

    python benchmarks/whole_run.py                       # 10, 100, 500 tasks
    python benchmarks/whole_run.py --sizes 100 1000      # any sizes
    python benchmarks/whole_run.py --layered             # layers of 10, each task after 1-3 of the layer before
    python benchmarks/whole_run.py --files 2000          # on a generated repository of 2,000 files (~30 MB)
    python benchmarks/whole_run.py --files 2000 --touch 5   # each task also reads 5 files and edits one
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import asyncio, json, os, resource, sys, time
from pathlib import Path
from osqr_nb.config import settings
from osqr_nb.models.base import Reply, ToolCall
from osqr_nb.plan.task import Plan, Task
import osqr_nb

settings().scripted_delay = 0.0
settings().learn_thresholds = settings().learn_routes = False
n, layered, repo, touch = int(sys.argv[1]), sys.argv[2] == "1", Path(sys.argv[3]), int(sys.argv[4])
tracked = sorted(p.relative_to(repo).as_posix() for p in (repo / "pkg").rglob("*.py")) if touch else []

class Writer:
    name = "writer"
    async def complete(self, system, messages, tools):
        task_id = next(l[4:] for l in messages[0]["content"].splitlines() if l.startswith("id: "))
        if len(messages) == 1:
            k = int(task_id[1:])
            reads = [ToolCall(f"r{j}", "read_file", {"path": tracked[(k * touch + j) % len(tracked)]})
                     for j in range(touch)]
            edit = [ToolCall("e", "edit_file", {"path": tracked[k * touch % len(tracked)], "old": "def f0(x):\n    return x",
                                                "new": "def f0(x):\n    return -x"})] if touch else []
            return Reply(tool_calls=reads + edit + [
                ToolCall("w", "write_file", {"path": f"out/{task_id}.txt", "content": task_id})])
        return Reply(tool_calls=[ToolCall("f", "finish", {"summary": task_id})])

def plan():
    if not layered:
        return Plan([Task(f"t{i}", f"T{i}", "code") for i in range(n)])
    width, tasks = 10, []
    for i in range(n):
        layer, k = divmod(i, width)
        inputs = [f"t{(layer - 1) * width + (k + j) % width}" for j in range(1 + i % 3)] if layer else []
        tasks.append(Task(f"t{i}", f"T{i}", "code", depends_on=inputs))
    return Plan(tasks)

async def main():
    late = []
    async def tick():
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.010)
            now = time.perf_counter()
            late.append(now - last - 0.010)
            last = now
    ticker = asyncio.get_running_loop().create_task(tick())
    started = time.perf_counter()
    run = osqr_nb.start(plan=plan(), repo=repo, tier=4, max_parallel=8, model=Writer())
    await run
    wall = time.perf_counter() - started
    ticker.cancel()
    late.sort()
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    worktrees = repo / ".osqr" / "worktrees" / run.id
    print(json.dumps({
        "status": run.status, "wall": wall, "python_cpu": me.ru_utime + me.ru_stime,
        "git_cpu": kids.ru_utime + kids.ru_stime, "events": len(list(run.log.read(run.id))),
        "log_mb": sum(p.stat().st_size for p in (repo / ".osqr").glob("osqr.db*")) / 2**20,
        "peak_mb": me.ru_maxrss / 1024, "worktrees_left": len(list(worktrees.iterdir())) if worktrees.exists() else 0,
        "ticker_p99_ms": 1000 * late[int(0.99 * (len(late) - 1))] if late else 0.0}))

asyncio.run(main())
"""


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=Bench", "-c", "user.email=bench@example.com", *args], cwd=cwd,
                   check=True, capture_output=True)


def make_repo(path: Path, files: int) -> Path:
    """A repository with `files` generated Python files (about 15 KB each) beside a README."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("# bench\n")
    body = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}  # {'-' * 40}\n\n\n" for i in range(160))
    for i in range(files):
        folder = path / "pkg" / f"m{i // 100}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"mod{i}.py").write_text(f'"""Module {i}."""\n\n' + body)
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "base")
    return path


def measure(n: int, layered: bool, files: int, workdir: Path, touch: int = 0) -> dict:
    repo = make_repo(workdir / f"repo-{n}-{int(layered)}-{files}", files)
    env = dict(os.environ, OSQR_PKV=str(workdir / "pkv.sqlite"))    # the person's own store is not a benchmark's
    done = subprocess.run([sys.executable, "-c", CHILD, str(n), "1" if layered else "0", str(repo), str(touch)],
                          capture_output=True, text=True, timeout=3600, env=env)
    if done.returncode:
        raise RuntimeError(f"the run of {n} tasks failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--layered", action="store_true")
    parser.add_argument("--files", type=int, default=0, help="generated files in the repository")
    parser.add_argument("--touch", type=int, default=0,
                        help="files each task reads (and the first of them edits) besides the one it writes")
    options = parser.parse_args()
    print(f"{'tasks':>6} {'wall/task':>10} {'git CPU':>8} {'py CPU':>7} {'events':>7} {'log MB':>7} "
          f"{'peak MB':>8} {'left':>5} {'tick p99':>9}  status", flush=True)
    walls = {}
    with tempfile.TemporaryDirectory(prefix="osqr-whole-") as tmp:
        for n in options.sizes:
            r = measure(n, options.layered, options.files, Path(tmp), options.touch)
            walls[n] = r["wall"]
            print(f"{n:>6} {1000 * r['wall'] / n:>8.1f}ms {r['git_cpu']:>7.1f}s {r['python_cpu']:>6.1f}s "
                  f"{r['events']:>7} {r['log_mb']:>7.1f} {r['peak_mb']:>8.0f} {r['worktrees_left']:>5} "
                  f"{r['ticker_p99_ms']:>7.1f}ms  {r['status']}", flush=True)
    small, large = min(walls), max(walls)
    if large > small:
        exponent = math.log(walls[large] / walls[small]) / math.log(large / small)
        print(f"growth exponent of wall time, {small} -> {large} tasks: {exponent:.2f}")


if __name__ == "__main__":
    main()
