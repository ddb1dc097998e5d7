"""The orchestrator's git: started off the kernel's loop, yielding the CPU to it, and never
left running behind a cancelled task."""

import asyncio
import os
import sys
import time

import pytest

from osqr_nb.workspace import git as gitlib

from conftest import run_async

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread nice values are Linux's")


@linux_only
def test_git_runs_below_the_kernels_priority(repo):
    """A nice value set on the thread that starts git is inherited by git and what it runs."""
    async def main():
        _, out = await gitlib.git(repo, "-c", "alias.nice=!cat /proc/$$/stat", "nice")
        return int(out.rsplit(")", 1)[1].split()[16])     # field 19 of stat: nice

    assert run_async(main()) == gitlib.GIT_NICENESS
    assert os.getpriority(os.PRIO_PROCESS, 0) == 0       # the kernel's own threads keep theirs


@linux_only
def test_a_cancelled_git_call_leaves_no_process_behind(repo, tmp_path):
    pid_file = tmp_path / "pid"

    async def main():
        call = asyncio.ensure_future(gitlib.git(repo, "-c", f"alias.wait=!echo $$ > {pid_file}; exec sleep 30",
                                                "wait"))
        while not pid_file.exists() or not pid_file.read_text().strip():
            await asyncio.sleep(0.02)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    started = time.monotonic()
    run_async(main())
    assert time.monotonic() - started < 10                # killed, not waited out
    assert not _running(int(pid_file.read_text()))        # what git started is gone too


def _running(pid: int, wait: float = 2.0) -> bool:
    """Whether `pid` still runs (a zombie waiting for init to reap it does not)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return False
        if state in ("Z", "X"):
            return False
        time.sleep(0.05)
    return True
