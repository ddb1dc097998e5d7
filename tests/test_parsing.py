"""A merge's checks of large Python files run in a worker process (workspace/parsing.py), so
parsing them never holds the kernel's GIL; their answers are those of the same check in process."""

import os
import signal

import pytest

from osqr_nb.workspace import parsing
from osqr_nb.workspace.checks import check_merged
from osqr_nb.workspace.imports import broken_imports

from conftest import run_async
from test_imports_across_files import rename_and_import

PADDING = "".join(f"\n\ndef unrelated_{i}(x, y=1):\n    return x * {i} + y\n" for i in range(300))   # ~17 KB
UTILS = "def helper():\n    return 1\n" + PADDING
RENAMED = "def make_helper():\n    return 1\n" + PADDING
API = "from pkg.utils import helper\n\n\ndef get():\n    return helper()\n" + PADDING


def test_large_texts_are_checked_in_another_process_with_the_same_answers():
    base = {"pkg/__init__.py": "", "pkg/utils.py": UTILS, "pkg/api.py": None}
    ours, theirs = {**base, "pkg/utils.py": RENAMED}, {**base, "pkg/api.py": API}
    merged = {**base, "pkg/utils.py": RENAMED, "pkg/api.py": API}
    size = parsing.texts_size(merged, ours, theirs)
    assert size > parsing.PROCESS_CHARS
    assert run_async(parsing.parsed(os.getpid, chars=size)) != os.getpid()
    assert run_async(parsing.parsed(os.getpid, chars=10)) == os.getpid()        # small: a thread here
    files = ["pkg/api.py", "pkg/utils.py"]
    there = run_async(parsing.parsed(broken_imports, files, merged, [ours, theirs], chars=size))
    assert there == broken_imports(files, merged, [ours, theirs]) and len(there) == 1
    twice = UTILS + "\n\ndef helper():\n    return 2\n"
    assert run_async(parsing.parsed(check_merged, UTILS, UTILS, twice, twice, chars=4 * len(UTILS))) \
        == check_merged(UTILS, UTILS, twice, twice)


def test_a_killed_parser_costs_no_check():
    size = parsing.PROCESS_CHARS + 1
    first = run_async(parsing.parsed(os.getpid, chars=size))
    os.kill(first, signal.SIGKILL)
    twice = UTILS + "\n\ndef helper():\n    return 2\n"
    assert run_async(parsing.parsed(check_merged, UTILS, UTILS, twice, twice, chars=size)) \
        == check_merged(UTILS, UTILS, twice, twice)                                    # made in a thread
    second = run_async(parsing.parsed(os.getpid, chars=size))
    assert second not in (first, os.getpid()), "the next large check starts a new process"


def test_a_run_whose_tasks_break_an_import_between_large_files_does_not_merge_clean(repo):
    parsing._pool = None
    run = rename_and_import(repo, UTILS, RENAMED, API)
    assert parsing._pool is not None, "the checks of these files ran in the parser process"
    assert run.status == "conflicts"
    (conflict,) = run.integration["conflicts"]
    assert "imports 'helper' from pkg.utils, but pkg/utils.py no longer defines it" in conflict["reason"]


@pytest.mark.kernel
def test_the_parser_process_starts_from_a_real_kernel(tmp_path):
    """A kernel's __main__ is ipykernel's launcher and its loop is running: the worker process
    must start all the same (a fork server, not a fork of the kernel's threads)."""
    from kernel_driver import Kernel
    kernel = Kernel(cwd=str(tmp_path))
    try:
        kernel.execute("import os\nfrom osqr_nb.workspace import parsing")
        there = kernel.value("await parsing.parsed(os.getpid, chars=10**6)")
        here = kernel.value("os.getpid()")
    finally:
        kernel.shutdown()
    assert there.isdigit() and here.isdigit() and there != here
