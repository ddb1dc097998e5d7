"""A regular-expression search runs in a short-lived child process, killed when it overruns:
compiling `(?:a{1000}){1000}` holds the GIL for 0.35 s, which no thread can hide from the
event loop, and a pattern may take forever on one line. The child walks the worktree as the
`search` tool does (tools.py) and answers in JSON; its memory is capped and its priority
lowered, and it is given no environment but PATH.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from .tool_calls import ToolError, _preview, _printable

PATTERN_SECONDS = 1.0        # a regular expression may take this long on one line
CHILD_SECONDS = 15.0         # the regular-expression search process is killed after this long
CHILD_MEMORY = 2**30         # bytes of address space that process may use


class _OutOfTime(Exception):
    """The search's time is spent: stop and show what was found."""


class _SlowPattern(Exception):
    """One line took the regular expression longer than PATTERN_SECONDS."""


def _regex_matcher(pattern: str, deadline: float) -> Callable[[str], bool]:
    """A line test for the child process, with the `regex` module's per-call timeout."""
    import regex as regex_module

    try:
        compiled = regex_module.compile(pattern)
    except regex_module.error as exc:
        raise ToolError(f"bad regular expression {pattern!r}: {exc}; fix it, or search for plain text "
                        "with regex false") from None
    except RecursionError:
        raise ToolError(f"bad regular expression {_preview(pattern)}: nested too deeply") from None

    def found(line: str) -> bool:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _OutOfTime
        try:
            return compiled.search(line, timeout=min(PATTERN_SECONDS, left), concurrent=True) is not None
        except TimeoutError:
            raise _SlowPattern if left > PATTERN_SECONDS else _OutOfTime from None
    return found


_WORKER_ARGV = [sys.executable or "python3", "-I", "-c",
                "import os; os.nice(10); import sys; "
                f"sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r}); "
                "from osqr_nb.agents.regex_search import _search_worker; _search_worker()"]


def _child_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", os.defpath)}     # nothing secret: the child needs none


def _run_child(request: str, cwd: Path) -> tuple[str, str, int | None]:
    """(stdout, stderr, exit code) of the search process; exit code None: killed at CHILD_SECONDS."""
    try:
        done = subprocess.run(_WORKER_ARGV, input=request, capture_output=True, text=True, cwd=cwd,
                              timeout=CHILD_SECONDS, env=_child_env())
    except subprocess.TimeoutExpired:
        return "", "", None
    return done.stdout, done.stderr, done.returncode


async def _arun_child(request: str, cwd: Path) -> tuple[str, str, int | None]:
    """`_run_child` for the event loop; the process is killed if the caller is cancelled."""
    process = await asyncio.create_subprocess_exec(
        *_WORKER_ARGV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
        env=_child_env())
    try:
        async with asyncio.timeout(CHILD_SECONDS):
            out, err = await process.communicate(request.encode())
    except TimeoutError:
        return "", "", None
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return out.decode(errors="replace"), err.decode(errors="replace"), process.returncode


def _child_answer(pattern: str, out: str, err: str, code: int | None) -> str:
    if code is None:
        raise ToolError(f"the search for the regular expression {pattern!r} did not end within "
                        f"{CHILD_SECONDS:g} s and was stopped: compiling or running it costs too much "
                        "(large counted repeats like {1000} and nested repeats do); simplify it")
    try:
        answer = json.loads(out)
    except ValueError:
        raise ToolError(f"the search for {pattern!r} failed (its process ended with code {code}): "
                        f"{_printable(err.strip()[-300:])}") from None
    if "error" in answer:
        raise ToolError(answer["error"])
    return answer["result"]


def _search_worker() -> None:
    """The child process of a regular-expression search: a JSON request on stdin, a JSON answer
    on stdout. Its memory is capped, so a pattern cannot exhaust the machine's (its priority
    is lowered by `_WORKER_ARGV`, so that on a busy machine the kernel gets the CPU first)."""
    import resource

    from .tools import Workspace

    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))
    request = json.loads(sys.stdin.read())
    workspace = Workspace(Path(request["root"]))
    try:
        answer = {"result": workspace._regex_search(request["pattern"], request["path"], request["glob"])}
    except ToolError as exc:
        answer = {"error": str(exc)}
    except Exception as exc:
        answer = {"error": workspace.explain("search", exc)}
    sys.stdout.write(json.dumps(answer))
