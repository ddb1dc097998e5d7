"""The post-merge checks (workspace/checks.py) on the traps parallel agents set: each merges
cleanly in git and is wrong, so each must come back as a conflict or as one good merge."""

import subprocess
from pathlib import Path

import pytest

from osqr_nb.__main__ import main
from osqr_nb.workspace.checks import check_merged
from osqr_nb.workspace.semantic import check_merged as reexported, semantic_merge

CORPUS = Path(__file__).resolve().parent.parent / "benchmarks" / "merge_cases"
TRAPS = ["trap_same_name_elsewhere", "trap_same_helper_elsewhere", "trap_parameter_inserted_vs_new_call"]


def versions(case: str) -> list[str]:
    return [(CORPUS / case / f"{role}.py").read_text() for role in ("base", "ours", "theirs")]


def git_merge(base: str, ours: str, theirs: str, tmp: Path) -> tuple[int, str]:
    for role, text in (("base", base), ("ours", ours), ("theirs", theirs)):
        (tmp / f"{role}.py").write_text(text)
    done = subprocess.run(["git", "merge-file", "-p", *(str(tmp / f"{r}.py") for r in ("ours", "base", "theirs"))],
                          capture_output=True, text=True)
    return done.returncode, done.stdout


def test_check_merged_still_comes_from_semantic():
    assert reexported is check_merged


@pytest.mark.parametrize("case, why", [
    ("trap_same_name_elsewhere", "defines slug twice, with the different code each side added"),
    ("trap_same_helper_elsewhere", "defines env_flag twice, the same code both sides added"),
    ("trap_parameter_inserted_vs_new_call", "ours changes the parameters of format_response() from (data, status) "
                                            "to (request_id, data, status), and theirs adds the call "
                                            "format_response({'name': name}, 201), written for the old ones"),
])
def test_git_merges_each_trap_cleanly_and_the_check_refuses_it(case, why, tmp_path):
    code, merged = git_merge(*versions(case), tmp_path)
    assert code == 0                                   # git sees nothing wrong
    assert why in check_merged(*versions(case), merged)


def test_same_name_with_different_bodies_is_a_conflict_for_the_resolvers(tmp_path):
    """Trap 1: both sides add slug() at different places; git keeps both and the later silently wins."""
    result = semantic_merge(*versions("trap_same_name_elsewhere"))
    assert result.merged is None and "both sides add def slug() with different content" in result.reason
    ours = tmp_path / "ours.py"
    ours.write_text(versions("trap_same_name_elsewhere")[1])
    paths = [str(ours), str(CORPUS / "trap_same_name_elsewhere" / "base.py"),
             str(CORPUS / "trap_same_name_elsewhere" / "theirs.py")]
    assert main(["merge-file", "-q", *paths]) == 1
    assert ours.read_text().startswith("<<<<<<< ")


def test_same_helper_added_twice_keeps_one_copy_at_ours_place(tmp_path):
    """Trap 2: git's clean merge defines env_flag twice; merge-file gives one copy, where ours put it."""
    case = CORPUS / "trap_same_helper_elsewhere"
    ours = tmp_path / "ours.py"
    ours.write_text((case / "ours.py").read_text())
    assert main(["merge-file", "-q", str(ours), str(case / "base.py"), str(case / "theirs.py")]) == 0
    merged = ours.read_text()
    assert merged == (case / "expected.py").read_text()
    assert merged.count("def env_flag") == 1 and merged.index("def env_flag") < merged.index("def load")
    assert check_merged(*versions("trap_same_helper_elsewhere"), merged) is None


def test_new_call_written_for_the_old_parameters_is_a_conflict(tmp_path):
    """Trap 3: `format_response(data, 201)` still fits `(request_id, data, status=200)` by count."""
    base, ours, theirs = versions("trap_parameter_inserted_vs_new_call")
    assert semantic_merge(base, ours, theirs).merged is None
    for path, text in (("o.py", ours), ("b.py", base), ("t.py", theirs)):
        (tmp_path / path).write_text(text)
    assert main(["merge-file", "-q", *(str(tmp_path / p) for p in ("o.py", "b.py", "t.py"))]) == 1
    swapped = check_merged(base, theirs, ours, git_merge(base, theirs, ours, tmp_path)[1])
    assert swapped.startswith("theirs changes the parameters of format_response()")


BASE = "def send(message, channel='email'):\n    return channel, message\n\n\ndef notify(user):\n    return send(user)\n"


@pytest.mark.parametrize("signature, call, refused", [
    ("def send(channel, message):", "send('hello', 'sms')", True),               # reordered
    ("def send(text, channel='email'):", "send('hello')", True),                 # renamed
    ("def send(message, channel='email', urgent=False):", "send('hello', 'sms')", False),   # appended, optional
    ("def send(message, *, channel='email'):", "send('hello')", False),          # the call's argument stays put
    ("def send(message, *, channel='email'):", "send('hello', 'sms')", True),    # no longer fits: _broken_calls
    ("def send(user, message, channel='email'):", "send(message='hi', user='x')", False),   # by keyword: fits
])
def test_any_change_under_a_new_calls_positional_arguments_is_caught(signature, call, refused):
    ours = BASE.replace("def send(message, channel='email'):", signature)
    theirs = BASE + f"\n\ndef alert():\n    return {call}\n"
    merged = ours + f"\n\ndef alert():\n    return {call}\n"
    assert (check_merged(BASE, ours, theirs, merged) is not None) is refused


def test_methods_and_constructors_are_checked_too():
    base = ("class Job:\n    def __init__(self, name, retries=0):\n        self.name = name\n\n"
            "    def run(self, payload, dry=False):\n        return payload\n\n    def again(self):\n"
            "        return self.run(None)\n\n\ndef make():\n    return Job('a')\n")
    ours = base.replace("def run(self, payload, dry=False)", "def run(self, context, payload, dry=False)").replace(
        "self.run(None)", "self.run({}, None)")
    theirs = base.replace("        return payload\n", "        return payload\n\n    def check(self):\n"
                                                     "        return self.run(1, True)\n")
    merged = ours.replace("        return payload\n", "        return payload\n\n    def check(self):\n"
                                                      "        return self.run(1, True)\n")
    assert "Job.run()" in check_merged(base, ours, theirs, merged)
    moved = base.replace("def __init__(self, name, retries=0)", "def __init__(self, owner, name, retries=0)")
    built = base + "\n\ndef spare():\n    return Job('b', 2)\n"
    assert "Job()" in check_merged(base, moved, built, moved + "\n\ndef spare():\n    return Job('b', 2)\n")


def test_names_that_rightly_repeat_pass():
    """A property's setter, overloads, and one side's own double definition are not the merge's doing."""
    base = "class A:\n    @property\n    def x(self):\n        return 1\n"
    ours = base + "\n    @x.setter\n    def x(self, value):\n        pass\n"
    theirs = base + "\n    def y(self):\n        return 2\n"
    assert check_merged(base, ours, theirs, ours + "\n    def y(self):\n        return 2\n") is None
    doubled = "def f():\n    return 1\n\n\ndef f():\n    return 2\n"
    assert check_merged("x = 1\n", doubled, "x = 2\n", doubled + "x = 2\n") is None


def test_one_side_moving_a_function_is_no_double_definition():
    base = "def a():\n    return 1\n\n\ndef b():\n    return 2\n"
    moved = "def b():\n    return 2\n\n\ndef a():\n    return 1\n"
    assert check_merged(base, moved, base, moved) is None


# ---------------------------------------------------------------- across files

RESPONSES = "def format_response(data, status=200):\n    return {'status': status, 'data': data}\n"
INSERTED = RESPONSES.replace("(data, status=200)", "(request_id, data, status=200)").replace(
    "return {", "return {'request': request_id, ")
HANDLERS = "from pkg.responses import format_response\n\n\ndef health():\n    return format_response({})\n"
UPDATED = HANDLERS.replace("format_response({})", "format_response(None, {})")
NEW_CALL = HANDLERS + "\n\ndef create(name):\n    return format_response({'name': name}, 201)\n"


def test_a_new_call_in_another_file_written_for_the_old_parameters_is_caught():
    """Ours inserts request_id in pkg/responses.py and updates pkg/handlers.py; theirs adds a
    call with the old parameters to handlers.py. Each file merges cleanly on its own."""
    from osqr_nb.workspace.imports import broken_imports

    base = {"pkg/__init__.py": "", "pkg/responses.py": RESPONSES, "pkg/handlers.py": HANDLERS}
    ours = {**base, "pkg/responses.py": INSERTED, "pkg/handlers.py": UPDATED}
    theirs = {**base, "pkg/handlers.py": NEW_CALL}
    merged = {**ours, "pkg/handlers.py": NEW_CALL.replace("format_response({})", "format_response(None, {})")}
    (problem,) = broken_imports(["pkg/handlers.py", "pkg/responses.py"], merged, [ours, theirs])
    assert problem.file == "pkg/handlers.py" and problem.line == 9
    assert problem.describe() == ("pkg/handlers.py line 9 calls format_response({'name': name}, 201), written for the "
                                  "parameters (data, status), but the other side changed them in pkg/responses.py "
                                  "to (request_id, data, status)")
    mended = {**merged, "pkg/handlers.py": merged["pkg/handlers.py"].replace("({'name': name}, 201)",
                                                                          "(None, {'name': name}, 201)")}
    assert broken_imports(["pkg/handlers.py", "pkg/responses.py"], mended, [ours, theirs]) == []
    optional = {**ours, "pkg/responses.py": RESPONSES.replace("status=200)", "status=200, headers=None)")}
    assert broken_imports(["pkg/handlers.py"], {**optional, "pkg/handlers.py": NEW_CALL}, [optional, theirs]) == []


# ---------------------------------------------------------------- a real run of two agents

def run_two_agents(repo, start: str, first: str, second: str):
    import osqr_nb
    from osqr_nb import Plan, Task

    from conftest import git, run_async
    from test_run_git import ListModel, finish

    (repo / "app.py").write_text(start)
    git(repo, "commit", "-qam", "start")
    scripts = {"a": [("write_file", {"path": "app.py", "content": first}), finish()],
               "b": [("write_file", {"path": "app.py", "content": second}), finish()]}

    async def main():
        run = osqr_nb.start(plan=Plan([Task("a", "First change"), Task("b", "Second change")]),
                            repo=repo, tier=4, model=ListModel(scripts))
        await run
        return run

    return run_async(main())


@pytest.mark.parametrize("case", ["trap_same_name_elsewhere", "trap_parameter_inserted_vs_new_call"])
def test_the_integrator_does_not_merge_a_trap_silently(repo, case):
    """git merges both branches cleanly; the Integrator's check turns each into a conflict, and
    the run (tier 4, no merge model) reports it instead of committing a wrong file."""
    run = run_two_agents(repo, *versions(case))
    assert run.status == "conflicts"
    (conflict,) = run.integration["conflicts"]
    assert conflict["file"] == "app.py" and conflict["reason"].startswith("git merged it cleanly, but ")
