"""Explicit plans written in a cell: the Markdown list and the YAML form, and their errors."""

import pytest

from osqr_nb import PlanError, TaskKind
from osqr_nb.plan.decompose import OfflinePlanner
from osqr_nb.plan.explicit import ExplicitPlanner, looks_like_plan, parse_plan, to_markdown

from conftest import SEED_REQUEST

MARKDOWN = """\
# The auth work

Some words before the list are ignored.

- [db] DB Schema (refactor): Move users to UUID keys
- [auth] Auth Module (code) after db: Sessions and password hashing
  writes: auth/*.py, auth/__init__.py
  reads: db/schema.sql
  accept: passwords are hashed with a salt
  accept: sessions expire
  estimate: 3h
  Keep the session table small.
- [docs] API Docs (docs) after auth, db~: Document the endpoints
* Cleanup Old Code after DB Schema
"""

YAML = """\
tasks:
  - id: db
    title: DB Schema
    kind: refactor
    description: Move users to UUID keys
  - id: auth
    title: Auth Module
    after: db
    writes: [auth/*.py]
    estimate: 90m
  - id: docs
    title: API Docs
    kind: doc
    after: [auth, db~]
"""


def test_markdown_plan():
    plan = parse_plan(MARKDOWN)
    assert [t.id for t in plan.tasks] == ["db", "auth", "docs", "cleanup-old-code"]
    auth = plan["auth"]
    assert auth.kind is TaskKind.CODE and auth.depends_on == ["db"]
    assert auth.description == "Sessions and password hashing\nKeep the session table small."
    assert auth.writes == ["auth/*.py", "auth/__init__.py"] and auth.reads == ["db/schema.sql"]
    assert auth.acceptance == ["passwords are hashed with a salt", "sessions expire"]
    assert auth.estimate_hours == 3
    assert plan["docs"].depends_on == ["auth", "db"] and plan["docs"].partial == ["db"]
    assert plan.graph.edges["db", "docs"]["partial"] is True
    cleanup = plan["cleanup-old-code"]    # id from the title, kind guessed, after a title
    assert cleanup.kind is TaskKind.REFACTOR and cleanup.depends_on == ["db"]
    assert plan.planner == "explicit plan"


def test_yaml_plan_and_mapping_form():
    plan = parse_plan(YAML)
    assert [t.id for t in plan.tasks] == ["db", "auth", "docs"]
    assert plan["auth"].estimate_hours == 1.5 and plan["auth"].writes == ["auth/*.py"]
    assert plan["docs"].kind is TaskKind.DOCS and plan["docs"].partial == ["db"]
    mapping = parse_plan("tasks:\n  db: DB Schema\n  auth:\n    title: Auth\n    depends_on: db\n")
    assert mapping["auth"].depends_on == ["db"] and mapping["db"].title == "DB Schema"


def test_markdown_round_trips():
    plan = parse_plan(MARKDOWN)
    again = parse_plan(to_markdown(plan))
    assert [t.to_dict() for t in again.tasks] == [t.to_dict() for t in plan.tasks]
    odd = parse_plan("- [x1] (code)\n  title: Fix: retry after failure\n")
    assert odd["x1"].title == "Fix: retry after failure"
    assert parse_plan(to_markdown(odd))["x1"].title == "Fix: retry after failure"


def test_offline_plan_round_trips_through_the_explicit_form():
    plan = OfflinePlanner().plan(SEED_REQUEST)
    again = parse_plan(to_markdown(plan))
    assert [t.to_dict() for t in again.tasks] == [t.to_dict() for t in plan.tasks]


def test_forgiving_details():
    plan = parse_plan("1. [a] First (fix)\n2. [ ] [b] Second (Test) after a and c\n3. [c] Third after a\n"
                      "   - depends on: a\n   - estimate: 1d\n")
    assert plan["a"].kind is TaskKind.QUICK_FIX and plan["b"].kind is TaskKind.TESTS
    assert plan["b"].depends_on == ["a", "c"] and plan["c"].estimate_hours == 8
    words = parse_plan("- [a] A\n- [b] B after a c~\n- [c] C\n")
    assert words["b"].depends_on == ["a", "c"] and words["b"].partial == ["c"]
    titled = parse_plan("- [a] Auth Module (JWT tokens)\n")
    assert titled["a"].title == "Auth Module (JWT tokens)"


@pytest.mark.parametrize("text, expected", [
    (MARKDOWN, True), (YAML, True), ("- id: a\n  title: A\n", True), ("intro\n\n- [db] DB\n", True),
    (SEED_REQUEST, False), ("- add a login page\n- add a signup page", False),
    ("- [ ] add a login page\n- [x] add signup", False), ("", False),
])
def test_looks_like_plan(text, expected):
    assert looks_like_plan(text) is expected


def test_every_problem_with_its_line():
    bad = ("- [a] A (poetry) after b\n"
           "- [b] B after a\n"
           "- [c] C after ghost\n"
           "- [a] Again\n"
           "- [Bad Id] D\n"
           "- [e] E\n  estimate: soon\n")
    with pytest.raises(PlanError) as caught:
        parse_plan(bad)
    problems = caught.value.problems
    assert problems == [
        "line 1: unknown kind 'poetry'; use one of: code, architecture, docs, quick_fix, review, refactor, tests",
        "line 3: after 'ghost': no task has that id or title (ids: a, b, c, e)",
        "line 4: the id 'a' is already used on line 1; give this task its own [id]",
        "line 5: [Bad Id] is not usable as an id; use lowercase letters, digits, '-' or '_' (at most 63 characters)",
        "line 6: estimate 'soon' is not a number of hours (write 3, 3h, 90m or 1d)",
    ]
    assert str(caught.value).startswith("the plan has 5 problems:")


def test_cycles_name_their_lines():
    with pytest.raises(PlanError, match=r"cycle: .*a \(line 1\).*b \(line 2\).*c \(line 3\)"):
        parse_plan("- [a] A after c\n- [b] B after a\n- [c] C after b\n")
    with pytest.raises(PlanError, match=r"line 1: 'a' is after itself"):
        parse_plan("- [a] A after a\n")


def test_yaml_errors_have_lines():
    with pytest.raises(PlanError, match=r"line 3: .*not valid YAML"):
        parse_plan("tasks:\n  - id: a\n  title: [unclosed\n")
    with pytest.raises(PlanError, match=r"line 4: after 'ghost'"):
        parse_plan("tasks:\n  - id: a\n    title: A\n  - id: b\n    after: ghost\n")
    with pytest.raises(PlanError, match=r"line 2: unknown field 'colour'"):
        parse_plan("tasks:\n  - id: a\n    colour: red\n")
    with pytest.raises(PlanError, match="needs `tasks:`"):
        parse_plan("tasks: 3\n")


@pytest.mark.parametrize("text", ["", "   ", "# only a heading\n"])
def test_empty_plans_are_refused(text):
    with pytest.raises(PlanError, match="empty|no tasks"):
        parse_plan(text)


def test_explicit_planner_is_a_planner():
    plan = ExplicitPlanner().plan("- [a] A\n- [b] B after a\n")
    assert plan.critical_path() == ["a", "b"]
