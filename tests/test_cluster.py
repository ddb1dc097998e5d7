"""Tasks' workspaces on a real Dask cluster: a scheduler and two worker processes over TCP on
loopback, started by these tests. The agents stay here; their files live on the workers."""

import asyncio
import os
import signal
import subprocess
import sys
import textwrap

import cloudpickle
import pytest

distributed = pytest.importorskip("distributed")

import osqr_nb
from osqr_nb import Plan, Task
from osqr_nb.cluster import ClusterError, bundles, check
from osqr_nb.config import settings
from osqr_nb.models.base import Reply, ToolCall
from osqr_nb.models.scripted import ScriptedModel
from osqr_nb.ui.dashboard import render_rows
from osqr_nb.ui.snapshot import describe_run
from osqr_nb.workspace.git import git as agit

from conftest import SEED_REQUEST, git, run_async, seed_run

SECRET = "osqr-test-secret-XYZ-4f1c9a"          # planted in the kernel; must never reach a worker
MARKER = "osqr-visible-marker-7d2e"              # a string the workers must receive (the recorder works)

cloudpickle.register_pickle_by_value(sys.modules[__name__])    # the recorder below runs on the workers


# -- the cluster and what its workers receive --------------------------------------------------------

class Recorder(distributed.WorkerPlugin):
    """On each worker: keeps every frame the worker process reads from the network."""

    name = "osqr-test-recorder"

    def setup(self, worker):
        import distributed.comm.tcp as tcp
        if getattr(tcp.from_frames, "recording", False):
            return
        original, tcp.received_frames = tcp.from_frames, []     # kept on a module the worker imported

        async def from_frames(frames, *args, **kwargs):
            tcp.received_frames.append(b"".join(bytes(f) for f in frames))
            return await original(frames, *args, **kwargs)

        from_frames.recording = True
        tcp.from_frames = from_frames


def _search(reversed_needles):
    """Run on a worker: which needles its received frames hold (sent reversed, so that asking is
    not itself a message holding them)."""
    import distributed.comm.tcp as tcp
    data = b"".join(tcp.received_frames)
    return {n[::-1]: n[::-1].encode() in data for n in reversed_needles} | {"bytes": len(data)}


@pytest.fixture(scope="module")
def dask_cluster():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True, protocol="tcp",
                                       host="127.0.0.1", dashboard_address=":0")
    with distributed.Client(cluster) as client:
        client.register_plugin(Recorder())
    yield cluster
    cluster.close()


@pytest.fixture
def cluster_run(dask_cluster, monkeypatch):
    """Runs a coroutine with an asynchronous client on its loop, the secret planted in the kernel."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    settings().providers = {"anthropic": {"api_key": SECRET}}

    def go(body, timeout=120):
        async def main():
            async with distributed.Client(dask_cluster.scheduler_address, asynchronous=True,
                                          direct_to_workers=True) as client:
                return await body(client)
        return run_async(main(), timeout)
    yield go
    settings().providers = {}


async def received(client) -> dict:
    answers = await client.run(_search, [SECRET[::-1], MARKER[::-1]])
    return answers


# -- a scripted model ------------------------------------------------------------------------------

class Turns:
    """Plays, per task, a write per turn, a command, then finish; `delay` seconds per reply."""

    name = "test model"

    def __init__(self, writes=2, delay=0.0):
        self.writes, self.delay = writes, delay

    async def complete(self, system, messages, tools):
        await asyncio.sleep(self.delay)
        task_id = next(line[4:] for line in messages[0]["content"].splitlines() if line.startswith("id: "))
        step = sum(1 for m in messages if m["role"] == "assistant")
        if step < self.writes:
            call = ("write_file", {"path": f"out/{task_id}/{step}.txt", "content": f"{MARKER} {task_id} {step}\n"})
        elif step == self.writes:
            call = ("run_command", {"command": ["python3", "-c", "print(sum(range(10000)))"]})
        else:
            call = ("finish", {"summary": f"{task_id} done"})
        return Reply(tool_calls=[ToolCall(f"c{step}", *call)], stop_reason="tool_use")


def layered_plan(count: int) -> Plan:
    """`count` tasks in layers of five, each depending on one task of the layer before."""
    tasks = [Task(f"t{i:02d}", f"Task {i}", "code", f"Write the files of task {i}",
                  depends_on=[f"t{i - 5:02d}"] if i >= 5 else []) for i in range(count)]
    return Plan(tasks)


def events(run, kind):
    return [e for e in run.log.read(run.id) if e.type == kind]


# -- tests -----------------------------------------------------------------------------------------

def _clones_of(run_id, dask_worker=None):
    """Run on a worker: the run's clone folders in its local directory."""
    import glob
    return glob.glob(os.path.join(dask_worker.local_directory, f"osqr-{run_id}-*"))


async def clones_left(client, run_id, wait=10.0) -> dict:
    """The workers still holding a folder of the run's, once they have had `wait` s to remove them."""
    for _ in range(int(wait / 0.1)):
        left = {w: found for w, found in (await client.run(_clones_of, run_id)).items() if found}
        if not left:
            break
        await asyncio.sleep(0.1)
    return left


def test_the_seed_request_runs_on_the_cluster(repo, cluster_run):
    async def body(client):
        seed = asyncio.ensure_future(seed_run(repo, cluster=client, model=ScriptedModel()))   # the key planted:
        held = set()                                                                          # no routing
        while not seed.done():
            last = osqr_nb.last_run()
            if last is not None and last.root == repo:
                held |= {w for w, found in (await client.run(_clones_of, last.id)).items() if found}
            await asyncio.sleep(0.05)
        run = await seed
        return run, await received(client), held, await clones_left(client, run.id)
    run, seen, held, left = cluster_run(body)
    assert run.status == "complete", run.state.error
    # while its tasks ran, a worker held the run's clone; once all were complete, none holds any
    assert held and left == {}
    files = set(git(repo, "ls-tree", "-r", "--name-only", f"osqr/{run.id}/integration").split())
    assert {"db/schema.sql", "auth/sessions.py", "docs/API.md", "app.py"} <= files
    workers = {e.data["worker"] for e in events(run, "task_started")}
    assert all(w.startswith("tcp://127.0.0.1:") for w in workers)
    assert all(e.data["worker"] in workers for e in events(run, "workspace_ready"))
    # the dashboard and the sidebar say where each task ran
    shown = describe_run(run)["tasks"]
    assert all(t["worker"] in workers and "· 127.0.0.1:" in t["model_text"] for t in shown)
    assert shown[0]["worker"].split("://")[1] in render_rows(shown)
    assert not any(answer[SECRET] for answer in seen.values())
    # nothing of the workers' is left in the user's repository: the snapshots' refs went with the tasks
    assert git(repo, "for-each-ref", "refs/osqr/") == ""
    assert git(repo, "status", "--porcelain") == ""


def test_twenty_tasks_on_both_workers_and_no_key_reaches_a_worker(repo, cluster_run):
    async def body(client):
        run = osqr_nb.start(plan=layered_plan(20), repo=repo, model=Turns(), max_parallel=8, tier=4,
                            cluster=client)
        await run
        return run, await received(client), list((await client.scheduler.identity(n_workers=-1))["workers"])
    run, seen, workers = cluster_run(body)
    assert run.status == "complete", run.state.error
    files = set(git(repo, "ls-tree", "-r", "--name-only", f"osqr/{run.id}/integration").split())
    assert {f"out/t{i:02d}/{s}.txt" for i in range(20) for s in (0, 1)} <= files
    placed = {e.data["worker"] for e in events(run, "task_started")}
    assert placed == set(workers), "tasks ran on both workers"
    # past each worker's first task, commits travelled as objects both ways, not as bundles
    assert run.workspaces.loose_on == {w: True for w in workers} and run.workspaces._loose_here
    assert {e.data["sandbox"] for e in events(run, "command")} <= {"bwrap", "none"}
    # what the workers received: the agents' tool calls (the marker), never the kernel's key
    assert all(answer[MARKER] for answer in seen.values()), seen
    assert not any(answer[SECRET] for answer in seen.values()), seen
    # a dependent started from its input's commit, fetched back from the worker that made it
    for i in range(5, 20):
        git(repo, "merge-base", "--is-ancestor", f"osqr/{run.id}/t{i - 5:02d}", f"osqr/{run.id}/t{i:02d}")


def test_a_killed_worker_costs_no_task(repo, cluster_run):
    async def body(client):
        pids = await client.run(os.getpid)
        run = osqr_nb.start(plan=layered_plan(12), repo=repo, model=Turns(writes=4, delay=0.15),
                            max_parallel=6, tier=4, cluster=client)
        victim = None
        while victim is None and not run.done:
            await asyncio.sleep(0.05)
            running = [e.data["worker"] for e in events(run, "task_started")
                       if run.tasks[e.task_id].status == "running"]
            busy = [w for w in set(running) if running.count(w) >= 2 and w in pids]
            if busy and len(events(run, "model_reply")) >= 6:
                victim = busy[0]
                os.kill(pids[victim], signal.SIGKILL)
        await run
        return run, victim
    run, victim = cluster_run(body, timeout=180)
    assert victim is not None, "the run ended before a worker could be killed"
    assert run.status == "complete", (run.state.error, [e.data for e in events(run, "task_failed")])
    moved = events(run, "task_moved")
    assert moved and all(e.data["from_worker"] == victim and e.data["worker"] != victim for e in moved)
    assert not events(run, "task_failed")
    assert all(s.attempt == 1 for s in run.tasks.values()), "moved tasks went on; none started again"
    files = set(git(repo, "ls-tree", "-r", "--name-only", f"osqr/{run.id}/integration").split())
    assert {f"out/t{i:02d}/{s}.txt" for i in range(12) for s in range(4)} <= files


def test_bad_cluster_settings_say_what_works():
    for bad in ("local:0", "local:x", "my-cluster", 8786):
        with pytest.raises(ClusterError, match="local:N"):
            check(bad)
    assert check("none") is None and check(None) is None and check("tls://10.0.0.1:8786")
    with pytest.raises(Exception, match="OSQR.cluster"):
        settings().cluster = "kubernetes"
    assert settings().cluster is None


def test_the_magic_refuses_a_bad_cluster():
    from IPython.core.error import UsageError
    from osqr_nb.magics import parse_line, run_options
    with pytest.raises(UsageError, match="--cluster"):
        parse_line("--cluster local:0", cell=True)
    with pytest.raises(UsageError, match="cluster"):
        parse_line("status --cluster local:2", cell=False)
    assert run_options(parse_line("--cluster local:2", cell=True))["cluster"] == "local:2"
    assert parse_line("resume r1 --cluster tcp://10.0.0.1:8786", cell=False).cluster == "tcp://10.0.0.1:8786"
    with pytest.raises(UsageError, match="--cluster"):
        parse_line("resume --cluster local:0", cell=False)


def test_bundles_carry_only_what_the_other_side_lacks(tmp_path, repo):
    async def body():
        other = tmp_path / "other.git"
        await agit(tmp_path, "init", "-q", "--bare", str(other))
        base = git(repo, "rev-parse", "HEAD").strip()
        full = await bundles.make(repo, "refs/heads/main", [])
        await bundles.take(other, full, "refs/heads/main", "refs/heads/main")
        assert git(other, "rev-parse", "refs/heads/main").strip() == base
        (repo / "new.txt").write_text("new\n")
        git(repo, "add", "new.txt")
        git(repo, "commit", "-q", "-m", "new")
        tip = git(repo, "rev-parse", "HEAD").strip()
        thin = await bundles.make(repo, "refs/heads/main", [base])
        assert len(thin) < len(full) + 200
        await bundles.take(other, thin, "refs/heads/main", "refs/osqr/in")
        assert git(other, "rev-parse", "refs/osqr/in").strip() == tip
        assert await bundles.make(repo, "refs/heads/main", [tip]) is None
        assert await bundles.present(other, [tip, "1" * 40]) == [tip]
    asyncio.run(body())


def test_a_blocking_client_the_person_made_is_reopened_on_the_loop(repo, dask_cluster):
    with distributed.Client(dask_cluster.scheduler_address, direct_to_workers=True) as blocking:
        async def body():
            run = osqr_nb.start(plan=layered_plan(3), repo=repo, model=Turns(writes=1), tier=4,
                                cluster=blocking)
            await run
            await run.workspaces.connection.close()     # its own asynchronous client; not the person's
            return run
        run = run_async(body())
        assert blocking.status == "running"
    assert run.status == "complete", run.state.error
    assert all(e.data["worker"].startswith("tcp://") for e in events(run, "task_started"))


def test_local_n_starts_workers_without_the_kernels_keys(repo, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)

    async def body():
        run = osqr_nb.start(plan=layered_plan(2), repo=repo, model=Turns(writes=1), tier=4, cluster="local:1")
        await run
        connection = run.workspaces.connection
        client = await connection.client()
        seen = await client.run(lambda: os.environ.get("ANTHROPIC_API_KEY"))
        await connection.close()
        return run, seen
    run, seen = run_async(body())
    assert run.status == "complete", run.state.error
    assert list(seen.values()) == [""]


def test_placement_fills_declared_sandboxes_prefers_the_worker_with_the_start_and_avoids_lost_ones():
    from osqr_nb.cluster.pool import ActorPool

    class Scheduler:
        async def identity(self, n_workers):
            return {"workers": {"tcp://a:1": {"resources": {"sandbox": 2}}, "tcp://b:1": {"resources": {}},
                                "tcp://c:1": {"resources": {"sandbox": 1}}}}

    class Client:
        scheduler = Scheduler()

    class Connection:
        gone: set = set()

        async def client(self):
            return Client()

    class Holder:
        """A workspace, as the pool sees it (held weakly)."""

    async def body():
        pool = ActorPool(Connection())
        holders = [Holder() for _ in range(4)]
        nowhere = lambda worker: False
        first = await pool.reserve(holders[0], nowhere)
        second = await pool.reserve(holders[1], lambda worker: worker == "tcp://a:1")   # a holds the start
        third = await pool.reserve(holders[2], nowhere)
        assert (first, second, third) == ("tcp://a:1", "tcp://a:1", "tcp://c:1")      # never b: no sandbox
        waiting = asyncio.create_task(pool.reserve(holders[3], nowhere))               # every sandbox taken
        await asyncio.sleep(0.05)
        assert not waiting.done()
        pool.release("tcp://c:1", holders[2], None)
        assert await asyncio.wait_for(waiting, 1) == "tcp://c:1"
        del holders[0]                            # a workspace that failed without closing frees its place
        assert pool.busy("tcp://a:1") == 1
        Connection.gone.add("tcp://a:1")
        assert pool.choose(await pool.workers(), nowhere) is None                      # c is full, a is lost
    asyncio.run(body())


def test_two_kernels_on_one_cluster_together_fill_a_worker_no_more_than_its_sandboxes():
    """Each worker declares one sandbox; two kernels (two clients, two pools) share the cluster."""
    from osqr_nb.cluster.connect import Connection
    from osqr_nb.cluster.pool import ActorPool

    class Holder:
        """A workspace, as the pool sees it (held weakly)."""

    async def body():
        async with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, asynchronous=True,
                                            dashboard_address=None, resources={"sandbox": 1}) as cluster:
            async with distributed.Client(cluster, asynchronous=True) as a, \
                    distributed.Client(cluster, asynchronous=True) as b:
                kernel_a, kernel_b = ActorPool(Connection(a)), ActorPool(Connection(b))
                nowhere = lambda worker: False
                mine = [Holder(), Holder()]
                held = [await kernel_a.reserve(h, nowhere) for h in mine]
                assert sorted(held) == sorted(cluster.scheduler.workers)          # one on each worker
                theirs = Holder()
                waiting = asyncio.create_task(kernel_b.reserve(theirs, nowhere))
                await asyncio.sleep(1.0)
                assert not waiting.done(), "kernel B waits: kernel A holds every sandbox"
                kernel_a.release(held[0], mine[0], None)
                assert await asyncio.wait_for(waiting, 5) == held[0]
                late = asyncio.create_task(kernel_b.reserve(Holder(), nowhere))
                await asyncio.sleep(0.5)
                assert not late.done()
                del mine[1]                    # a workspace that failed without closing gives its lease back
                assert await asyncio.wait_for(late, 5) == held[1]
    asyncio.run(body())


def test_the_scale_out_benchmark_runs_and_prints(capsys):
    """benchmarks/scale_out.py at a small size (CI runs it; its figures are printed, not timed)."""
    from conftest import load_benchmark
    bench = load_benchmark("scale_out")
    settings().learn_thresholds = settings().learn_routes = False
    try:
        asyncio.run(bench.part_plan(10, 4))
        asyncio.run(bench.part_round_trip(20))
        asyncio.run(bench.part_bundles([20]))
        asyncio.run(bench.part_simulated(20, 2, 10, (0.0, 0.05)))
        asyncio.run(bench.part_phases(4))
    finally:
        settings().learn_thresholds = settings().learn_routes = True
    out = capsys.readouterr().out
    print(out)
    for line in ("cluster overhead per task", "cluster  p50", "kernel loop p99 lateness on the cluster",
                 "opening and closing a workspace", "cluster open"):
        assert line in out
    if len(os.sched_getaffinity(0)) >= 2:
        assert "with the kernel on a core of its own" in out


def test_a_worker_that_lacks_what_the_kernel_remembers_is_sent_what_it_lacks(repo, cluster_run):
    """The kernel sends thin bundles against the commits it believes a worker holds; a worker
    whose clone is new (restarted, or a new run's) says so, and gets a bundle it can take."""
    from osqr_nb.cluster.connect import Connection
    from osqr_nb.cluster.host import ClusterHost

    base = git(repo, "rev-parse", "HEAD").strip()
    (repo / "later.txt").write_text("later\n")
    git(repo, "add", "later.txt")
    git(repo, "commit", "-q", "-m", "later")
    tip = git(repo, "rev-parse", "HEAD").strip()

    async def body(client):
        host = ClusterHost(Connection(client), repo, "lacking")
        for worker in (await client.scheduler.identity(n_workers=-1))["workers"]:
            host.saw(worker, base)                 # wrong: this run sent nothing there yet
        workspace = host.make("t", "osqr/lacking/t", lambda *a, **k: None)
        await workspace.open(tip, fresh=True)
        text = await workspace.call("read_file", {"path": "later.txt"})
        await workspace.close()
        return text
    assert "later" in cluster_run(body)


KILLED_CLUSTER_RUN = textwrap.dedent("""
    import asyncio, os, signal
    import osqr_nb
    from osqr_nb import Plan, Task
    from osqr_nb.config import settings
    from osqr_nb.models.base import Reply, ToolCall
    settings().scripted_delay = 0.0

    class BeforeTheCrash:
        name = "test model"

        def __init__(self):
            self.waiting = asyncio.Event()

        async def complete(self, system, messages, tools):
            task_id = next(line[4:] for line in messages[0]["content"].splitlines() if line.startswith("id: "))
            step = sum(1 for m in messages if m["role"] == "assistant")
            write = lambda n: ("write_file", {{"path": f"out/{{task_id}}/{{n}}.txt", "content": f"{{task_id}} {{n}}\\n"}})
            if task_id == "slow":      # a write, a command (a snapshot follows), a write only the worker has
                script = [write(0), ("run_command", {{"command": ["python3", "-c", "print(1)"]}}), write(1)]
                if step == len(script):
                    self.waiting.set()
                    await asyncio.sleep(3600)          # the kernel dies while this agent waits
            else:
                script = [write(0)]
            name, args = script[step] if step < len(script) else ("finish", {{"summary": task_id}})
            return Reply(tool_calls=[ToolCall(f"c{{step}}", name, args)], stop_reason="tool_use")

    async def main():
        plan = Plan([Task("a", "A", "code", "Write a"), Task("slow", "Slow", "code", "Write slowly"),
                     Task("c", "C", "code", "Write c", depends_on=["a"]),
                     Task("d", "D", "code", "Write d", depends_on=["slow"])])
        model = BeforeTheCrash()
        run = osqr_nb.start(plan=plan, repo={repo!r}, model=model, tier=4, cluster={address!r})
        await asyncio.wait_for(model.waiting.wait(), 60)
        while run.tasks["c"].status != "complete":
            await asyncio.sleep(0.05)
        print(run.id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())
""")


class AfterTheRestart:
    """A resumed task reads back what it wrote before the kernel died, and finishes; others write."""

    name = "test model"

    async def complete(self, system, messages, tools):
        task_id = next(line[4:] for line in messages[0]["content"].splitlines() if line.startswith("id: "))
        step = sum(1 for m in messages if m["role"] == "assistant")
        if "interrupted and restarted" in messages[0]["content"]:
            script = [("read_file", {"path": f"out/{task_id}/{n}.txt"}) for n in (0, 1)]
        else:
            script = [("write_file", {"path": f"out/{task_id}/0.txt", "content": f"{task_id} 0\n"})]
        name, args = script[step] if step < len(script) else ("finish", {"summary": task_id})
        return Reply(tool_calls=[ToolCall(f"c{step}", name, args)], stop_reason="tool_use")


def _forget_clones():
    """Run on a worker: as if it had restarted since (its clones and worktrees gone)."""
    from osqr_nb.cluster import worker_side
    worker_side._clones.clear()


def _kill_a_cluster_run(repo, dask_cluster) -> str:
    script = KILLED_CLUSTER_RUN.format(repo=str(repo), address=dask_cluster.scheduler_address)
    died = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert died.returncode == -signal.SIGKILL, died.stderr[-3000:]
    return died.stdout.strip()


def _resume_on(cluster_run, repo, run_id, before=None):
    async def body(client):
        if before is not None:
            await client.run(before)
        run = osqr_nb.resume(run_id, repo=repo, model=AfterTheRestart(), cluster=client)
        await run
        seen = await received(client)          # the killed kernel had the key too (its environment)
        assert not any(answer[SECRET] for answer in seen.values()), seen
        return run
    return cluster_run(body)


def test_a_cluster_run_whose_kernel_died_is_resumed_there_and_loses_no_work(repo, dask_cluster, cluster_run):
    run = _resume_on(cluster_run, repo, _kill_a_cluster_run(repo, dask_cluster))
    assert run.status == "complete", run.state.error
    started = {}
    for event in events(run, "task_started"):
        started.setdefault(event.task_id, []).append(event.data["worker"])
    assert len(started["a"]) == len(started["c"]) == 1, "finished tasks are not run again"
    assert len(started["slow"]) == 2 and len(started["d"]) == 1
    assert started["slow"][0] == started["slow"][1], "the resumed task went back to its worker"
    reads = [e for e in events(run, "tool_call") if e.task_id == "slow" and e.data["name"] == "read_file"]
    assert len(reads) == 2 and all(e.data["ok"] for e in reads), [e.data for e in reads]
    # both writes reached the branch, the second one never snapshotted: kept on the worker
    files = set(git(repo, "ls-tree", "-r", "--name-only", f"osqr/{run.id}/integration").split())
    assert {"out/a/0.txt", "out/c/0.txt", "out/d/0.txt", "out/slow/0.txt", "out/slow/1.txt"} <= files
    assert git(repo, "show", f"osqr/{run.id}/slow:out/slow/1.txt") == "slow 1\n"
    assert git(repo, "for-each-ref", "refs/osqr/") == ""


def test_a_resumed_task_whose_worker_kept_nothing_goes_on_from_its_last_snapshot(repo, dask_cluster,
                                                                                  cluster_run):
    run = _resume_on(cluster_run, repo, _kill_a_cluster_run(repo, dask_cluster), before=_forget_clones)
    assert run.status == "complete", run.state.error
    reads = {e.data["path"]: e.data["ok"] for e in events(run, "tool_call")
             if e.task_id == "slow" and e.data["name"] == "read_file"}
    assert reads == {"out/slow/0.txt": True, "out/slow/1.txt": False}   # the snapshot had the first
    files = set(git(repo, "ls-tree", "-r", "--name-only", f"osqr/{run.id}/integration").split())
    assert {"out/a/0.txt", "out/c/0.txt", "out/d/0.txt", "out/slow/0.txt"} <= files
    assert len([e for e in events(run, "task_started") if e.task_id == "a"]) == 1


# -- the person's way: a scheduler address, a notebook cell ------------------------------------------

def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def machines(repo, tmp_path):
    """`dask scheduler` and two `dask worker` processes started as a person starts them on their
    machines; with bubblewrap, each worker sees an empty folder where the repository is: nothing
    of it reaches a worker but what osqr-nb sends."""
    from osqr_nb.agents.commands import sandbox_available
    address = f"tcp://127.0.0.1:{_free_port()}"
    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False")
    processes = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                   "--port", address.rsplit(":", 1)[1], "--dashboard-address", ":0"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    hidden = sandbox_available()
    for name in ("machine-a", "machine-b"):
        (tmp_path / name).mkdir()
        worker = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "2",
                  "--name", name, "--local-directory", str(tmp_path / name), "--no-nanny"]
        if hidden:
            worker = ["bwrap", "--dev-bind", "/", "/", "--tmpfs", str(repo), "--die-with-parent", *worker]
        processes.append(subprocess.Popen(worker, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        with distributed.Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
            sees = client.run(os.path.exists, str(repo / ".git"))
        yield address, hidden, sees
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.mark.kernel
def test_a_person_with_a_scheduler_address_runs_the_cell_on_its_workers(repo, machines):
    from kernel_driver import Kernel
    address, hidden, sees = machines
    if hidden:
        assert sees and not any(sees.values()), "the workers must not see the repository for this test to mean anything"
    kernel = Kernel(cwd=str(repo))
    try:
        kernel.execute("%load_ext osqr_nb\n%config OSQR.scripted_delay = 0.05\nimport osqr_nb")
        cell = kernel.execute(f"%%osqr --repo {repo} --tier 2 --cluster {address}\n{SEED_REQUEST}")
        assert any("application/vnd.jupyter.widget-view+json" in data for data in cell.results)
        kernel.wait_for("osqr_nb.last_run().status", "needs_input", timeout=120)
        assert kernel.execute("1+1").results == [{"text/plain": "2"}]     # the kernel answers meanwhile
        (button,) = kernel.buttons("DB Sessions")
        kernel.click(button)
        kernel.execute("await osqr_nb.last_run()", timeout=120)
        assert kernel.value("osqr_nb.last_run().status") == "complete"
        run_id = kernel.value("osqr_nb.last_run().id")
    finally:
        kernel.shutdown()
    events = osqr_nb.events(repo)
    started = events[events.type == "task_started"]
    assert len(started) == 3 and all(d["worker"].startswith("tcp://127.0.0.1:") for d in started.data)
    files = git(repo, "ls-tree", "-r", "--name-only", f"osqr/{run_id}/integration").split()
    assert {"db/schema.sql", "auth/sessions.py", "docs/API.md"} <= set(files)


# -- a worker's save right after its snapshot ----------------------------------------------------------

def test_a_save_right_after_a_snapshot_commits_the_files_as_they_are(repo):
    """A task that ran its tests and then finished: the snapshot's tree becomes the commit (no
    git process). Files the kernel merged in after the snapshot (`advance`) are kept, not undone."""
    from osqr_nb.cluster.worker_side import WorkspaceActor, forget_run
    from osqr_nb.cluster.host import command_settings

    async def body():
        start = await agit(repo, "rev-parse", "HEAD")
        start = start[1].strip()
        actor = WorkspaceActor()
        job = {"run_id": "snaprun", "task_id": "t1", "branch": "osqr/snaprun/t1", "sandbox": None,
               "settings": command_settings(), "start": start, "wip": None, "keep": False,
               "bundle": await bundles.make(repo, "HEAD", []), "wip_bundle": None, "loose": True}
        await actor.open(job)
        path = actor.workspace.path
        await actor.call("write_file", {"path": "a.txt", "content": "a\n"})
        await actor.run_command(["python3", "-c", "open('made.txt', 'w').write('by a command')"], 30)
        snap = await actor.snapshot()
        first = await actor.save("task one\n\nbody", "osqr-nb agent (t1)")
        trees = {git(path, "rev-parse", f"{c}^{{tree}}").strip() for c in (first["commit"], snap["commit"])}
        parent = git(path, "rev-parse", f"{first['commit']}^").strip()
        author = git(path, "log", "-1", "--format=%an|%s", first["commit"]).strip()
        status = git(path, "status", "--porcelain")
        # the kernel merges an input in on top; the task snapshots again, changes nothing, saves
        git(repo, "fetch", "-q", str(path.parent.parent / "repo.git"), f"+osqr/snaprun/t1:refs/heads/osqr/snaprun/t1")
        git(repo, "worktree", "add", "-q", str(repo.parent / "side"), "osqr/snaprun/t1")
        (repo.parent / "side" / "input.txt").write_text("from another task\n")
        git(repo.parent / "side", "add", "-A")
        git(repo.parent / "side", "commit", "-q", "-m", "input")
        merged = git(repo, "rev-parse", "osqr/snaprun/t1").strip()
        await actor.run_command(["python3", "-c", "print('tests pass')"], 30)
        await actor.snapshot()
        await actor.advance(merged, await bundles.make(repo, "refs/heads/osqr/snaprun/t1", [first["commit"]]))
        second = await actor.save("task one again", "osqr-nb agent (t1)")
        files = set(git(path, "ls-tree", "-r", "--name-only", second["commit"]).split())
        await actor.close()
        await forget_run("snaprun")
        return start, trees, parent, author, status, second, merged, files

    start, trees, parent, author, status, second, merged, files = run_async(body())
    assert len(trees) == 1, "the commit holds the snapshot's files"
    assert (parent, author) == (start, "osqr-nb agent (t1)|task one")
    assert status == "", "the worktree is clean after the save: the index holds the commit's tree"
    assert second["commit"] == merged, "nothing changed after the inputs came in: the save is their commit"
    assert {"a.txt", "made.txt", "input.txt"} <= files
