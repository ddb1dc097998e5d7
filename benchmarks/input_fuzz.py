"""Bad input gets a clear error: fuzz plan texts and %osqr lines, count the examples that hold.

Three families, each built from the pieces of its grammar plus random unicode:

  markdown   plan lists: `- [id] Title (kind) after a~, b: desc`, indented
             `writes:` / `estimate:` / `accept:` lines, headings, runs of spaces;
  yaml       YAML documents (`tasks:` lists and mappings of random fields),
             some with an alias, a tag, a bracket or a huge number spliced in;
  magic      `%osqr` / `%%osqr` option lines: commands, flags, numbers, nan,
             quotes (balanced or not), backslashes.

A plan text holds when `parse_plan` returns a valid Plan or raises PlanError;
a magic line holds when `parse_line` returns options that obey their limits
or raises UsageError. Anything else (another exception, a limit broken) fails
and is printed. Nothing is run: the magic family stops at the parsed line.

    python benchmarks/input_fuzz.py [--examples 1000] [--seed 0]

Exit code 1 when any example fails. tests/test_bad_input.py runs the same
families with 200 examples each.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any, Callable

import yaml
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

from osqr_nb.magics import CELL, TAKES, parse_line, run_options
from osqr_nb.plan.explicit import KEYS, KIND_ALIASES, parse_plan, to_markdown
from osqr_nb.plan.task import Plan, PlanError, TaskKind

# --- pieces ---------------------------------------------------------------------------------------

junk = st.text(max_size=24) | st.text(st.characters(blacklist_categories=()), max_size=8)
spaces = st.sampled_from([" ", "  ", "\t", " \u00a0 ", "\u2003"]) | st.integers(0, 3000).map(" ".__mul__)
ids = st.sampled_from(["a", "b", "db", "auth", "docs", "x1", "a-b", "Bad Id", "", "-x", "ü", "a" * 70]) | junk
kinds = st.sampled_from([k.value for k in TaskKind] + list(KIND_ALIASES) + ["poetry", "", "JWT tokens", "(", ")"])
titles = st.sampled_from(["DB Schema", "Auth Module", "Fix: retry after failure", "after", "(code)",
                          "A (x) B", "[tag]", "Title ((((", ""]) | junk
names = st.tuples(ids | titles, st.sampled_from(["", "~", " ~", "~~"])).map("".join)
estimates = st.sampled_from(["3", "3h", "90m", "1d", "1.5 hours", "soon", "-1", "0", "1e9", "nan",
                             "9" * 400, "1" + " " * 500 + "h"]) | junk


@st.composite
def item_line(draw) -> str:
    """`- [id] Title (kind) after a~, b: description`, each part present or not, or garbled."""
    bullet = draw(st.sampled_from(["-", "*", "+", "1.", "2)", "  -", "    -", "\t-", "-\t", "10."]))
    box = draw(st.sampled_from(["", "[ ] ", "[x] ", "[X]"]))
    tag = draw(st.one_of(st.just(""), ids.map(lambda i: f"[{i}] "), st.just("[")))
    kind = draw(st.one_of(st.just(""), kinds.map(lambda k: f" ({k})")))
    separator = draw(st.sampled_from([", ", " and ", " ", "; ", ",", "   and   "]))
    after = draw(st.lists(names, max_size=4).map(separator.join))
    after = draw(st.sampled_from([" after ", " AFTER ", " after", "after "])) + after if after else ""
    description = draw(st.one_of(st.just(""), junk.map(": ".__add__), spaces.map(":".__add__)))
    return f"{bullet} {box}{tag}{draw(titles)}{draw(spaces) if draw(st.booleans()) else ''}{kind}{after}{description}"


@st.composite
def field_line(draw) -> str:
    """An indented `key: value` under an item: a known key, a near miss, or plain text."""
    key = draw(st.sampled_from(sorted(KEYS) + ["Writes", "colour", "depends-on", "- estimate"]) | junk)
    value = draw(st.one_of(estimates, st.lists(names, max_size=4).map(", ".join), junk,
                           st.lists(st.sampled_from(["a.py", "src/*.py", "`x`", "'y'"]), max_size=3).map(" ".join)))
    return f"{draw(st.sampled_from(['  ', '    ', chr(9), ' ']))}{key}{draw(st.sampled_from([': ', ':', ' : ', '']))}{value}"


other_line = st.one_of(st.just(""), junk.map("# ".__add__), junk, spaces, st.just("tasks"), st.just("- id"))


@st.composite
def markdown_plans(draw) -> str:
    lines = draw(st.lists(st.one_of(item_line(), item_line(), field_line(), other_line), min_size=1, max_size=14))
    return draw(st.sampled_from(["\n", "\r\n", "\n\n"])).join(lines)


# --- YAML -----------------------------------------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    ids, titles, estimates)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(sorted(KEYS)) | junk, inner, max_size=4), max_leaves=12)
task_dicts = st.dictionaries(st.sampled_from(sorted(KEYS) + ["colour"]), values, max_size=6)
SPLICES = ["&a ", "*a", "&a [x, x]\n", "[", "]", "{", "}", "<<: ", "!!python/object:os.system ", ": ", "- ",
           "\t", "'", '"', "%YAML 1.1\n", "---\n", "...\n", "? ", "!!binary ", "!!set ", "!!omap ",
           "2001-13-01", "9" * 5000, "[" * 40, "\x00", "\ud800", "#", "|\n", ">-\n"]


@st.composite
def yaml_plans(draw) -> str:
    """A dumped plan-shaped document, sometimes with one YAML construct spliced in anywhere."""
    tasks = draw(st.one_of(st.lists(task_dicts | scalars, max_size=5),
                           st.dictionaries(ids, task_dicts | scalars, max_size=4), values))
    shape = draw(st.sampled_from(["tasks", "list", "ids-first"]))
    if shape == "ids-first" and isinstance(tasks, list):
        tasks = [{"id": "t", **t} if isinstance(t, dict) else t for t in tasks]
    document = {"tasks": tasks} if shape == "tasks" else tasks
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=draw(st.booleans()))
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(SPLICES) | junk) + text[at:]
    return text


# --- magic lines ----------------------------------------------------------------------------------

OPTIONS = ["--repo", "--tier", "--max-parallel", "--model", "--budget", "--check", "--dry-run", "--preview",
           "--bogus", "-h", "--", "--m", "--tier=", "--budget=", "-"]
WORDS = list(TAKES) + ["frobnicate", "STATUS", "osqr"]
NUMBERS = ["0", "1", "4", "5", "-1", "-0", "2.5", "nan", "inf", "-inf", "1e400", "1_000", "0x10", "٣",
           "9" * 5000, ""]
QUOTED = ['"pytest -q"', "'a b'", '"unclosed', "'", '"', "\\", "a\\ b", '""', "''", "`x`", "$x", "{x}"]
tokens = st.sampled_from(OPTIONS) | st.sampled_from(WORDS) | st.sampled_from(NUMBERS) | st.sampled_from(QUOTED) | junk
option_values = {"--tier": st.sampled_from(["1", "2", "3", "4", "0", "5", "x"]),
                 "--max-parallel": st.sampled_from(["1", "8", "0", "-1", "1000000"]),
                 "--budget": st.sampled_from(["0", "0.5", "10", "-3", "nan", "inf", "1e400"]),
                 "--repo": st.sampled_from([".", "/tmp/x", "'a b'", "''", '"']), "--model": st.sampled_from(["m", "''"]),
                 "--check": st.sampled_from(['"pytest -q"', "true", '"x']), "--dry-run": st.just(""),
                 "--preview": st.just("")}


@st.composite
def well_formed_line(draw) -> tuple[str, bool]:
    """A command with options of the right types (most lines of a person are nearly right)."""
    cell = draw(st.booleans())
    words = [] if cell else [draw(st.sampled_from(WORDS[:-3] + [""]))]
    words += [] if cell or not draw(st.booleans()) else [draw(st.sampled_from(["r1", "abc", "'x y'"]))]
    for flag in draw(st.lists(st.sampled_from(sorted(option_values)), max_size=3, unique=True)):
        words += [flag, draw(option_values[flag])]
    return " ".join(w for w in words if w), cell


magic_lines = st.tuples(st.lists(tokens, max_size=7).map(" ".join), st.booleans()) | well_formed_line()


# --- what must hold -------------------------------------------------------------------------------

def check_plan(text: str) -> None:
    """parse_plan gives a valid Plan or a PlanError; nothing else."""
    try:
        plan = parse_plan(text)
    except PlanError as exc:
        assert str(exc).strip(), "a PlanError with no message"
        return
    assert isinstance(plan, Plan) and len(plan) >= 1
    plan.critical_path()
    to_markdown(plan)


def check_magic(example: tuple[str, bool]) -> None:
    """parse_line gives options within their limits (and run_options a dict), or a UsageError."""
    line, cell = example
    try:
        args = parse_line(line, cell=cell)
        options = run_options(args) if cell else None
    except UsageError as exc:
        assert str(exc).strip() and "\n" not in str(exc), f"not a one-line message: {exc!r}"
        return
    given = {k for k, v in vars(args).items() if k != "command" and v is not None and v is not False}
    assert args.command in TAKES and (args.command == CELL) == cell
    assert given <= TAKES[args.command], (args.command, given)
    assert args.tier in (None, 1, 2, 3, 4)
    assert args.max_parallel is None or args.max_parallel >= 1
    assert args.budget is None or (math.isfinite(args.budget) and args.budget >= 0)
    assert options is None or options["max_parallel"] >= 1


FAMILIES: dict[str, tuple[Any, Callable[[Any], None]]] = {
    "markdown": (markdown_plans(), check_plan),
    "yaml": (yaml_plans(), check_plan),
    "magic": (magic_lines, check_magic),
}


# --- the benchmark --------------------------------------------------------------------------------

def run_family(name: str, examples: int, seed_value: int) -> tuple[int, int, list[tuple[Any, BaseException]]]:
    """tried, held, and the failures (example, exception) of one family; failures do not stop it."""
    strategy, check = FAMILIES[name]
    tried, held, failures = 0, 0, []

    @seed(seed_value)
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def probe(example: Any) -> None:
        nonlocal tried, held
        tried += 1
        try:
            check(example)
            held += 1
        except Exception as exc:     # counted and shown: the run goes on to find more
            failures.append((example, exc))

    probe()
    return tried, held, failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000, help="examples per family (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args(argv)
    failed = 0
    for name in FAMILIES:
        start = time.perf_counter()
        tried, held, failures = run_family(name, options.examples, options.seed)
        print(f"{name:9} tried {tried:6,}  held {held:6,}  ({time.perf_counter() - start:.1f} s)")
        for example, exc in failures[:5]:
            print(f"    FAILED {type(exc).__name__}: {str(exc)[:200]}\n      on {example!r:.300}")
        failed += len(failures)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
