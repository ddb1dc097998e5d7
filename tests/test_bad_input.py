"""Bad input gets a clear error, never a hang, a traceback or a crash (issue 12, item 5).

Plans: YAML aliases and deep nesting are refused from the event stream, before
anything is built; 100 KB lines read in linear time; every error is a PlanError.
Magic lines: every bad `%osqr` / `%%osqr` line is a one-line UsageError, through
a real IPython shell. Hypothesis fuzzes both with the families of
benchmarks/input_fuzz.py (200 examples each here, 1,000+ there).
"""

from __future__ import annotations

import asyncio
import sys
from types import SimpleNamespace

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from osqr_nb import api
from osqr_nb.magics import OsqrMagics, parse_line
from osqr_nb.plan import explicit
from osqr_nb.plan.explicit import MAX_PLAN_CHARS, MAX_TASKS, MAX_YAML_DEPTH, parse_plan
from osqr_nb.plan.task import PlanError

from conftest import load_benchmark, make_repo

fuzz = load_benchmark("input_fuzz")
FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def billion_laughs() -> str:
    rows = ["tasks:", "  - &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    rows += [f"  - &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)]
    return "\n".join(rows) + "\n"


@pytest.fixture
def nothing_is_constructed(monkeypatch):
    """Fail if YAML builds Python objects: what is refused must be refused before that."""
    def refuse(self, node):
        raise AssertionError("constructed a YAML document that should have been refused")
    monkeypatch.setattr(yaml.constructor.BaseConstructor, "construct_document", refuse)


# --- YAML -----------------------------------------------------------------------------------------

def test_billion_laughs_is_refused_before_anything_is_built(nothing_is_constructed):
    text = billion_laughs()
    assert len(text) < 700          # 9**9 lols once expanded
    with pytest.raises(PlanError, match=r"^line 3: YAML aliases \(&anchor / \*a\) are not allowed in a plan"):
        parse_plan(text)


def test_one_harmless_alias_is_refused_too_with_its_line():
    with pytest.raises(PlanError, match=r"line 4: YAML aliases .*write each value out in full"):
        parse_plan("- id: a\n  title: &t Auth\n- id: b\n  title: *t\n")


@pytest.mark.parametrize("text", [
    "tasks: " + "[" * 100_000,                                            # flow, unclosed
    "tasks: " + "[" * 50_000 + "]" * 50_000,                               # flow, closed
    "tasks:\n" + "".join("  " * i + "- a:\n" for i in range(200)),         # block
    "tasks: " + "{a: " * 40_000,
], ids=["flow-open", "flow-closed", "block", "mapping"])
def test_deep_nesting_is_refused_from_the_events(text, nothing_is_constructed):
    with pytest.raises(PlanError, match=rf"nested deeper than {MAX_YAML_DEPTH} levels"):
        parse_plan(text)


def test_nesting_up_to_the_limit_is_read():
    nested = "[" * (MAX_YAML_DEPTH - 3) + "x" + "]" * (MAX_YAML_DEPTH - 3)   # root, tasks, task: 3 levels
    plan = parse_plan(f"tasks:\n  - id: a\n    description: {nested}\n")
    assert plan["a"].description.count("[") == MAX_YAML_DEPTH - 3
    with pytest.raises(PlanError, match="nested deeper"):
        parse_plan(f"tasks:\n  - id: a\n    description: [{nested}]\n")


def test_a_recursion_error_becomes_a_plan_error(monkeypatch):
    """Even with the depth check lifted, constructing 5,000 levels must not escape as RecursionError."""
    monkeypatch.setattr(explicit, "MAX_YAML_DEPTH", 10**6)
    depth = max(5_000, sys.getrecursionlimit() * 2)
    with pytest.raises(PlanError, match="nested too deeply"):
        parse_plan("tasks: " + "[" * depth + "]" * depth)


@pytest.mark.parametrize("text, message", [
    ("tasks:\n  - id: a\n    estimate: " + "9" * 5000 + "\n", "cannot be read: Exceeds the limit"),
    ("tasks:\n  - id: a\n    estimate: 2001-13-01\n", "cannot be read: month must be in 1..12"),
    ("tasks:\n  - id: a\n    title: \ud800\n", "cannot be read"),
    ("tasks: !!python/object:os.system [ls]\n", "not valid YAML"),
    ("tasks:\n  db: {1: x}\n", "unknown field '1'"),
    ("tasks: [a]\n---\ntasks: [b]\n", "line 2: this plan is not valid YAML"),
])
def test_odd_yaml_values_are_plan_errors(text, message):
    with pytest.raises(PlanError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_plan(text)


def test_a_flow_list_of_tasks_on_one_line_keeps_each_task():
    """Tasks were told apart by line, so `tasks: [a, b]` made two tasks called 'b'."""
    assert [t.id for t in parse_plan("tasks: [a, b, c]\n").tasks] == ["a", "b", "c"]


# --- size and markdown ----------------------------------------------------------------------------

def test_a_plan_too_long_or_with_too_many_tasks_is_refused_with_the_limit():
    with pytest.raises(PlanError, match=f"at most {MAX_PLAN_CHARS:,}: split the work"):
        parse_plan("- [a] A\n" + "x" * MAX_PLAN_CHARS)
    many = "".join(f"- [t{i}] Task {i}\n" for i in range(MAX_TASKS + 1))
    with pytest.raises(PlanError, match=f"{MAX_TASKS + 1:,} tasks; a plan may have at most {MAX_TASKS:,}"):
        parse_plan(many)
    with pytest.raises(PlanError, match="a plan is text, got bytes"):
        parse_plan(b"- [a] A")


LONG = 100_000


@pytest.mark.timeout(60)   # each line below took minutes with the old patterns (a run of spaces rescanned)
@pytest.mark.parametrize("text, check", [
    ("- [a] A" + " " * LONG + "B", lambda p: p["a"].title == "A" + " " * LONG + "B"),
    ("- [a] A" + " " * LONG + "(code", lambda p: p["a"].title.endswith("(code")),
    ("- [a] A" + " " * LONG + "(docs)", lambda p: p["a"].kind.value == "docs"),
    ("- [b] B\n- [a] A after b" + " " * LONG + ", b~", lambda p: p["a"].partial == ["b"]),
    ("- [b] B\n- [a] A after b" + "   and   b" * (LONG // 10), lambda p: p["a"].depends_on == ["b"]),
    ("- [a] A\n  a" + " " * LONG + "b", lambda p: p["a"].description.startswith("a ")),
    ("- [a] A\n  writes:" + " x.py" * (LONG // 5), lambda p: len(p["a"].writes) == LONG // 5),
    ("- [a] A (" + "(a " * (LONG // 3), lambda p: len(p) == 1),
], ids=["title", "kind-unclosed", "kind", "after", "ands", "key", "writes", "parens"])
def test_lines_of_100_kb_read_in_linear_time(text, check):
    assert check(parse_plan(text))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("text, message", [
    ("- [a] A\n  estimate: 1" + " " * LONG + "x", "estimate '1 .*…' is not a number of hours"),
    ("- [a] A\n  estimate: " + "9" * LONG, "is more than 100,000 hours"),
    ("- [a] A after " + " ".join(f"x{i}" for i in range(LONG // 7)), r"and \d+ more problems; fix these first"),
])
def test_bad_100_kb_lines_give_short_errors(text, message):
    with pytest.raises(PlanError, match=message) as caught:
        parse_plan(text)
    assert len(str(caught.value)) < 10_000


def test_a_dry_run_of_many_colliding_tasks_previews_only_the_first_collisions():
    """50 tasks writing one file made 1,225 pairs, each previewing its choices: 17 s before."""
    from osqr_nb.ui.draft import MAX_COLLISIONS_SHOWN, describe_plan
    plan = parse_plan("".join(f"- [t{i}] Task {i} (code)\n  writes: app.py\n" for i in range(30)))
    html = describe_plan(plan, None)
    assert html.count("Serialize: Task") == 2 * MAX_COLLISIONS_SHOWN
    assert f"… and {30 * 29 // 2 - MAX_COLLISIONS_SHOWN} more pairs of tasks" in html


# --- magic lines through a real shell -------------------------------------------------------------

@pytest.fixture(scope="module")
def shell(tmp_path_factory):
    """An in-process IPython shell with the extension, as a notebook loads it (history in memory)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IPYTHONDIR", str(tmp_path_factory.mktemp("ipython")))
        config = Config()
        config.HistoryManager.hist_file = ":memory:"
        ip = InteractiveShell.instance(config=config)
        ip.run_line_magic("load_ext", "osqr_nb")
        yield ip
        InteractiveShell.clear_instance()


BAD_LINES = [
    # line form, every command
    ("status 'abc", "cannot split the %osqr line into options (No closing quotation)"),
    ("status a b", "unrecognized arguments: b"),
    ("status --tier 2", "--tier does not apply to %osqr status; it takes no options"),
    ("pause --budget 3", "--budget does not apply to %osqr pause"),
    ("pause nosuchrun", "no run 'nosuchrun' in this kernel"),
    ("resume --dry-run", "--dry-run does not apply to %osqr resume; it takes --cluster, --repo"),
    ('resume --repo "unclosed', "No closing quotation"),
    ("history some-run", "%osqr history takes no run id (got 'some-run')"),
    ("history --max-parallel 3", "--max-parallel does not apply to %osqr history"),
    ("checkpoints --preview", "--preview does not apply to %osqr checkpoints; it takes no options"),
    ("route --model x", "--model does not apply to %osqr route"),
    ("models --tier 9 --dry-run", "--tier, --dry-run do not apply to %osqr models; it takes no options"),
    ("cost --check pytest", "--check does not apply to %osqr cost"),
    ("cost nosuchrun", "no run 'nosuchrun' in this kernel"),
    ("go --budget 5", "--budget does not apply to %osqr go"),
    ("go now", "%osqr go takes no run id (got 'now')"),
    ("share --tier 1", "--tier does not apply to %osqr share; it takes --preview, --pull, --repo"),
    ("frobnicate", "unknown %osqr command 'frobnicate'"),
    ("'status", "No closing quotation"),
    ("-h", "unrecognized arguments: -h"),
    ("--m 3", "ambiguous option: --m could match --max-parallel, --model"),
    ("--repo .", "--repo does not apply to %osqr status"),
]
BAD_CELL_LINES = [
    ('--check "pytest -q', "cannot split the %osqr line into options (No closing quotation)"),
    ("--tier x", "argument --tier: invalid int value: 'x'"),
    ("--tier 9", "--tier must be 1-4"),
    ("--tier", "argument --tier: expected one argument"),
    ("--max-parallel -1", "--max-parallel must be at least 1, got -1"),
    ("--max-parallel 0", "--max-parallel must be at least 1, got 0"),
    ("--max-parallel 2.5", "argument --max-parallel: invalid int value: '2.5'"),
    ("--budget nan", "--budget must be a number of US dollars (0 for no limit), got nan"),
    ("--budget inf", "got inf"),
    ("--budget 1e400", "got inf"),
    ("--budget -2", "got -2.0"),
    ("--budget ten", "argument --budget: invalid float value: 'ten'"),
    ("--preview", "--preview does not apply to %%osqr; it takes --budget, --check, --cluster, --dry-run"),
    ("status", "%%osqr takes options only (got 'status')"),
    ("--bogus", "unrecognized arguments: --bogus"),
]


@pytest.mark.parametrize("line, message", BAD_LINES, ids=[line for line, _ in BAD_LINES])
def test_every_bad_line_is_a_one_line_usage_error(shell, line, message):
    with pytest.raises(UsageError) as caught:
        shell.run_line_magic("osqr", line)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("line, message", BAD_CELL_LINES, ids=[line for line, _ in BAD_CELL_LINES])
def test_every_bad_cell_line_is_a_one_line_usage_error(shell, line, message):
    before = len(api.live_runs())
    with pytest.raises(UsageError) as caught:
        shell.run_cell_magic("osqr", line, "- [a] A (code): do it\n")
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert len(api.live_runs()) == before


def test_a_bad_plan_in_a_dry_run_is_a_usage_error_with_its_line(shell, repo):
    with pytest.raises(UsageError, match=r"line 2: after 'ghost'"):
        shell.run_cell_magic("osqr", f"--dry-run --repo {repo}", "- [a] A\n- [b] B after ghost\n")
    with pytest.raises(UsageError, match="YAML aliases"):
        shell.run_cell_magic("osqr", f"--dry-run --repo {repo}", billion_laughs())


def test_go_after_the_plan_started_is_refused(shell):
    magics = shell.magics_manager.registry["OsqrMagics"]
    magics._draft = SimpleNamespace(go=SimpleNamespace(disabled=True))
    try:
        with pytest.raises(UsageError, match="that plan has started already"):
            shell.run_line_magic("osqr", "go")
    finally:
        del magics._draft


def test_osqr_dir_that_is_a_file_is_a_usage_error_everywhere(shell, tmp_path):
    repo = make_repo(tmp_path / "repo")
    (repo / ".osqr").write_text("not a folder")
    before = len(api.live_runs())

    async def in_a_kernel():     # as in a kernel, a loop runs while the magic does
        with pytest.raises(UsageError, match=r"\.osqr is a file"):
            shell.run_cell_magic("osqr", f"--repo {repo} --tier 4", "- [a] A (code): do it\n")
        with pytest.raises(UsageError, match="no osqr runs"):
            shell.run_line_magic("osqr", f"resume --repo {repo}")
        with pytest.raises(UsageError, match="nothing to share"):
            shell.run_line_magic("osqr", f"share --repo {repo}")
        assert shell.run_line_magic("osqr", f"history --repo {repo}").empty

    asyncio.run(in_a_kernel())
    assert len(api.live_runs()) == before and (repo / ".osqr").read_text() == "not a folder"


def test_good_lines_parse_to_what_they_say():
    args = parse_line('--repo . --tier 3 --max-parallel 2 --budget 0.5 --check "pytest -q" --dry-run', cell=True)
    assert (args.command, args.tier, args.max_parallel, args.budget, args.dry_run) == ("%%osqr", 3, 2, 0.5, True)
    assert parse_line("", cell=False).command == "status"
    resume = parse_line("resume r1 --repo x", cell=False)
    assert (resume.command, resume.run_id, resume.repo) == ("resume", "r1", "x")
    assert parse_line("share --preview", cell=False).preview is True


def test_the_help_lists_every_command():
    assert "models | cost | go | share" in " ".join(OsqrMagics.osqr.__doc__.split())


# --- fuzzing --------------------------------------------------------------------------------------

@FUZZ
@given(fuzz.markdown_plans())
def test_fuzz_markdown_plans_give_a_plan_or_a_plan_error(text):
    fuzz.check_plan(text)


@FUZZ
@given(fuzz.yaml_plans())
def test_fuzz_yaml_plans_give_a_plan_or_a_plan_error(text):
    fuzz.check_plan(text)


@FUZZ
@given(fuzz.magic_lines)
def test_fuzz_magic_lines_give_checked_options_or_a_usage_error(example):
    fuzz.check_magic(example)


def test_a_request_in_words_with_long_runs_of_spaces_is_split_without_hanging():
    from osqr_nb.api import plan_request
    from osqr_nb.plan.task import PlanError
    plan = plan_request("Build the parser" + " " * 20_000 + "and write the docs")
    assert len(plan.tasks) >= 1
    with pytest.raises(PlanError, match="at most"):
        plan_request("x " * 200_000)


def test_a_budget_must_be_a_finite_positive_number():
    from osqr_nb.engine.budget import check_budget
    for bad in (float("nan"), float("inf"), -1.0, 0.0 - 5):
        with pytest.raises(ValueError, match="positive number"):
            check_budget(bad)
