"""Parsing Python off the kernel's GIL: a merge's checks, in a process when the texts are large.

After each clean merge of Python files the Integrator parses the merged module and
the versions it came from (`ast`, `symtable`: checks.py, imports.py). That is CPU
work that holds the GIL, so a thread does not hide it from the event loop: a 19 KB
module costs 8.5 ms of `ast.parse` and 4 ms of `symtable`, and a run whose tasks
edit such modules saw the loop's p99 reach ~50 ms. Large texts therefore go to a
worker process, kept for the kernel's life (its parse caches stay warm from one
merge to the next); small ones stay in a thread, where a process's round trip
would cost more than the parse. Functions sent there must be importable and
return picklable answers; every caller here passes a module-level function of texts.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, TypeVar

T = TypeVar("T")

PROCESS_CHARS = 8_000     # texts longer than this in all are parsed in the worker process
PARSER_NICENESS = 10      # the parser yields the CPU to the kernel's loop, as git does
_pool: ProcessPoolExecutor | None = None


async def parsed(function: Callable[..., T], *args: Any, chars: int) -> T:
    """`function(*args)` off the loop: in the worker process when the texts it parses add up
    to `chars` > PROCESS_CHARS, else in a thread. If the process dies (killed, out of
    memory), the call is made again in a thread and the next large one starts a new process."""
    if chars <= PROCESS_CHARS:
        return await asyncio.to_thread(function, *args)
    global _pool
    pool = _pool = _pool or _start()
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, functools.partial(function, *args))
    except BrokenProcessPool:
        if _pool is pool:
            _pool = None
        return await asyncio.to_thread(function, *args)


def _start() -> ProcessPoolExecutor:
    """One worker process, started by a fork server (or spawned) rather than forked from the
    kernel, whose threads a plain fork would copy mid-step."""
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    return ProcessPoolExecutor(1, mp_context=context, initializer=_lower_priority)


def _lower_priority() -> None:
    try:
        os.nice(PARSER_NICENESS)
    except (AttributeError, OSError):
        pass


def texts_size(*texts: Any) -> int:
    """Characters in the texts given, looked for in strings, dicts of strings and lists of them."""
    total = 0
    for text in texts:
        if isinstance(text, str):
            total += len(text)
        elif isinstance(text, dict):
            total += texts_size(*text.values())
        elif isinstance(text, (list, tuple)):
            total += texts_size(*text)
    return total
