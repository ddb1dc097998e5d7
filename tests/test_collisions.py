"""Tier-1 collision prediction on small real git repositories, the three choices, and scoring."""

from __future__ import annotations

from pathlib import Path

import pytest

from osqr_nb import Plan, PlanError, Task
from osqr_nb.plan.collisions import (Choice, Collision, RepoIndex, choose_by_policy, expand, merge_reviews,
                                     predict_collisions, score_predictions, unordered_pairs)

from conftest import git

FILES = {
    "README.md": "# shop\n",
    "utils.py": "def slugify(text):\n    return text.lower()\n\n\ndef format_date(d):\n    return str(d)\n",
    "auth/__init__.py": "from .tokens import issue_token\n",
    "auth/tokens.py": "from utils import slugify\n\n\ndef issue_token(user):\n    return slugify(user)\n",
    "api/__init__.py": "",
    "api/helpers.py": "from utils import format_date\n\n\ndef paginate(items):\n    return items\n",
    "docs/API.md": "# API\n",
}


def make_repo(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    write(path, files)
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "initial")
    return path


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


@pytest.fixture
def shop(tmp_path) -> Path:
    return make_repo(tmp_path / "shop", FILES)


def auth_and_helpers(**auth: object) -> Plan:
    return Plan([Task("auth", "Auth Module", "code", "Build token issuing in the auth package", **auth),
                 Task("helpers", "API Helpers", "code", "Add pagination helpers to api/helpers.py")])


def test_two_tasks_importing_a_shared_module_collide_on_it(shop):
    [collision] = predict_collisions(auth_and_helpers(), shop)
    assert (collision.task_a, collision.task_b, collision.files) == ("auth", "helpers", ["utils.py"])
    assert collision.message == "Warning: Auth Module and API Helpers may both modify utils.py"
    assert collision.evidence["utils.py"] == ["Auth Module's auth/tokens.py imports it",
                                              "API Helpers's api/helpers.py imports it"]
    assert Collision.from_dict(collision.to_dict()) == collision


def test_ordered_tasks_do_not_collide_but_partial_dependencies_do(shop):
    ordered = Plan([Task("auth", "Auth Module", "code", "Build token issuing in the auth package"),
                    Task("helpers", "API Helpers", "code", "Add pagination to api/helpers.py",
                         depends_on=["auth"])])
    assert predict_collisions(ordered, shop) == []
    ordered.add_dependency("helpers", "auth", partial=True)
    assert unordered_pairs(ordered) == [("auth", "helpers")]
    assert [c.files for c in predict_collisions(ordered, shop)] == [["utils.py"]]


def test_planner_writes_globs_and_new_files(shop):
    plan = Plan([Task("a", "Token Rework", "code", "x", writes=["auth/*.py", "config/settings.py"]),
                 Task("b", "Login", "code", "y", writes=["auth/tokens.py", "./config/settings.py"])])
    [collision] = predict_collisions(plan, shop)
    assert collision.files == ["auth/tokens.py", "config/settings.py"]
    assert collision.evidence["auth/tokens.py"] == ["Token Rework writes auth/*.py", "Login writes auth/tokens.py"]
    assert expand("auth", ["auth/a.py", "auth/b.py", "other.py"]) == ["auth/a.py", "auth/b.py"]
    assert expand("**/*.md", ["README.md", "docs/API.md", "x.py"]) == ["README.md", "docs/API.md"]
    assert expand("new/**", ["x.py"]) == ["new/**"]


def test_names_a_description_mentions_find_the_files_defining_them(shop):
    plan = Plan([Task("dates", "Dates", "code", "Make format_date return ISO 8601"),
                 Task("slugs", "Slugs", "code", "Make slugify keep dashes")])
    [collision] = predict_collisions(plan, shop)
    assert collision.files == ["utils.py"]
    assert collision.evidence["utils.py"] == ["Dates names format_date, defined here",
                                              "Slugs names slugify, defined here"]


def test_docs_and_review_tasks_do_not_write_the_code_they_mention(shop):
    plan = Plan([Task("docs", "API Docs", "docs", "Document issue_token and the auth package"),
                 Task("tokens", "Token Expiry", "code", "Make issue_token expire"),
                 Task("review", "Review", "review", "Review issue_token")])
    assert predict_collisions(plan, shop) == []


def test_repository_index_resolves_relative_imports_and_refactors_reach_users(shop):
    index = RepoIndex.build(shop)
    assert index.imports["auth/__init__.py"] == {"auth/tokens.py"}
    assert index.defines["issue_token"] == {"auth/tokens.py"}
    assert index.users["slugify"] == {"auth/tokens.py"}
    plan = Plan([Task("rename", "Rename", "refactor", "Rename slugify to make_slug"),
                 Task("tokens", "Token Expiry", "code", "Make issue_token expire")])
    [collision] = predict_collisions(plan, shop, index=index)
    assert collision.files == ["auth/tokens.py"]
    assert "Rename refactors slugify, imported here" in collision.evidence["auth/tokens.py"]


def test_serialize_adds_the_edge_and_reports_the_critical_path(shop):
    plan = auth_and_helpers(estimate_hours=3)
    plan["helpers"].estimate_hours = 1
    [collision] = predict_collisions(plan, shop)
    effect = collision.serialize(plan, "auth")
    assert plan["helpers"].depends_on == ["auth"] and ("auth", "helpers") in plan.graph.edges
    assert (effect.critical_path_before, effect.critical_path_after) == (3, 4)
    assert effect.path_after == ["auth", "helpers"] and effect.growth == pytest.approx(1 / 3)
    assert effect.summary == "API Helpers now waits for Auth Module; critical path 3 -> 4 hours"
    assert predict_collisions(plan, shop) == []
    with pytest.raises(PlanError, match="not one of this collision's tasks"):
        collision.serialize(auth_and_helpers(), "ghost")


def test_split_gives_each_task_its_own_file_and_tells_both(shop):
    plan = auth_and_helpers(writes=["utils.py", "auth/tokens.py"])
    [collision] = predict_collisions(plan, shop)
    effect = collision.split(plan)
    assert plan["auth"].writes == ["auth/tokens.py", "auth_utils.py"]      # named for the task's area,
    assert plan["helpers"].writes == ["api_utils.py"]                       # as the seed names them
    for task_id, mine, theirs in (("auth", "auth_utils.py", "api_utils.py"),
                                  ("helpers", "api_utils.py", "auth_utils.py")):
        note = plan[task_id].description
        assert f"instead of editing utils.py, write {mine} (create it)" in note and theirs in note
    assert not plan.graph.edges and effect.growth == 0
    assert effect.changes == ["auth writes auth_utils.py instead of utils.py",
                              "helpers writes api_utils.py instead of utils.py"]
    assert predict_collisions(plan, shop) == []          # decided: not predicted again
    assert Plan.from_dict(plan.to_dict()).resolutions[0]["choice"] == "split"


def test_parallel_marks_the_pair_for_merge_review(shop):
    plan = auth_and_helpers()
    [collision] = predict_collisions(plan, shop)
    tasks_before = [t.to_dict() for t in plan.tasks]
    effect = collision.parallel(plan)
    assert [t.to_dict() for t in plan.tasks] == tasks_before and not plan.graph.edges
    assert merge_reviews(plan) == [{"tasks": ["auth", "helpers"], "files": ["utils.py"], "choice": "parallel"}]
    assert effect.critical_path_before == effect.critical_path_after == 1
    assert predict_collisions(plan, shop) == []
    again = Plan.from_dict(plan.to_dict())
    assert merge_reviews(again) == merge_reviews(plan)
    assert predict_collisions(again, shop) == []


def test_options_preview_every_choice_without_changing_the_plan(shop):
    plan = auth_and_helpers()
    [collision] = predict_collisions(plan, shop)
    before = plan.to_dict()
    options = collision.options(plan)
    assert [o.label for o in options] == ["Serialize: Auth Module first", "Serialize: API Helpers first",
                                          "Split the file", "Proceed in parallel, review merge"]
    assert [str(o.choice) for o in options] == ["serialize (auth first)", "serialize (helpers first)",
                                                "split", "parallel"]
    assert options[0].effect.to_dict()["growth"] == 1.0
    assert plan.to_dict() == before


def test_policy_serializes_when_cheap_and_runs_in_parallel_when_not(shop):
    plan = Plan([Task("long", "Long Work", "code", "x", estimate_hours=10),
                 Task("auth", "Auth Module", "code", "Build token issuing in the auth package",
                      depends_on=["long"], estimate_hours=1),
                 Task("helpers", "API Helpers", "code", "Add pagination to api/helpers.py",
                      depends_on=["long"], estimate_hours=1)])
    [collision] = predict_collisions(plan, shop)
    choice, reason = choose_by_policy(collision, plan)
    assert choice == Choice("serialize", "auth")        # 11 -> 12 hours either way: the first order
    assert "critical path 11 -> 12 hours (+9%, under the 25% limit)" in reason
    choice, reason = choose_by_policy(collision, plan, max_critical_path_growth=0.05)
    assert choice == Choice("parallel") and "by 9%" in reason and "over the 5% limit" in reason
    collision.apply(plan, choice)
    assert merge_reviews(plan) and not plan.ordered("auth", "helpers")


def test_policy_takes_the_order_that_costs_nothing(shop):
    plan = Plan([Task("long", "Long Work", "code", "x", estimate_hours=10),
                 Task("auth", "Auth Module", "code", "Build token issuing in the auth package",
                      depends_on=["long"], estimate_hours=1),
                 Task("helpers", "API Helpers", "code", "Add pagination to api/helpers.py", estimate_hours=1)])
    [collision] = predict_collisions(plan, shop)
    choice, reason = choose_by_policy(collision, plan)
    assert choice == Choice("serialize", "helpers") and "+0%" in reason
    collision.apply(plan, choice)
    assert plan["auth"].depends_on == ["long", "helpers"] and plan.critical_path_length() == 11


def test_precision_and_recall_on_a_run_with_a_known_overlap(shop):
    """Three tasks really change files on their branches; the prediction is scored against git."""
    plan = Plan([Task("auth", "Auth Module", "code", "Build token issuing in the auth package"),
                 Task("helpers", "API Helpers", "code", "Add pagination helpers to api/helpers.py",
                      writes=["api/helpers.py", "utils.py", "settings.py"]),
                 Task("config", "Config", "code", "Add settings", writes=["settings.py"])])
    predicted = predict_collisions(plan, shop)
    assert {(c.task_a, c.task_b, tuple(c.files)) for c in predicted} == {
        ("auth", "helpers", ("utils.py",)), ("helpers", "config", ("settings.py",))}
    work = {"auth": {"auth/tokens.py": "x = 1\n", "utils.py": "A = 1\n", "README.md": "# auth\n"},
            "helpers": {"api/helpers.py": "y = 1\n", "utils.py": "B = 1\n"},
            "config": {"settings.py": "DEBUG = False\n", "README.md": "# config\n"}}
    changed = {}
    for task_id, files in work.items():
        git(shop, "switch", "-q", "-c", task_id, "main")
        write(shop, files)
        git(shop, "add", ".")
        git(shop, "commit", "-q", "-m", task_id)
        changed[task_id] = git(shop, "diff", "--name-only", "main...HEAD").split()
    precision, recall, details = score_predictions(predicted, changed, plan)
    # utils.py (auth + helpers) was predicted and real; settings.py (helpers + config) was predicted but
    # only config wrote it; README.md (auth + config) was real but not predicted
    assert (precision, recall) == (0.5, 0.5)
    assert sorted((d["task_a"], d["task_b"], d["file"], d["predicted"], d["actual"]) for d in details) == [
        ("auth", "config", "README.md", False, True),
        ("auth", "helpers", "utils.py", True, True),
        ("config", "helpers", "settings.py", True, False)]


def test_scoring_edge_cases():
    glob = Collision("a", "b", ["docs/**"], {})
    assert score_predictions([glob], {"a": ["docs/x.md"], "b": ["docs/x.md", "y.py"]})[:2] == (1.0, 1.0)
    assert score_predictions([], {"a": ["x"], "b": ["y"]})[:2] == (1.0, 1.0)
    assert score_predictions([], {"a": ["x"], "b": ["x"]})[:2] == (1.0, 0.0)
    ordered = Plan([Task("a", "A"), Task("b", "B", depends_on=["a"])])
    assert score_predictions([], {"a": ["x"], "b": ["x"]}, ordered)[:2] == (1.0, 1.0)


def test_a_plans_writes_overrule_guesses_from_folder_names(tmp_path):
    shop = make_repo(tmp_path / "store", {"shop/__init__.py": "", "shop/cart.py": "class Cart:\n    pass\n",
                                          "shop/pricing.py": "def price():\n    return 1\n"})
    plan = Plan([Task("bulk", "Bulk Discounts", "code", "Add bulk discounts to the shop's pricing",
                      writes=["shop/pricing.py"]),
                 Task("wrap", "Gift Wrap", "code", "Add a gift wrap option to the Cart")])
    assert predict_collisions(plan, shop) == []           # before: 'may both modify shop/cart.py'
    plan["bulk"].writes = []                              # without the plan's word, the guesses stand
    [collision] = predict_collisions(plan, shop)
    assert "shop/cart.py" in collision.files
    assert "Bulk Discounts mentions 'shop', the folder's name" in collision.evidence["shop/cart.py"]


def test_naming_a_file_is_not_a_mention_of_its_folder_and_plurals_fold(shop):
    index = RepoIndex.build(shop)
    from osqr_nb.plan.collisions import footprint
    named = footprint(Task("t", "T", "code", "Change auth/tokens.py"), index)
    assert list(named) == ["auth/tokens.py"]
    plural = footprint(Task("t", "T", "code", "Add a token cache"), index)
    assert "auth/tokens.py" in plural


def test_a_split_file_is_named_for_each_tasks_area_never_after_itself(tmp_path):
    plan = Plan([Task("cart", "Cart Totals", "code", writes=["shop/cart.py"]),
                 Task("codes", "Discount Codes in the Cart", "code", writes=["shop/cart.py"])])
    [collision] = predict_collisions(plan, None)
    collision.split(plan)
    assert plan["cart"].writes == ["shop/totals_cart.py"] and plan["codes"].writes == ["shop/discount_cart.py"]
    same = Plan([Task("a", "Auth Login", "code", writes=["docs/**"]), Task("b", "Auth Logout", "code",
                                                                              writes=["docs/**"])])
    [collision] = predict_collisions(same, None)
    collision.split(same)
    assert same["a"].writes == ["docs/auth/"] and same["b"].writes == ["docs/logout/"]


def test_no_repository_uses_only_the_planners_files():
    plan = Plan([Task("a", "A", writes=["x.py"]), Task("b", "B", writes=["x.py"])])
    assert [c.files for c in predict_collisions(plan, None)] == [["x.py"]]


def test_the_pattern_reading_of_a_module_finds_what_ast_finds():
    """The index reads modules by patterns (6x faster than ast); on real code and on the
    tricky cases (strings that look like code, continuations, annotated names) it must agree."""
    from osqr_nb.plan.collisions import _python_facts, _python_facts_by_ast
    tricky = '''"""Docs.
import not_a_module
def not_a_function(): pass
"""
import os, sys as system
from . import sibling
from ..pkg.mod import (alpha,
    beta as b,  # a comment: import gamma
)
from x import y, \\
    z
x = y = 1
total: int = 0
count: int
if x == 1:
    import inside
    w = 2
s = 'from fake import nothing'
class Shape(Base):
    import nested
async def go(): pass
'''
    sources = [tricky] + [p.read_text() for p in (Path(__file__).parents[1] / "osqr_nb").rglob("*.py")]
    for source in sources:
        defined, imports = _python_facts(source)
        want_defined, want_imports = _python_facts_by_ast(source)
        assert defined == want_defined
        assert sorted(imports) == sorted(want_imports)
