"""Scheduler overhead: microseconds of orchestration per no-op task.

Builds a seeded layered random DAG (default 10,000 nodes: 100 layers of 100,
each node of layer k>0 depending on 1-3 random nodes of layer k-1) and runs it
through `osqr_nb.engine.schedule` with `async def work(node): return None`,
unlimited and with max_parallel=8. A bare-asyncio baseline (one coroutine per
node awaiting its predecessors' asyncio.Events, then setting its own, all under
one gather) runs in the same process on the same graph.

Targets: the unlimited scheduler under 50 µs per task and within 3x of the
bare-asyncio baseline. The max_parallel=8 figure is reported, not judged.

    python benchmarks/scheduler_overhead.py [--nodes 10000] [--repeat 5] [--seed 0] [--check]

Exit code 0 unless --check is given and a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import sys
import time

import networkx as nx

from osqr_nb.engine import schedule

TARGET_US = 50.0
TARGET_RATIO = 3.0


def layered_dag(nodes: int, seed: int, width: int = 100) -> nx.DiGraph:
    rng = random.Random(seed)
    graph = nx.DiGraph()
    previous: list[int] = []
    for start in range(0, nodes, width):
        layer = list(range(start, min(start + width, nodes)))
        graph.add_nodes_from(layer)
        if previous:
            for node in layer:
                for pred in rng.sample(previous, rng.randint(1, min(3, len(previous)))):
                    graph.add_edge(pred, node)
        previous = layer
    return graph


async def work(node) -> None:
    return None


async def bare_asyncio(graph: nx.DiGraph) -> None:
    events = {n: asyncio.Event() for n in graph}

    async def one(node) -> None:
        for pred in graph.predecessors(node):
            await events[pred].wait()
        await work(node)
        events[node].set()

    await asyncio.gather(*(one(n) for n in graph))


def check_order(graph: nx.DiGraph, max_parallel: int | None) -> None:
    """Fail loudly if the scheduler skipped a node or ran one before its inputs."""
    done: list = []

    async def record(node) -> None:
        done.append(node)

    asyncio.run(schedule(graph, record, max_parallel=max_parallel))
    position = {node: i for i, node in enumerate(done)}
    assert len(position) == len(graph) == len(done), "a node was skipped or run twice"
    assert all(position[u] < position[v] for u, v in graph.edges), "a node ran before its inputs"


def timed(make_coro) -> float:
    """Seconds for one asyncio.run of the coroutine (loop setup excluded)."""
    async def body() -> float:
        start = time.perf_counter()
        await make_coro()
        return time.perf_counter() - start
    gc.collect()
    return asyncio.run(body())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()

    graph = layered_dag(args.nodes, args.seed)
    n = graph.number_of_nodes()
    check_order(graph, None)
    check_order(graph, 8)
    cases = {
        "bare asyncio (events + gather)": lambda: bare_asyncio(graph),
        "osqr schedule, max_parallel=None": lambda: schedule(graph, work, max_parallel=None),
        "osqr schedule, max_parallel=8": lambda: schedule(graph, work, max_parallel=8),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeat):                 # interleave so drift hits every case alike
        for name, make in cases.items():
            samples[name].append(timed(make) / n * 1e6)

    print(f"{n} no-op tasks, {graph.number_of_edges()} edges, seed {args.seed}, "
          f"{args.repeat} repeats; Python {sys.version.split()[0]}")
    print(f"{'case':<36} {'best µs/task':>12} {'median':>8} {'vs bare':>8}")
    base = min(samples["bare asyncio (events + gather)"])
    for name, values in samples.items():
        best = min(values)
        print(f"{name:<36} {best:>12.1f} {statistics.median(values):>8.1f} {best / base:>7.2f}x")

    ours = min(samples["osqr schedule, max_parallel=None"])
    checks = [(f"schedule under {TARGET_US:.0f} µs/task", ours < TARGET_US, f"{ours:.1f} µs"),
              (f"schedule within {TARGET_RATIO:.0f}x of bare asyncio", ours / base <= TARGET_RATIO,
               f"{ours / base:.2f}x")]
    for label, ok, figure in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {label}: {figure}")
    return 1 if args.check and not all(ok for _, ok, _ in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
