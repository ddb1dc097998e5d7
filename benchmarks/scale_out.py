"""Scale-out on Dask: what putting tasks' workspaces on workers costs, beside the local path.

Everything runs in this process's event loop (the kernel's part) against a
scheduler and worker processes over TCP on loopback (SubprocessCluster), and the same work runs
locally in the same invocation, so each figure has its baseline next to it:

1. the same plan (default 200 tasks in layers of 20, each after one task of the
   layer before; the scripted model writes a file, runs a short CPU-bound command,
   finishes) locally and on 2 workers: makespan against max(critical path,
   work / limit), and the per-task overhead of the cluster path (mean task time);
2. a tool call's round trip (read_file), p50/p99, on one workspace, local and remote;
3. opening a workspace by repository size: the first task on a worker (the base sent
   as a bundle to the run's clone there, a new actor) and the next one (an actor kept
   from the first, nothing sent), against a local worktree;
4. a simulated run (default 1,000 tasks, workspaces on 4 workers, model latency
   simulated) with the p99 lateness of a 10 ms ticker on the kernel's loop;
5. one task after another on one worker, each phase timed alone (open, a write, a
   command, the turn's snapshot, save, close), local and remote: what a task's
   workspace costs with nothing else competing for the machine.

    python benchmarks/scale_out.py                    # all five parts
    python benchmarks/scale_out.py --tasks 100 --sim 300 --sizes 100 1000
Targets (issue 19): overhead < 50 ms per task, round trip p99 < 20 ms, kernel p99 < 50 ms at 1,000 tasks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import networkx as nx

COMMAND = ["python3", "-c", "print(sum(i * i for i in range(300000)))"]     # ~30 ms of CPU


def make_repo(path: Path, files: int = 2) -> Path:
    """A repository of `files` small Python files (about 1.5 kB each) in one commit."""
    path.mkdir(parents=True)
    for i in range(files):
        target = path / f"pkg{i // 100}" / f"mod{i}.py"
        target.parent.mkdir(exist_ok=True)
        target.write_text("".join(f"def f{i}_{j}(x):\n    return x * {j} + {i}\n\n" for j in range(40)))
    identity = ["-c", "user.name=bench", "-c", "user.email=bench@osqr-nb.invalid"]
    for args in (["init", "-q", "-b", "main"], ["add", "."], [*identity, "commit", "-q", "-m", "base"]):
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True)
    return path


class Scripted:
    """Per task: write a file, run the command (when given), finish; `latency` s per reply."""

    name = "scripted"

    def __init__(self, command: list[str] | None = COMMAND, latency: tuple[float, float] = (0.0, 0.0)) -> None:
        self.command, self.latency = command, latency

    async def complete(self, system, messages, tools):
        from osqr_nb.models.base import Reply, ToolCall
        if self.latency[1]:
            await asyncio.sleep(random.uniform(*self.latency))
        task_id = next(line[4:] for line in messages[0]["content"].splitlines() if line.startswith("id: "))
        steps = [("write_file", {"path": f"out/{task_id}.txt", "content": f"{task_id}\n"})]
        if self.command:
            steps.append(("run_command", {"command": self.command}))
        step = sum(1 for m in messages if m["role"] == "assistant")
        name, args = steps[step] if step < len(steps) else ("finish", {"summary": task_id})
        return Reply(tool_calls=[ToolCall(f"c{step}", name, args)], stop_reason="tool_use")


def layered(n: int, width: int = 20):
    from osqr_nb.plan.task import Plan, Task
    return Plan([Task(f"t{i:04d}", f"Task {i}", "code",
                      depends_on=[f"t{i - width:04d}"] if i >= width else []) for i in range(n)])


async def cluster_client(workers: int):
    """A scheduler and `workers` worker processes on loopback, none in this process: like a real
    cluster, the kernel's loop runs only the client (a LocalCluster would run its scheduler here)."""
    from distributed import Client
    from distributed.deploy.subprocess import SubprocessCluster
    os.environ["DASK_LOGGING__DISTRIBUTED"] = "error"     # the scheduler's stderr is a pipe nobody reads
    cluster = await SubprocessCluster(n_workers=workers, threads_per_worker=2, host="127.0.0.1",
                                      dashboard_address=None, asynchronous=True, silence_logs=40)
    return cluster, await Client(cluster, asynchronous=True, direct_to_workers=True)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def ticker(late: list[float], stop: asyncio.Event) -> None:
    """How late a 10 ms sleep wakes up: what a `1+1` cell would wait for."""
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(0.01)
        late.append(time.perf_counter() - before - 0.01)


async def one_run(repo: Path, plan, model, cluster, limit: int) -> dict:
    import osqr_nb
    late: list[float] = []
    stop = asyncio.Event()
    tick = asyncio.create_task(ticker(late, stop))
    started = time.perf_counter()
    run = osqr_nb.start(plan=plan, repo=repo, model=model, tier=4, max_parallel=limit, cluster=cluster)
    await run
    makespan = time.perf_counter() - started
    stop.set()
    await tick
    assert run.status == "complete", (run.status, run.state.error)
    times = {t: s.finished_at - s.started_at for t, s in run.tasks.items()}
    graph = run.plan.graph.copy()
    for node in graph:
        graph.nodes[node]["w"] = times[node]
    critical = _critical(graph)
    bound = max(critical, sum(times.values()) / limit)
    trips = [s for m, s in getattr(run.workspaces, "round_trips", []) if m == "call"]
    by_method: dict[str, list[float]] = {}
    for method, seconds in getattr(run.workspaces, "round_trips", []):
        by_method.setdefault(method, []).append(seconds)
    workers = {e.data.get("worker") for e in run.log.read(run.id) if e.type == "task_started"}
    return {"makespan": makespan, "bound": bound, "critical": critical, "mean_task": statistics.mean(times.values()),
            "late_p99": pct(late, 0.99), "trips": trips, "workers": len(workers),
            "moved": sum(1 for e in run.log.read(run.id) if e.type == "task_moved"),
            "by_method": {m: statistics.mean(v) for m, v in by_method.items()}}


def _critical(graph) -> float:
    """The longest chain of task times through the graph (seconds)."""
    finish: dict[str, float] = {}
    for node in nx.topological_sort(graph):
        finish[node] = graph.nodes[node]["w"] + max((finish[p] for p in graph.predecessors(node)), default=0.0)
    return max(finish.values(), default=0.0)


def show(label: str, local: dict, remote: dict) -> None:
    print(f"  {label:<34}{'local':>12}{'cluster':>12}")
    for key, name, unit in (("makespan", "makespan", "s"), ("bound", "max(critical path, work/limit)", "s"),
                            ("mean_task", "mean task time", "s"), ("late_p99", "kernel loop p99 lateness", "ms")):
        scale = 1000 if unit == "ms" else 1
        print(f"  {name:<34}{local[key] * scale:>10.3f}{unit:<2}{remote[key] * scale:>10.3f}{unit:<2}")
    print(f"  {'makespan / bound':<34}{local['makespan'] / local['bound']:>12.3f}"
          f"{remote['makespan'] / remote['bound']:>12.3f}")


async def part_plan(tasks: int, limit: int) -> None:
    print(f"\n1. {tasks} tasks (layers of 20), {limit} at a time, each: write_file, a ~30 ms command, finish")
    cluster, client = await cluster_client(2)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            local = await one_run(make_repo(Path(scratch) / "a"), layered(tasks), Scripted(), "none", limit)
            remote = await one_run(make_repo(Path(scratch) / "b"), layered(tasks), Scripted(), client, limit)
        show("", local, remote)
        overhead = (remote["mean_task"] - local["mean_task"]) * 1000
        slots = (remote["makespan"] - local["makespan"]) * limit / tasks * 1000
        print(f"  cluster overhead per task: {overhead:.1f} ms of mean task time (started to finished), "
              f"{slots:.1f} ms of makespan x limit / tasks (with opening and closing); target < 50 ms; "
              f"tasks on {remote['workers']} workers")
        phases = {m: v for m, v in remote["by_method"].items() if m.startswith(("open", "close"))}
        print("  mean time per call to the worker, by method: " + ", ".join(
            f"{m} {v * 1000:.1f} ms" for m, v in sorted(remote["by_method"].items()) if m not in phases))
        print("  opening and closing a workspace, mean per task: " + ", ".join(
            f"{m} {v * 1000:.1f} ms" for m, v in sorted(phases.items())))
        print(f"  tool call round trip during the run: p50 {pct(remote['trips'], .5) * 1000:.2f} ms, "
              f"p99 {pct(remote['trips'], .99) * 1000:.2f} ms ({len(remote['trips'])} calls)")
    finally:
        await client.close()
        await cluster.close()


async def part_round_trip(calls: int) -> None:
    from osqr_nb.cluster.connect import Connection
    from osqr_nb.cluster.host import ClusterHost
    from osqr_nb.workspace.task_workspace import LocalHost
    print(f"\n2. tool call round trip, read_file, {calls} calls one after another on one workspace")
    cluster, client = await cluster_client(2)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            repo = make_repo(Path(scratch) / "r", files=10)
            head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
            results = {}
            for name, host in (("local", LocalHost(repo, "rt")), ("cluster", ClusterHost(Connection(client), repo, "rt"))):
                workspace = host.make("t", "osqr/rt/t", lambda *a, **k: None)
                await workspace.open(head, fresh=True)
                samples = []
                for i in range(calls):
                    before = time.perf_counter()
                    await workspace.call("read_file", {"path": f"pkg0/mod{i % 10}.py", "limit": 20})
                    samples.append(time.perf_counter() - before)
                await workspace.close()
                results[name] = samples
        for name, samples in results.items():
            print(f"  {name:<8} p50 {pct(samples, .5) * 1000:7.2f} ms   p99 {pct(samples, .99) * 1000:7.2f} ms"
                  + ("   (target p99 < 20 ms)" if name == "cluster" else ""))
    finally:
        await client.close()
        await cluster.close()


async def part_bundles(sizes: list[int]) -> None:
    from osqr_nb.cluster.connect import Connection
    from osqr_nb.cluster.host import ClusterHost
    from osqr_nb.cluster import bundles
    from osqr_nb.workspace.task_workspace import LocalHost
    print("\n3. opening a workspace on a worker that has none of the repository (bundle out, into the run's "
          "clone, lazy worktree), then a second one there")
    print(f"  {'files':>7}{'bundle MB':>11}{'make bundle':>13}{'cluster open':>14}{'local open':>12}{'2nd task':>10}")
    cluster, client = await cluster_client(1)
    try:
        for files in sizes:
            with tempfile.TemporaryDirectory() as scratch:
                repo = make_repo(Path(scratch) / "r", files=files)
                head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
                before = time.perf_counter()
                data = await bundles.make(repo, "refs/heads/main", [])
                made = time.perf_counter() - before
                host = ClusterHost(Connection(client), repo, f"b{files}")
                timings = []
                for task in ("a", "b"):                  # the second task finds the base on the worker
                    workspace = host.make(task, f"osqr/b{files}/{task}", lambda *a, **k: None)
                    before = time.perf_counter()
                    await workspace.open(head, fresh=True)
                    timings.append(time.perf_counter() - before)
                    await workspace.close()
                local = LocalHost(repo, f"l{files}").make("a", f"osqr/l{files}/a", lambda *a, **k: None)
                before = time.perf_counter()
                await local.open(head, fresh=True)
                local_open = time.perf_counter() - before
                await local.close()
                print(f"  {files:>7}{len(data) / 1e6:>11.2f}{made * 1000:>11.0f}ms{timings[0] * 1000:>12.0f}ms"
                      f"{local_open * 1000:>10.0f}ms{timings[1] * 1000:>8.0f}ms")
    finally:
        await client.close()
        await cluster.close()


async def part_simulated(tasks: int, workers: int, limit: int, latency: tuple[float, float]) -> None:
    print(f"\n4. simulated run: {tasks} tasks, {limit} at a time, model latency {latency[0]}-{latency[1]} s "
          f"per reply, write_file then finish; workspaces on {workers} workers")
    cluster, client = await cluster_client(workers)
    try:
        await client.wait_for_workers(workers)
        with tempfile.TemporaryDirectory() as scratch:
            plan = lambda: layered(tasks, width=max(20, tasks // 5))
            local = await one_run(make_repo(Path(scratch) / "a"), plan(), Scripted(None, latency), "none", limit)
            remote = await one_run(make_repo(Path(scratch) / "b"), plan(), Scripted(None, latency), client, limit)
            apart = None
            if len(os.sched_getaffinity(0)) >= 2:
                async with kernel_apart(client):
                    apart = await one_run(make_repo(Path(scratch) / "c"), plan(), Scripted(None, latency), client, limit)
        show("", local, remote)
        print(f"  kernel loop p99 lateness on the cluster: {remote['late_p99'] * 1000:.1f} ms, the workers and the "
              f"scheduler sharing the kernel's cores (target < 50 ms); tasks on {remote['workers']} workers")
        if apart is not None:
            print(f"  the same with the kernel on a core of its own, the workers and the scheduler on the others (as "
                  f"on separate machines): p99 {apart['late_p99'] * 1000:.1f} ms, makespan {apart['makespan']:.1f} s")
    finally:
        await client.close()
        await cluster.close()


@contextlib.asynccontextmanager
async def kernel_apart(client):
    """This process on the first core it may use, the cluster's processes on the others: what the
    kernel pays when its workers are other machines, measured on one (Linux)."""
    cores = sorted(os.sched_getaffinity(0))
    mine, theirs = {cores[0]}, set(cores[1:])

    def pin(cpus, dask_worker=None, dask_scheduler=None):
        import os
        for thread in os.listdir("/proc/self/task"):
            os.sched_setaffinity(int(thread), cpus)
    await client.run(pin, theirs)
    await client.run_on_scheduler(pin, theirs)
    pin(mine)
    try:
        yield
    finally:
        pin(set(cores))
        await client.run(pin, set(cores))
        await client.run_on_scheduler(pin, set(cores))


async def part_phases(rounds: int) -> None:
    from osqr_nb.cluster.connect import Connection
    from osqr_nb.cluster.host import ClusterHost
    from osqr_nb.workspace.task_workspace import LocalHost
    print(f"\n5. {rounds} tasks one after another on one worker, each starting from the last one's commit: "
          "median ms per phase (the first two left out)")
    cluster, client = await cluster_client(1)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            repo = make_repo(Path(scratch) / "r", files=20)
            head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
            hosts = {"local": LocalHost(repo, "pl"), "cluster": ClusterHost(Connection(client), repo, "pc")}
            for name, host in hosts.items():
                phases = await _phases(host, head, rounds)
                print(f"  {name:<8}" + "  ".join(f"{k} {statistics.median(v[2:]) * 1000:.0f}" for k, v in phases.items())
                      + f"   total {sum(statistics.median(v[2:]) for v in phases.values()) * 1000:.0f} ms")
    finally:
        await client.close()
        await cluster.close()


async def _phases(host, start: str, rounds: int) -> dict[str, list[float]]:
    """Time each phase of `rounds` tasks made by `host`, one after another."""
    phases: dict[str, list[float]] = {}

    async def timed(name, step):
        before = time.perf_counter()
        result = await step
        phases.setdefault(name, []).append(time.perf_counter() - before)
        return result
    for i in range(rounds):
        workspace = host.make(f"t{i}", f"osqr/{host.run_id}/t{i}", lambda *a, **k: None)
        await timed("open", workspace.open(start, fresh=True))
        await timed("write", workspace.call("write_file", {"path": f"out/{i}.txt", "content": f"{i}\n"}))
        await timed("command", workspace.run_command(COMMAND, 60))
        await timed("snapshot", _turn_done(workspace))
        start = (await timed("save", workspace.save(f"task {i}", "bench"))).commit
        await timed("close", workspace.close())
    return phases


async def _turn_done(workspace) -> None:
    """The end of a turn, and the snapshot it sends on its way (a workspace's next call waits for it)."""
    await workspace.turn_done()
    settled = getattr(workspace, "_settled", None)
    if settled is not None:
        await settled()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--sizes", type=int, nargs="*", default=[100, 1000, 5000])
    parser.add_argument("--sim", type=int, default=1000, help="tasks of the simulated run (0: skip it)")
    parser.add_argument("--sim-limit", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=20, help="tasks of part 5")
    parser.add_argument("--parts", default="12345")
    args = parser.parse_args()
    from osqr_nb.config import settings
    settings().scripted_delay = 0.0
    settings().learn_thresholds = settings().learn_routes = False
    store = tempfile.TemporaryDirectory(prefix="osqr-scale-out-")
    os.environ["OSQR_PKV"] = str(Path(store.name) / "pkv.sqlite")   # the person's own store is not a benchmark's
    if "1" in args.parts:
        asyncio.run(part_plan(args.tasks, args.limit))
    if "2" in args.parts:
        asyncio.run(part_round_trip(args.calls))
    if "3" in args.parts:
        asyncio.run(part_bundles(args.sizes))
    if "4" in args.parts and args.sim:
        asyncio.run(part_simulated(args.sim, 4, args.sim_limit, (0.5, 1.5)))
    if "5" in args.parts:
        asyncio.run(part_phases(args.rounds))


if __name__ == "__main__":
    main()
