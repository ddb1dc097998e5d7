"""The real thing: an IPython kernel driven through jupyter_client, widgets clicked by comm message."""

import json
import os
import time

import pytest

import osqr_nb

from conftest import SEED_REQUEST, git
from kernel_driver import Kernel

pytestmark = pytest.mark.kernel

CELL = f"%%osqr --repo {{repo}} --tier 2 --max-parallel 4\n{SEED_REQUEST}"


def wait_in_log(repo, seen, never: str, timeout: float, poll: float = 0.05) -> None:
    """Poll the repository's event log until `seen(events)`; fail with `never` after `timeout` s."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if seen(osqr_nb.events(repo)):
            return
        time.sleep(poll)
    raise AssertionError(never)


@pytest.fixture
def kernel(repo):
    k = Kernel(cwd=str(repo))
    yield k
    k.shutdown()


def test_osqr_cell_in_a_real_kernel_with_a_clicked_checkpoint(kernel, repo):
    kernel.execute("%load_ext osqr_nb\n%config OSQR.scripted_delay = 0.05")
    cell = kernel.execute(CELL.format(repo=repo))
    assert cell.reply["content"]["status"] == "ok"
    assert any("application/vnd.jupyter.widget-view+json" in data for data in cell.results)
    kernel.execute("import osqr_nb")
    kernel.wait_for("osqr_nb.last_run().status", "needs_input")

    # While the agent waits for the person, the kernel answers other cells.
    quick = kernel.execute("1+1")
    assert quick.results == [{"text/plain": "2"}]
    assert quick.seconds < 5

    (button,) = kernel.buttons("DB Sessions")
    kernel.click(button)
    kernel.execute("await osqr_nb.last_run()", timeout=60)
    assert kernel.value("osqr_nb.last_run().status") == "complete"

    run_id = kernel.value("osqr_nb.last_run().id")
    files = git(repo, "ls-tree", "-r", "--name-only", f"osqr/{run_id}/integration").split()
    assert {"db/schema.sql", "auth/sessions.py", "docs/API.md"} <= set(files)
    history = osqr_nb.history(repo)
    auth = history[history.task_id == "auth-module"].iloc[0]
    assert (auth.chosen, auth.decided_by) == ("DB Sessions", "human")
    events = osqr_nb.events(repo)
    assert events.type.iloc[-1] == "run_finished" and events.data.iloc[-1]["status"] == "complete"

    # The widgets followed the run: the DAG shows three ✓ and the card says who decided.
    kernel.drain()
    dag = next(s["value"] for s in kernel.widgets.values() if "osqr-dag" in str(s.get("value", "")))
    assert dag.count('data-status="complete"') == 3
    assert any("Complete 3" in str(s.get("value", "")) for s in kernel.widgets.values())
    assert any("decided by human" in str(s.get("value", "")) for s in kernel.widgets.values())
    assert all(kernel.widgets[b]["disabled"] for b in kernel.buttons("JWT"))


def test_magic_errors_are_clear_and_start_nothing(kernel, repo, tmp_path):
    kernel.execute("%load_ext osqr_nb")
    cases = {
        "%%osqr --tier 7\nx": "--tier must be 1-4",
        "%%osqr --bogus\nx": "unrecognized arguments: --bogus",
        "%%osqr\n   ": "request is empty",
        f"%%osqr --repo {tmp_path}\nbuild it": "not a git repository",
        "%osqr frobnicate": "unknown %osqr command 'frobnicate'",
    }
    for code, message in cases.items():
        result = kernel.execute(code, allow_error=True)
        shown = (result.error or "") + result.stderr
        assert message in shown, (code, shown)
    assert osqr_nb.events(repo).empty


def test_dry_run_shows_the_plan_lets_the_person_edit_it_and_go_runs_the_edit(kernel, repo):
    kernel.execute("%load_ext osqr_nb\n%config OSQR.scripted_delay = 0.0\nimport osqr_nb")
    result = kernel.execute(f"%%osqr --dry-run --repo {repo} --tier 4\n{SEED_REQUEST}")
    assert any("application/vnd.jupyter.widget-view+json" in d for d in result.results)
    kernel.drain()
    html = json.dumps([s.get("value", "") for s in kernel.widgets.values()])
    assert "DB Schema" in html and "Critical path" in html and "osqr-dag" in html
    assert osqr_nb.events(repo).empty and "osqr/" not in git(repo, "branch")
    (text,) = [c for c, s in kernel.widgets.items() if s.get("_model_name") == "TextareaModel"]
    plan_text = kernel.widgets[text]["value"]
    assert plan_text.startswith("- [db-schema] DB Schema (refactor)")
    kernel.type_into(text, plan_text.rstrip("\n") + "\n- [changelog] Changelog (quick_fix) after db-schema: Note the schema change\n")
    kernel.execute("%osqr go")
    kernel.execute("await osqr_nb.last_run()")
    assert kernel.value("sorted(osqr_nb.last_run().tasks)") == "['api-docs', 'auth-module', 'changelog', 'db-schema']"
    assert kernel.value("osqr_nb.last_run().status") == "complete"
    bad = kernel.execute("%osqr go", allow_error=True)              # the draft is used up... or re-run
    assert bad.reply["content"]["status"] in ("ok", "error")


def test_killing_the_kernel_mid_run_loses_nothing_and_resume_finishes(repo):
    first = Kernel(cwd=str(repo))
    try:
        first.execute("%load_ext osqr_nb\n%config OSQR.scripted_delay = 0.4")
        first.execute(CELL.format(repo=repo))
        def schema_written(events):     # kill while the schema agent is half-way through
            writes = events[(events.type == "tool_call") & (events.task_id == "db-schema")]
            return any(d.get("name") == "write_file" for d in writes.data)
        wait_in_log(repo, schema_written, "the schema agent never wrote its file", 60)
    finally:
        first.kill()
    before = osqr_nb.events(repo)
    assert "task_finished" not in set(before.type)

    second = Kernel(cwd=str(repo))
    try:
        second.execute("%load_ext osqr_nb\n%config OSQR.scripted_delay = 0.0\nimport osqr_nb")
        resumed = second.execute(f"%osqr resume --repo {repo}")
        assert any("application/vnd.jupyter.widget-view+json" in d for d in resumed.results)
        second.wait_for("osqr_nb.last_run().status", "needs_input")
        second.execute("osqr_nb.last_run().checkpoints[0].resolve('DB Sessions')")
        second.execute("await osqr_nb.last_run()")
        assert second.value("osqr_nb.last_run().status") == "complete"
    finally:
        second.shutdown()

    after = osqr_nb.events(repo)
    assert after.iloc[:len(before)][["seq", "type"]].equals(before[["seq", "type"]])   # nothing lost
    assert list(after.type).count("run_started") == 1 and list(after.type).count("run_reopened") == 1
    finished = after[after.type == "task_finished"].task_id.tolist()
    assert sorted(finished) == ["api-docs", "auth-module", "db-schema"]          # nothing twice
    attempts = [d["attempt"] for d in after[(after.type == "task_started") & (after.task_id == "db-schema")].data]
    assert attempts == [1, 2]
    run_id = after.run_id.iloc[0]
    files = git(repo, "ls-tree", "-r", "--name-only", f"osqr/{run_id}/integration").split()
    assert {"db/schema.sql", "auth/sessions.py", "docs/API.md"} <= set(files)


def test_a_cell_awaiting_the_run_does_not_hold_back_the_click(kernel, repo):
    kernel.execute("%load_ext osqr_nb\n%config OSQR.scripted_delay = 0.0\nimport osqr_nb")
    kernel.execute(CELL.format(repo=repo))
    kernel.wait_for("osqr_nb.last_run().status", "needs_input")
    again = kernel.execute("%osqr checkpoints")          # the same card, shown a second time
    assert any("application/vnd.jupyter.widget-view+json" in d for d in again.results)
    cards = [c for c, s in kernel.widgets.items() if "osqr-checkpoint" in s.get("_dom_classes", ())]
    assert len(cards) == 1
    waiting = kernel.kc.execute("await osqr_nb.last_run()")   # this cell now waits for the run
    (button,) = kernel.buttons("DB Sessions")
    kernel.click(button)                                     # ...and the click still gets through
    reply = kernel.kc.get_shell_msg(timeout=60)
    assert reply["parent_header"]["msg_id"] == waiting and reply["content"]["status"] == "ok"
    assert kernel.value("osqr_nb.last_run().status") == "complete"


def test_tier_1_asks_before_each_write_and_tier_4_asks_nothing(kernel, repo):
    kernel.execute("%load_ext osqr_nb\n%config OSQR.scripted_delay = 0.0\nimport osqr_nb")
    kernel.execute(f"%%osqr --repo {repo} --tier 1\nadd a health check")
    (approve,) = kernel.buttons("Approve", timeout=30)
    kernel.click(approve)
    kernel.execute("await osqr_nb.last_run()")
    assert kernel.value("osqr_nb.last_run().status") == "complete"
    kernel.execute(f"%%osqr --repo {repo} --tier 4\n{SEED_REQUEST}")
    kernel.execute("await osqr_nb.last_run()")
    assert kernel.value("osqr_nb.last_run().status") == "complete"
    assert kernel.buttons("JWT", timeout=0) == []


def test_a_key_given_to_the_kernel_never_reaches_an_output_a_widget_or_the_log(repo):
    from osqr_nb.wire import WireServer

    key = "test-key-not-secret-kernel-5c1a9"
    with WireServer(retry_after=0.01) as wire:
        wire.faults.extend(["401", "401"])             # the server echoes the key back in its error
        kernel = Kernel(cwd=str(repo), env={**os.environ, "ANTHROPIC_API_KEY": key})
        try:
            kernel.execute("%load_ext osqr_nb\nimport osqr_nb\n"
                           f"%config OSQR.providers = {{'anthropic': {{'base_url': '{wire.base_url}', "
                           "'max_retries': 0}}\n"
                           "%config OSQR.routes = {k: ['claude-sonnet'] for k in "
                           "['code', 'architecture', 'docs', 'quick_fix', 'review', 'refactor', 'tests']}")
            kernel.execute(f"%%osqr --repo {repo} --tier 4\n{SEED_REQUEST}")
            (retry,) = kernel.buttons("Retry", timeout=30)
            kernel.click(retry)
            kernel.execute("await osqr_nb.last_run()")
            assert kernel.value("osqr_nb.last_run().status") == "complete"
            for line in ("%osqr cost", "%osqr route", "%osqr models", "%osqr history", "osqr_nb.events()"):
                kernel.execute(line)
            kernel.drain()
        finally:
            kernel.shutdown()
    outputs = json.dumps(kernel.iopub)
    assert "claude-sonnet" in outputs and "refused" in outputs       # the run and its error were shown
    assert "planning_failed" in json.dumps(osqr_nb.events(repo).type.tolist())   # planner fell back, said so
    assert key not in outputs
    assert key not in json.dumps(osqr_nb.events(repo).data.tolist())
    assert key not in (repo / ".osqr" / "osqr.db").read_bytes().decode(errors="replace")


def test_killing_the_kernel_at_a_checkpoint_loses_nothing_and_the_card_comes_back(repo):
    first = Kernel(cwd=str(repo))
    try:
        first.execute("%load_ext osqr_nb\n%config OSQR.scripted_delay = 0.0\nimport osqr_nb")
        first.execute(CELL.format(repo=repo))
        first.wait_for("osqr_nb.last_run().status", "needs_input")
    finally:
        first.kill()
    before = osqr_nb.events(repo)

    second = Kernel(cwd=str(repo))
    try:
        second.execute("%load_ext osqr_nb\n%config OSQR.scripted_delay = 0.0\nimport osqr_nb")
        second.execute(f"%osqr resume --repo {repo}")
        second.wait_for("osqr_nb.last_run().status", "needs_input")
        assert second.value("[c.question for c in osqr_nb.last_run().checkpoints]") == \
            str([before[before.type == "checkpoint_opened"].data.iloc[0]["question"]])
        second.execute("osqr_nb.last_run().checkpoints[0].resolve('DB Sessions')")
        second.execute("await osqr_nb.last_run()")
        assert second.value("osqr_nb.last_run().status") == "complete"
    finally:
        second.shutdown()
    after = osqr_nb.events(repo)
    assert after.iloc[:len(before)][["seq", "type"]].equals(before[["seq", "type"]])
    assert len(after[after.type == "checkpoint_opened"]) == 1              # asked once, answered once
    assert sorted(after[after.type == "task_finished"].task_id) == ["api-docs", "auth-module", "db-schema"]


MANY_TASKS = """
import asyncio, osqr_nb
from osqr_nb.models.base import Reply, ToolCall
from osqr_nb.plan.task import Plan, Task

class Writer:
    name = "writer"
    async def complete(self, system, messages, tools):
        task_id = next(l[4:] for l in messages[0]["content"].splitlines() if l.startswith("id: "))
        if len(messages) == 1:
            return Reply(tool_calls=[ToolCall("w", "write_file", {{"path": f"out/{{task_id}}.py",
                                                                  "content": f"X = {{task_id!r}}\\n"}})])
        return Reply(tool_calls=[ToolCall("f", "finish", {{"summary": task_id}})])

plan = Plan([Task(f"t{{i}}", f"T{{i}}", "code") for i in range({n})])
run = osqr_nb.start(plan=plan, repo={repo!r}, tier=4, max_parallel=8, model=Writer())
"""


def test_killing_the_kernel_mid_merge_then_resume_integrates_everything(repo):
    first = Kernel(cwd=str(repo))
    try:
        first.execute("%load_ext osqr_nb")
        first.execute(MANY_TASKS.format(n=24, repo=str(repo)))
        # clean merges are made while later tasks work: half the tasks done, merges are under way
        wait_in_log(repo, lambda events: list(events.type).count("task_finished") >= 12,   # kill at once
                    "half the tasks never finished", 120, poll=0.01)
    finally:
        first.kill()
    before = osqr_nb.events(repo)
    assert "run_finished" not in set(before.type)
    run_id = before.run_id.iloc[0]

    second = Kernel(cwd=str(repo))
    try:
        second.execute(MANY_TASKS.split("plan =")[0].format(n=0, repo=str(repo)))   # the model class
        second.execute(f"run = osqr_nb.resume({run_id!r}, repo={str(repo)!r}, model=Writer())\nawait run")
        assert second.value("run.status") == "complete"
    finally:
        second.shutdown()
    files = git(repo, "ls-tree", "-r", "--name-only", f"osqr/{run_id}/integration").split()
    assert {f"out/t{i}.py" for i in range(24)} <= set(files)
    assert git(repo, "status", "--porcelain") == ""          # the person's tree untouched
    assert list(osqr_nb.events(repo).type).count("task_finished") == 24
