"""Merge corpus: how often does a merge command get a case right, admit a conflict, or lie?

Each case is a base, ours and theirs version of one file and the truth: the merged
file, or "this is a true conflict". A merge command is run the way `git merge-file`
is (`COMMAND OURS BASE THEIRS`, result written to OURS, exit 0 clean, 1-127
conflicts) on temporary copies, and each case scores as

  correct       clean and equal to the truth (trailing whitespace ignored), or a
                conflict reported on a true conflict;
  conflict      a conflict reported where a merge existed (honest, left to a person);
  wrong silent  clean but not the truth (includes a clean result on a true conflict);
  error         any other exit.

Each outcome is counted twice: as exact text, and with layout ignored (AST equality:
the same code, whatever its blank lines, comments, wrapping and trailing commas, but in
the same order). The cases are also split by what git merge-file does with them (git
conflicts; git merges cleanly and right; git merges cleanly but wrongly), and the table
shows every tool on every part, in Markdown, so that it can go into README as printed.

Under the table, the wrong silent results are told apart: those that are the truth's
code in another order or layout (same statements once module and class bodies and
imported names are sorted; comments and blank lines ignored), since a person merging
by hand may order two new functions either way; those where the truth is no choice of
the two sides' changes (git's merge with each conflict taken as ours, theirs, both in
either order, or the base, does not give it: the person made an edit that neither
side made, what git calls an evil merge), which no merge of the three files can
reproduce; and the rest, the ones that really count.

Cases come from a corpus directory (default: benchmarks/merge_cases, one folder per
case with base.py, ours.py, theirs.py and expected.py, or a `conflict` file instead
of expected.py) or are mined at run time from a local git repository's merge
commits (`--mine PATH`): for every merge of two parents and every Python file that
both parents changed since their merge base, the merge base's, first parent's and
second parent's versions, with the merge commit's version as the truth. Mined code
is only ever written to a temporary directory.

    python benchmarks/merge_corpus.py [--corpus DIR | --mine REPO] [--limit N]
        [--tool NAME=COMMAND ...] [--jobs N] [-v] [--check] [--rules]   (--mine may be repeated)

By default it scores `python -m osqr_nb merge-file` and `git merge-file` in one run.
With --rules it also counts, per case, which post-merge check refused git's clean merge
and which order or layout rule of the semantic merge decided something (sorted imports
and entries kept sorted, each side's order where the file has none, the blank lines of
the place). With --check the exit code is 1 if the first tool merges anything silently wrong
or gets fewer cases right than the second.
"""

from __future__ import annotations

import argparse
import ast
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CORPUS = Path(__file__).resolve().parent / "merge_cases"
DEFAULT_TOOLS = {
    "osqr merge-file": [sys.executable, "-m", "osqr_nb", "merge-file", "-q"],
    "git merge-file": ["git", "merge-file", "-q"],
}
OUTCOMES = ("correct", "conflict", "wrong silent", "error")


@dataclass(frozen=True)
class Case:
    name: str
    base: bytes
    ours: bytes
    theirs: bytes
    truth: bytes | None   # None: a true conflict, no merge is right
    suffix: str = ".py"


@dataclass(frozen=True)
class Score:
    tool: str
    case: Case
    outcome: str
    seconds: float
    equivalent: bool = False   # wrong silent, but the truth's code in another order
    beyond_sides: bool = False  # wrong silent, and the truth holds an edit neither side made
    ast_outcome: str = ""      # the outcome with layout ignored (AST equality)


def load_corpus(root: Path) -> list[Case]:
    cases = []
    for folder in sorted(p for p in root.iterdir() if (p / "base.py").exists()):
        parts = [(folder / f"{role}.py").read_bytes() for role in ("base", "ours", "theirs")]
        expected = folder / "expected.py"
        truth = expected.read_bytes() if expected.exists() else None
        if truth is None and not (folder / "conflict").exists():
            raise SystemExit(f"{folder.name}: needs expected.py or a `conflict` file")
        cases.append(Case(folder.name, *parts, truth))
    return cases


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def _blob(repo: Path, commit: str, path: str) -> bytes | None:
    done = subprocess.run(["git", "-C", str(repo), "show", f"{commit}:{path}"], capture_output=True)
    return done.stdout if done.returncode == 0 else None


def mine(repo: Path, limit: int | None) -> list[Case]:
    """Cases from the merge commits reachable from HEAD, newest first, named `repo:commit:path`."""
    cases: list[Case] = []
    for line in _git(repo, "rev-list", "--merges", "--parents", "HEAD").splitlines():
        merge, *parents = line.split()
        bases = _git(repo, "merge-base", "--all", *parents).split() if len(parents) == 2 else []
        if len(bases) != 1:
            continue   # octopus merges and criss-cross histories have no single base
        for path in _changed_on_both_sides(repo, bases[0], parents):
            versions = [_blob(repo, commit, path) for commit in (bases[0], *parents, merge)]
            if None not in versions:
                cases.append(Case(f"{_name(repo)}:{merge[:10]}:{path}", *versions))
            if limit and len(cases) >= limit:
                return cases
    return cases


def _name(repo: Path) -> str:
    """The repository's folder name (its parent's, for a git directory called repo or .git)."""
    path = repo.resolve()
    return path.parent.name if path.name in ("repo", ".git") else path.name


def _changed_on_both_sides(repo: Path, base: str, parents: list[str]) -> list[str]:
    changed = [set(_git(repo, "diff", "--name-only", "--no-renames", base, parent, "--", "*.py").split("\n"))
               for parent in parents]
    return sorted(path for path in changed[0] & changed[1] if path)


def score(tool: str, command: list[str], case: Case) -> Score:
    with tempfile.TemporaryDirectory(prefix="merge-corpus-") as tmp:
        paths = [Path(tmp) / f"{role}{case.suffix}" for role in ("ours", "base", "theirs")]
        for path, text in zip(paths, (case.ours, case.base, case.theirs)):
            path.write_bytes(text)
        started = time.perf_counter()
        done = subprocess.run([*command, *map(str, paths)], cwd=tmp, capture_output=True)
        seconds = time.perf_counter() - started
        result = paths[0].read_bytes()
    outcome = _outcome(done.returncode, result, case.truth)
    if outcome != "wrong silent" or case.truth is None:
        return Score(tool, case, outcome, seconds, ast_outcome=outcome)
    ast_outcome = "correct" if _same_code(result, case.truth) else outcome
    equivalent = _equivalent(result, case.truth)
    return Score(tool, case, outcome, seconds, equivalent, not equivalent and not _choice_of_sides(case),
                 ast_outcome)


def _outcome(code: int, result: bytes, truth: bytes | None) -> str:
    if 1 <= code < 128:
        return "correct" if truth is None else "conflict"
    if code != 0:
        return "error"
    return "correct" if truth is not None and _normal(result) == _normal(truth) else "wrong silent"


def _normal(text: bytes) -> list[bytes]:
    return [line.rstrip() for line in text.rstrip().splitlines()]


def _same_code(result: bytes, truth: bytes) -> bool:
    """Equal with layout ignored: the same syntax tree (comments, blank lines, wrapping aside)."""
    try:
        return ast.dump(ast.parse(result)) == ast.dump(ast.parse(truth))
    except (SyntaxError, ValueError):
        return False


GIT_PARTS = ("git conflicts", "git clean, right", "git clean, wrong")


def _git_merge(case: Case) -> tuple[int, bytes]:
    with tempfile.TemporaryDirectory(prefix="merge-corpus-") as tmp:
        paths = [Path(tmp) / role for role in ("ours", "base", "theirs")]
        for path, text in zip(paths, (case.ours, case.base, case.theirs)):
            path.write_bytes(text)
        done = subprocess.run(["git", "merge-file", "-p", *map(str, paths)], capture_output=True)
    return done.returncode, done.stdout


def git_part(case: Case) -> str:
    """Which part of the corpus a case falls in, by what plain git merge-file does with it."""
    code, merged = _git_merge(case)
    if code != 0:
        return GIT_PARTS[0]
    right = case.truth is not None and (_normal(merged) == _normal(case.truth) or _same_code(merged, case.truth))
    return GIT_PARTS[1] if right else GIT_PARTS[2]


CHECKS = {   # the post-merge checks, by the words their reasons start with
    "defines": "check: a name defined twice that neither side defines twice",
    "changes the parameters": "check: a new call written for parameters the other side changed",
    "the result uses": "check: a name one side renamed or removed, still used",
    "renames or removes": "check: a member one side renamed or removed, still used",
    "not valid Python": "check: the result does not parse",
}


def rule_counts(cases: list[Case]) -> Counter:
    """How often each post-merge check refuses git's clean merge, and each order or layout rule of
    the semantic merge decides something, over the cases merge-file hands to them (in process)."""
    from osqr_nb.workspace.semantic import check_merged, semantic_merge

    counts: Counter = Counter()
    for case in cases:
        try:
            base, ours, theirs = (text.decode() for text in (case.base, case.ours, case.theirs))
        except UnicodeDecodeError:
            continue
        code, merged = _git_merge(case)
        if code == 0:
            problem = check_merged(base, ours, theirs, merged.decode(errors="replace"))
            if problem is None:
                continue
            counts.update(label for words, label in CHECKS.items() if words in problem.split(",")[0])
        counts.update(set(semantic_merge(base, ours, theirs).rules))
    return counts


def _equivalent(result: bytes, truth: bytes) -> bool:
    try:
        return _canonical(ast.parse(result)) == _canonical(ast.parse(truth))
    except (SyntaxError, ValueError):
        return False


def _canonical(node: ast.AST) -> str:
    """The code with module and class bodies and imported names sorted: equal for two orders
    of one set of definitions."""
    if isinstance(node, ast.ImportFrom):
        node.names.sort(key=ast.dump)
    if not isinstance(node, (ast.Module, ast.ClassDef)):
        return ast.dump(node)
    head = ast.dump(node.__class__(**{**node.__dict__, "body": []})) if isinstance(node, ast.ClassDef) else "module"
    return head + "[" + ",".join(sorted(_canonical(child) for child in node.body)) + "]"


MARKER = 24   # conflict marker size: longer than any line of `=` a docstring is likely to hold


def _choice_of_sides(case: Case) -> bool:
    """Is the truth git's merge with each conflict taken as ours, theirs, both (either order) or
    the base? If not, the person made an edit that neither side made."""
    with tempfile.TemporaryDirectory(prefix="merge-corpus-") as tmp:
        paths = [Path(tmp) / role for role in ("ours", "base", "theirs")]
        for path, text in zip(paths, (case.ours, case.base, case.theirs)):
            path.write_bytes(text)
        done = subprocess.run(["git", "merge-file", "-p", "--diff3", f"--marker-size={MARKER}", *map(str, paths)],
                              capture_output=True)
    truth = _normal(case.truth)
    ends = {0}
    for options in _regions(_normal(done.stdout)):
        ends = {end + len(option) for end in ends for option in options if truth[end:end + len(option)] == option}
    return len(truth) in ends


def _regions(lines: list[bytes]) -> list[list[list[bytes]]]:
    """git's diff3 output as regions, each the list of ways it may be resolved."""
    regions, current, hunk = [], [], None
    for line in lines:
        mark = line[:MARKER]
        if hunk is None and mark == b"<" * MARKER:
            regions.append([current])
            current, hunk = [], []
        elif hunk is not None and mark in (b"|" * MARKER, b"=" * MARKER):
            hunk.append(current)
            current = []
        elif hunk is not None and mark == b">" * MARKER:
            ours, base, theirs = [*hunk, current]
            regions.append([ours, theirs, ours + theirs, theirs + ours, base])
            current, hunk = [], None
        else:
            current.append(line)
    return [*regions, [current]]


def run(cases: list[Case], tools: dict[str, list[str]], jobs: int) -> list[Score]:
    work = [(tool, command, case) for case in cases for tool, command in tools.items()]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(lambda job: score(*job), work))


def table(scores: list[Score], tools: list[str], cases: list[Case], label: str = "cases") -> str:
    """The Markdown table: each part of the corpus (all, then by git's outcome), each tool."""
    parts = {case.name: git_part(case) for case in cases}
    conflicts = sum(case.truth is None for case in cases)
    lines = [f"{len(cases)} cases ({len(cases) - conflicts} with a merge, {conflicts} true conflicts)", "",
             "| cases | tool | correct, layout ignored | correct, exact text | conflict "
             "| wrong silent, layout ignored | wrong silent, exact text | ms/case |",
             "|---|---|---|---|---|---|---|---|"]
    for part in ("all", *GIT_PARTS):
        names = {name for name, where in parts.items() if part in ("all", where)}
        if names:
            lines += _part_rows(f"{label}: {part}" if part != "all" else f"{label}, all", len(names),
                                [s for s in scores if s.case.name in names], tools)
    errors = [s for s in scores if s.outcome == "error"]
    if errors:
        lines.append(f"\nerrors: {len(errors)} ({', '.join(sorted({s.tool for s in errors}))})")
    lines.append("")
    for tool in tools:
        wrong = [s for s in scores if s.tool == tool and s.outcome == "wrong silent"]
        if wrong:
            same, beyond = sum(s.equivalent for s in wrong), sum(s.beyond_sides for s in wrong)
            layout = sum(s.ast_outcome == "correct" for s in wrong)
            lines.append(f"  {tool}: of its {len(wrong)} wrong silent (exact text), {layout} differ only in layout, "
                         f"{same} are the truth's code in another order or layout, {beyond} have a truth with an "
                         f"edit neither side made, {len(wrong) - same - beyond} are wrong")
    return "\n".join(lines)


def _part_rows(title: str, size: int, scores: list[Score], tools: list[str]) -> list[str]:
    rows = []
    for index, tool in enumerate(tools):
        own = [s for s in scores if s.tool == tool]
        def count(outcome: str, exact: bool) -> int:
            return sum((s.outcome if exact else s.ast_outcome) == outcome for s in own)
        def cell(n: int) -> str:
            return f"{n} ({100 * n / max(len(own), 1):.1f}%)"
        median = 1000 * statistics.median(s.seconds for s in own) if own else 0.0
        head = f"{title} ({size})" if index == 0 else ""
        rows.append(f"| {head} | {tool} | {cell(count('correct', False))} | {cell(count('correct', True))} "
                    f"| {count('conflict', True)} | {cell(count('wrong silent', False))} "
                    f"| {cell(count('wrong silent', True))} | {median:.0f} |")
    return rows


def _tools(specs: list[str]) -> dict[str, list[str]]:
    if not specs:
        return dict(DEFAULT_TOOLS)
    tools = {}
    for spec in specs:
        name, _, command = spec.partition("=")
        if not command:
            raise SystemExit(f"--tool wants NAME=COMMAND, got {spec!r}")
        tools[name] = shlex.split(command)
    return tools


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="a folder of cases")
    source.add_argument("--mine", type=Path, action="append", metavar="REPO",
                        help="mine cases from this git repository (repeat for several)")
    parser.add_argument("--limit", type=int, help="at most N cases")
    parser.add_argument("--tool", action="append", default=[], metavar="NAME=COMMAND",
                        help="a merge command taking OURS BASE THEIRS (repeat; default: osqr and git)")
    parser.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("-v", "--verbose", action="store_true", help="list every case that is not correct")
    parser.add_argument("--check", action="store_true", help="exit 1 unless the first tool wins safely")
    parser.add_argument("--rules", action="store_true",
                        help="also count the cases each post-merge check and order/layout rule decides")
    args = parser.parse_args(argv)
    tools = _tools(args.tool)
    cases = [case for repo in args.mine for case in mine(repo, args.limit)] if args.mine \
        else load_corpus(args.corpus)[: args.limit]
    started = time.perf_counter()
    scores = run(cases, tools, args.jobs)
    print(f"source: {'merge commits of ' + ', '.join(map(str, args.mine)) if args.mine else args.corpus}")
    label = "mined" if args.mine else "ours"
    print(table(scores, list(tools), cases, label))
    print(f"wall time {time.perf_counter() - started:.1f} s with {args.jobs} jobs")
    if args.rules:
        print("\n| check or rule | cases |\n|---|---|")
        for rule, count in sorted(rule_counts(cases).items(), key=lambda item: (-item[1], item[0])):
            print(f"| {rule} | {count} |")
    if args.verbose:
        for s in scores:
            if s.outcome != "correct":
                why = " (order or layout)" if s.equivalent else " (edit beyond both sides)" if s.beyond_sides else ""
                print(f"  {s.tool}: {s.outcome}{why}: {s.case.name}")
    return _verdict(scores, list(tools)) if args.check else 0


def _verdict(scores: list[Score], tools: list[str]) -> int:
    def count(tool: str, outcome: str) -> int:
        return sum(s.tool == tool and s.outcome == outcome for s in scores)
    ok = count(tools[0], "wrong silent") == 0 and (len(tools) < 2 or count(tools[0], "correct") >= count(tools[1], "correct"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
