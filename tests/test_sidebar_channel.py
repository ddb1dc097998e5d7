"""The kernel's side of the JupyterLab sidebar, in a real kernel: the comm a front end sees,
the snapshots it gets, and its clicks answering a checkpoint (the browser test drives the UI)."""

import json
import time

import pytest

import osqr_nb

from conftest import SEED_REQUEST
from kernel_driver import Kernel

pytestmark = pytest.mark.kernel


@pytest.fixture
def kernel(repo):
    k = Kernel(cwd=str(repo))
    yield k
    k.shutdown()


def _comm_ids(kernel) -> list[str]:
    kernel.drain()
    return [c["comm_id"] for c in kernel.iopub if c.get("target_name") == "osqr"]


def _messages(kernel, comm_id: str) -> list[dict]:
    kernel.drain()
    return [c["data"] for c in kernel.iopub if c.get("comm_id") == comm_id and "target_name" not in c
            and isinstance(c.get("data"), dict) and "type" in c["data"]]


def _wait(kernel, comm_id: str, predicate, timeout: float = 30) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = [m for m in _messages(kernel, comm_id) if predicate(m)]
        if found:
            return found[-1]
        time.sleep(0.1)
    raise AssertionError(f"no such message; last: {(_messages(kernel, comm_id) or [None])[-1]}")


def _send(kernel, comm_id: str, data: dict) -> None:
    kernel.kc.shell_channel.send(kernel.kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data}))


def _run(message: dict) -> dict | None:
    return message["runs"][0] if message.get("runs") else None


def test_sidebar_sees_the_run_and_its_click_answers_the_checkpoint(kernel, repo):
    kernel.execute("%load_ext osqr_nb\n%config OSQR.scripted_delay = 0.05\nimport osqr_nb")
    (comm,) = _comm_ids(kernel)
    opened = next(c for c in kernel.iopub if c.get("comm_id") == comm and c.get("target_name"))
    assert opened["data"] == {"protocol": 2}
    assert _wait(kernel, comm, lambda m: m["type"] == "snapshot")["runs"] == []

    kernel.execute(f"%%osqr --repo {repo} --tier 2\n{SEED_REQUEST}")
    asked = _wait(kernel, comm, lambda m: _run(m) and _run(m)["checkpoints"])
    run = _run(asked)
    assert run["request"] == SEED_REQUEST and run["status"] == "needs_input" and not run["done"]
    statuses = {t["id"]: t["status"] for t in run["tasks"]}
    assert statuses["auth-module"] == "needs_input" and statuses["api-docs"] == "waiting"
    assert {t["id"]: t["depends_on"] for t in run["tasks"]}["api-docs"] == ["auth-module"]
    (checkpoint,) = run["checkpoints"]
    assert checkpoint["title"] == "AGENT CHECKPOINT: Auth Module"
    assert checkpoint["options"] == ["JWT", "DB Sessions", "Let me think"]

    # A label that is not an option comes back as an error; the checkpoint stays open.
    _send(kernel, comm, {"action": "resolve", "run": run["id"], "checkpoint": checkpoint["id"],
                         "answer": "Cookies"})
    error = _wait(kernel, comm, lambda m: m["type"] == "error")
    assert "'Cookies' is not an option" in error["message"]
    assert kernel.value("osqr_nb.last_run().status") == "needs_input"
    _send(kernel, comm, {"action": "resolve", "run": run["id"], "checkpoint": ["not", "an id"]})
    error = _wait(kernel, comm, lambda m: m["type"] == "error" and "no checkpoint" in m["message"])
    assert f"run {run['id']} has no checkpoint ['not', 'an id']" == error["message"]

    _send(kernel, comm, {"action": "resolve", "run": run["id"], "checkpoint": checkpoint["id"],
                         "answer": "DB Sessions"})
    done = _run(_wait(kernel, comm, lambda m: _run(m) and _run(m)["done"], timeout=60))
    assert done["status"] == "complete" and done["checkpoints"] == []
    assert done["counts"]["complete"] == 3
    assert all(t["model"] == "scripted (offline demo)" for t in done["tasks"])
    history = osqr_nb.history(repo)
    auth = history[history.task_id == "auth-module"].iloc[0]
    assert (auth.chosen, auth.decided_by) == ("DB Sessions", "human")

    # The notebook's own card followed the sidebar's click.
    assert any("decided by human" in str(s.get("value", "")) for s in kernel.widgets.values())

    # Nothing changes, nothing is sent.
    before = len(_messages(kernel, comm))
    time.sleep(1.0)
    assert len(_messages(kernel, comm)) == before


def test_a_sidebar_that_connects_later_opens_its_own_comm(kernel, repo):
    kernel.execute("%load_ext osqr_nb\nimport osqr_nb")
    kernel.kc.shell_channel.send(kernel.kc.session.msg("comm_open", {
        "comm_id": "sidebar-after-reload", "target_name": "osqr", "data": {}}))
    first = _wait(kernel, "sidebar-after-reload", lambda m: m["type"] == "snapshot")
    assert first["runs"] == []
    _send(kernel, "sidebar-after-reload", {"action": "pause", "run": "no-such-run"})
    error = _wait(kernel, "sidebar-after-reload", lambda m: m["type"] == "error")
    assert "no run 'no-such-run' in this kernel" in error["message"]
    _send(kernel, "sidebar-after-reload", {"action": "dance"})
    error = _wait(kernel, "sidebar-after-reload", lambda m: m["type"] == "error" and "dance" in m["message"])
    assert "known: hello, refresh, resolve, pause, resume" in error["message"]

    # A window that closes its comm gets nothing more; the others still do.
    kernel.kc.shell_channel.send(kernel.kc.session.msg("comm_close", {
        "comm_id": "sidebar-after-reload", "data": {}}))
    kernel.wait_for("len(osqr_nb._sidebar.comms)", "1")


def test_pause_and_resume_from_the_sidebar(kernel, repo):
    kernel.execute("%load_ext osqr_nb\n%config OSQR.scripted_delay = 0.2\nimport osqr_nb")
    (comm,) = _comm_ids(kernel)
    kernel.execute(f"%%osqr --repo {repo} --tier 4\n{SEED_REQUEST}")
    run_id = kernel.value("osqr_nb.last_run().id")
    _send(kernel, comm, {"action": "pause", "run": run_id})
    assert _run(_wait(kernel, comm, lambda m: _run(m) and _run(m)["status"] == "paused"))["id"] == run_id
    _send(kernel, comm, {"action": "resume", "run": run_id})
    assert _run(_wait(kernel, comm, lambda m: _run(m) and _run(m)["done"], timeout=60))["status"] == "complete"


def test_checkpoint_cells_and_the_extension_hello(kernel, repo):
    """What the extension relies on: its hello switches views to stylesheet classes, `%osqr
    checkpoint <id>` shows the card (and the snapshot says a cell has it, so no window inserts
    another), and `%config OSQR.checkpoint_cells = False` tells the sidebar not to insert cells."""
    kernel.execute("%load_ext osqr_nb\n%config OSQR.scripted_delay = 0.05\nimport osqr_nb")
    (comm,) = _comm_ids(kernel)
    assert kernel.value("osqr_nb.ui.theme.styled()") == "False"
    _send(kernel, comm, {"action": "hello", "extension": "0.1.0", "protocol": 1})
    kernel.wait_for("osqr_nb.ui.theme.styled()", "True")
    kernel.execute(f"%%osqr --repo {repo} --tier 2\n{SEED_REQUEST}")
    run = _run(_wait(kernel, comm, lambda m: _run(m) and _run(m)["checkpoints"]))
    (checkpoint,) = run["checkpoints"]
    assert checkpoint["cell"] is False and _wait(kernel, comm, lambda m: m["type"] == "snapshot")["checkpoint_cells"] is True
    assert [t["symbol"] for t in run["tasks"]] == ["✓", "⚠", "○"]
    assert run["count_text"] == "Active 0 · Waiting 1 · Complete 1 · Needs input 1"

    kernel.execute(f"%osqr checkpoint {checkpoint['id']}")
    shown = _wait(kernel, comm, lambda m: _run(m) and _run(m)["checkpoints"] and _run(m)["checkpoints"][0]["cell"])
    assert _run(shown)["checkpoints"][0]["id"] == checkpoint["id"]
    kernel.execute("%config OSQR.checkpoint_cells = False")
    assert _wait(kernel, comm, lambda m: m.get("checkpoint_cells") is False)
    error = kernel.execute("%osqr checkpoint nope", allow_error=True).stderr
    assert "no checkpoint 'nope' in this kernel's runs" in error

    _send(kernel, comm, {"action": "resolve", "run": run["id"], "checkpoint": checkpoint["id"],
                         "answer": "DB Sessions"})
    assert _run(_wait(kernel, comm, lambda m: _run(m) and _run(m)["done"], timeout=60))["status"] == "complete"


def test_a_sidebar_on_protocol_2_gets_what_changed_and_ends_with_the_same_runs(kernel, repo):
    """After its hello, a sidebar receives "changes": applied in order (as the extension's
    applyChanges does) they give exactly the runs a whole snapshot gives."""
    kernel.execute("%load_ext osqr_nb\n%config OSQR.scripted_delay = 0.05\nimport osqr_nb")
    (comm,) = _comm_ids(kernel)
    _send(kernel, comm, {"action": "hello", "extension": "0.1.0", "protocol": 2})
    kernel.execute(f"%%osqr --repo {repo} --tier 4\n{SEED_REQUEST}")
    kernel.wait_for("osqr_nb.api.last_run().done", "True")
    _wait(kernel, comm, lambda m: m["type"] == "changes" and any(r.get("done") for r in m["runs"]))
    time.sleep(0.5)
    runs: list[dict] = []
    for message in _messages(kernel, comm):
        runs = message["runs"] if message["type"] == "snapshot" else _apply(runs, message)
    whole = json.loads(kernel.value(
        "__import__('json').dumps(osqr_nb.ui.snapshot.snapshot(osqr_nb.api.live_runs())['runs'])"))
    assert runs == whole and runs[0]["done"]
    patches = [m for m in _messages(kernel, comm) if m["type"] == "changes" and m["runs"]]
    assert any(len(p["runs"][0]["tasks"]) < len(whole[0]["tasks"]) for p in patches)   # not every task again


def _apply(runs: list[dict], message: dict) -> list[dict]:
    known = {run["id"]: run for run in runs}
    for patch in message["runs"]:
        before = known.get(patch["id"])
        if before is None:
            known[patch["id"]] = patch
            continue
        tasks = {task["id"]: task for task in before["tasks"]}
        tasks.update({task["id"]: task for task in patch.get("tasks", [])})
        order = patch.get("task_order") or [task["id"] for task in before["tasks"]]
        fields = {k: v for k, v in patch.items() if k != "task_order"}
        known[patch["id"]] = {**before, **fields, "tasks": [tasks[i] for i in order if i in tasks]}
    return [known[i] for i in message["order"] if i in known]
