"""Fuzzing the agent's file tools: how many random calls held the invariant.

Each file tool gets random argument dicts (tests/tool_fuzzing.py: paths with NULs,
lone surrogates, `..`, absolute, over-long; patterns that backtrack or do not
compile; wrong types, unknown keys) in a worktree with every way out (symlinks
out, a hard link to an outside file, a symlink loop). A call holds when it answers
a string or raises ToolError, both encodable as UTF-8, and nothing outside the
worktree or in its .git changed.

Target: every call holds (tests/test_tool_fuzz.py runs 200 per tool in CI).

    python benchmarks/tool_fuzz.py [--examples 1000] [--seed 0]

Exit code 0 when every call held, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from tool_fuzzing import FILE_TOOLS, Tally, arguments, check_call, guarded, make_worktree  # noqa: E402


def fuzz(tool: str, examples: int, random_seed: int) -> Tally:
    tally = Tally()
    with tempfile.TemporaryDirectory() as top:
        ws = make_worktree(Path(top))
        before = guarded(ws)

        @seed(random_seed)
        @settings(max_examples=examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(args=arguments(tool))
        def calls(args):
            check_call(ws, tool, args, before, tally)

        try:
            calls()
        except Exception as exc:      # hypothesis re-raises the shrunk failing example
            tally.failures.append(f"{type(exc).__name__}: {exc}"[:500])
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    failed = False
    for tool in FILE_TOOLS:
        started = time.perf_counter()
        tally = fuzz(tool, options.examples, options.seed)
        print(f"{tool:11} tried {tally.tried:6,}  held {tally.held:6,}  ({time.perf_counter() - started:.1f} s)")
        for failure in tally.failures:
            print(f"    FAILED: {failure}")
        failed |= bool(tally.failures) or tally.held != tally.tried
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
