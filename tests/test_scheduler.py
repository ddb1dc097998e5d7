import asyncio

import networkx as nx
import pytest

from osqr_nb.engine import Scheduler, schedule
from osqr_nb.engine.scheduler import SchedulerCancelled, remaining_path_lengths

from conftest import run_async


def diamond() -> nx.DiGraph:
    return nx.DiGraph([("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")])


def test_every_node_starts_after_its_predecessors_finish():
    graph = nx.gnp_random_graph(60, 0.1, seed=3, directed=True)
    graph = nx.DiGraph((u, v) for u, v in graph.edges if u < v)
    finished: set = set()

    async def work(node):
        assert set(graph.predecessors(node)) <= finished
        await asyncio.sleep(0.001 * (node % 3))
        finished.add(node)
        return node * 2

    results = run_async(schedule(graph, work))
    assert results == {n: n * 2 for n in graph}


def test_a_task_starts_as_soon_as_its_inputs_are_done_not_a_whole_generation_later():
    # slow -> after_slow, and fast -> after_fast: after_fast must not wait for slow.
    graph = nx.DiGraph([("slow", "after_slow"), ("fast", "after_fast")])
    started = {}

    async def work(node):
        started[node] = asyncio.get_running_loop().time()
        await asyncio.sleep(0.3 if node == "slow" else 0.01)

    run_async(schedule(graph, work))
    assert started["after_fast"] - started["fast"] < 0.15


def test_parallel_limit_is_respected():
    graph = nx.DiGraph()
    graph.add_nodes_from(range(20))
    running = peak = 0

    async def work(node):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.005)
        running -= 1

    run_async(schedule(graph, work, max_parallel=3))
    assert peak == 3


def test_longest_remaining_path_goes_first_when_slots_are_scarce():
    # 'short' is a lone task; 'head' starts a chain of 4. With one slot, the chain goes first.
    graph = nx.DiGraph([("head", "x1"), ("x1", "x2"), ("x2", "x3")])
    graph.add_node("short")
    order = []

    async def work(node):
        order.append(node)

    run_async(schedule(graph, work, max_parallel=1))
    assert order[0] == "head"
    assert remaining_path_lengths(graph)["head"] == 4


def test_pause_holds_new_starts_and_resume_releases_them():
    graph = nx.DiGraph([("a", "b")])
    started = []

    async def main():
        scheduler = Scheduler(graph, work)
        runner = asyncio.ensure_future(scheduler.run())
        await asyncio.sleep(0.01)
        scheduler.pause()
        await asyncio.sleep(0.1)
        assert started == ["a"], "b must not start while paused"
        scheduler.resume()
        await runner
        assert started == ["a", "b"]

    async def work(node):
        started.append(node)
        await asyncio.sleep(0.03)

    run_async(main())


def test_cancel_stops_running_work_and_raises():
    graph = nx.DiGraph([("a", "b")])
    cancelled = []

    async def work(node):
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(node)
            raise

    async def main():
        scheduler = Scheduler(graph, work)
        runner = asyncio.ensure_future(scheduler.run())
        await asyncio.sleep(0.02)
        scheduler.cancel()
        with pytest.raises(SchedulerCancelled):
            await runner

    run_async(main())
    assert cancelled == ["a"]


def test_first_error_is_raised_and_cancels_the_rest():
    graph = nx.DiGraph()
    graph.add_nodes_from(["bad", "slow"])
    graph.add_edge("bad", "never")

    async def work(node):
        if node == "bad":
            raise ValueError("boom")
        await asyncio.sleep(10)

    with pytest.raises(ValueError, match="boom"):
        run_async(schedule(graph, work), timeout=5)


def test_skip_mode_skips_only_descendants_of_a_failure():
    graph = nx.DiGraph([("bad", "child"), ("child", "grandchild"), ("ok", "ok_child")])

    async def work(node):
        if node == "bad":
            raise RuntimeError("no")
        return node

    scheduler = Scheduler(graph, work, on_error="skip")
    results = run_async(scheduler.run())
    assert set(results) == {"ok", "ok_child"}
    assert scheduler.skipped == {"child", "grandchild"}
    assert set(scheduler.errors) == {"bad"}


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="at least 1"):
        Scheduler(nx.DiGraph(), lambda n: None, max_parallel=0)
    with pytest.raises(ValueError, match="cycle"):
        Scheduler(nx.DiGraph([(1, 2), (2, 1)]), lambda n: None)


def test_an_empty_graph_finishes_at_once():
    assert run_async(schedule(nx.DiGraph(), lambda n: None)) == {}


def test_a_partial_edge_lets_the_dependent_start_once_its_input_has_started():
    graph = nx.DiGraph()
    graph.add_edge("schema", "auth", partial=True)
    graph.add_edge("auth", "docs")
    events = []

    async def work(node):
        events.append(f"start {node}")
        await asyncio.sleep(0.05 if node == "schema" else 0.01)
        events.append(f"end {node}")

    run_async(schedule(graph, work))
    assert events.index("start auth") < events.index("end schema")     # started on partial input
    assert events.index("start docs") > events.index("end auth")       # a plain edge still waits


def test_a_node_added_mid_run_waits_for_its_inputs_then_runs():
    graph = nx.DiGraph([("a", "b")])
    order = []

    async def work(node):
        order.append(node)
        await asyncio.sleep(0.02)

    async def main():
        scheduler = Scheduler(graph, work)
        runner = asyncio.ensure_future(scheduler.run())
        await asyncio.sleep(0.005)
        graph.add_edge("b", "late")
        scheduler.add("late")
        graph.add_node("free")
        scheduler.add("free")
        await runner
        return scheduler

    scheduler = run_async(main())
    assert order.index("late") > order.index("b") and set(scheduler.results) == {"a", "b", "late", "free"}
