import pytest

from osqr_nb import Plan, PlanError, Task, TaskKind
from osqr_nb.plan.decompose import OfflinePlanner, split_clauses

from conftest import SEED_REQUEST


def test_offline_planner_gives_the_seed_graph():
    plan = OfflinePlanner().plan(SEED_REQUEST)
    assert [t.title for t in plan.tasks] == ["DB Schema", "Auth Module", "API Docs"]
    assert set(plan.graph.edges) == {("db-schema", "auth-module"), ("auth-module", "api-docs")}
    assert plan["api-docs"].kind is TaskKind.DOCS
    assert plan.critical_path() == ["db-schema", "auth-module", "api-docs"]


def test_offline_planner_reads_list_items_and_orders_code_before_tests():
    plan = OfflinePlanner().plan("- add a login page\n- add a signup page\n- write tests for login")
    assert len(plan) == 3
    tests = next(t for t in plan.tasks if t.kind is TaskKind.TESTS)
    assert tests.depends_on == ["login-page"]         # the tests of the login page wait for it alone
    # the two pages do not depend on each other: they can run in parallel
    assert not plan["login-page"].depends_on and not plan["signup-page"].depends_on


def shape(plan):
    return [(t.title, t.kind.value, t.depends_on, t.writes) for t in plan.tasks]


def test_pronouns_tie_tests_and_docs_to_the_code_and_readme_means_readme_md():
    plan = OfflinePlanner().plan("Add discount codes to the cart, write tests for them, and document them "
                                 "in the README")
    assert shape(plan) == [
        ("Discount Codes in the Cart", "code", [], []),
        ("Tests for Discount Codes", "tests", ["discount-codes-in-the-cart"], ["tests/**"]),
        ("Discount Codes in the README", "docs", ["discount-codes-in-the-cart"], ["README.md"])]
    assert "About Discount Codes in the Cart" in plan["tests-for-discount-codes"].description


def test_sentences_are_split_and_lists_of_things_to_build_become_tasks():
    plan = OfflinePlanner().plan("Create a login page with email validation. Also add rate limiting to the API.")
    assert shape(plan) == [("Login Page with Email Validation", "code", [], []),
                           ("Rate Limiting in the API", "code", [], [])]
    plan = OfflinePlanner().plan("Add a JSON exporter and a YAML exporter")
    assert shape(plan) == [("JSON Exporter", "code", [], []), ("YAML Exporter", "code", [], [])]
    plan = OfflinePlanner().plan("Add a health check endpoint, a metrics endpoint and a readiness endpoint "
                                 "to the API")
    assert [t.title for t in plan.tasks] == ["Health Check Endpoint in the API", "Metrics Endpoint in the API",
                                             "Readiness Endpoint in the API"]
    # a list that is one thing stays one task
    assert len(OfflinePlanner().plan("Add OAuth login with GitHub and Google")) == 1


def test_a_migration_goes_before_the_code_that_uses_it_and_named_files_are_written():
    plan = OfflinePlanner().plan("Migrate the user table to UUID keys and update every query in models.py "
                                 "and views.py")
    assert shape(plan) == [
        ("Migrate User Table to UUID Keys", "refactor", [], []),
        ("Query in models.py and views.py", "code", ["migrate-user-table-to-uuid"], ["models.py", "views.py"])]


@pytest.mark.parametrize("request_text, kind", [
    ("Document the retry policy", "docs"), ("Describe the cache in docs/cache.md", "docs"),
    ("Explain the scheduler", "docs"), ("Test the parser", "tests"), ("Cover paginate() with tests", "tests"),
    ("Fix the login redirect", "quick_fix"), ("Bump requests to 2.32", "quick_fix"),
    ("Migrate the orders table", "refactor"), ("Rename get_user to fetch_user", "refactor"),
    ("Move the settings to config.py", "refactor"), ("Design the plugin API", "architecture"),
    ("Choose a queue", "architecture"), ("Review the auth module", "review"),
    ("Add unit tests for the cart", "tests"), ("Update the README", "docs"), ("Add a cart", "code")])
def test_the_kind_comes_from_the_verb_and_then_the_object(request_text, kind):
    assert OfflinePlanner().plan(request_text).tasks[0].kind.value == kind


def test_titles_drop_filler_and_never_end_on_a_small_word():
    plan = OfflinePlanner().plan("Set up GitHub Actions CI that runs pytest and ruff on every push to main")
    assert [t.title for t in plan.tasks] == ["GitHub Actions CI"]
    title = OfflinePlanner().plan("Add a very long feature name that goes on and on for the whole of the line"
                                  ).tasks[0].title
    assert title.split()[-1].lower() not in {"the", "a", "of", "for", "to", "and"}


def test_tasks_naming_the_same_file_run_one_after_the_other_and_then_orders():
    plan = OfflinePlanner().plan("Add a retry decorator to utils.py; add type hints to utils.py")
    assert plan.tasks[1].depends_on == [plan.tasks[0].id]
    plan = OfflinePlanner().plan("Refactor search.py to use the query builder, then add full-text search")
    assert plan.tasks[1].depends_on == [plan.tasks[0].id]


def test_bare_file_names_are_the_repositorys_files(tmp_path):
    from conftest import git
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "models.py").write_text("x = 1\n")
    (tmp_path / "README.rst").write_text("x\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    plan = OfflinePlanner().plan("Add a slug field in models.py and document it in the README", str(tmp_path))
    assert [t.writes for t in plan.tasks] == [["app/models.py"], ["README.rst"]]


def test_split_clauses_on_commas_semicolons_and_verbs():
    assert split_clauses("Add caching and update docs; then review everything") == [
        "Add caching", "update docs", "review everything"]
    assert split_clauses("Add import and export buttons, e.g. for CSV. Then test the parser") == [
        "Add import and export buttons, e.g. for CSV", "test the parser"]


@pytest.mark.parametrize("request_text", ["", "   \n  "])
def test_empty_request_is_refused(request_text):
    with pytest.raises(PlanError, match="request is empty"):
        OfflinePlanner().plan(request_text)


def test_cycle_is_refused_with_the_cycle_shown():
    with pytest.raises(PlanError, match="cycle: .*a -> b|cycle: .*b -> a"):
        Plan([Task("a", "A", depends_on=["b"]), Task("b", "B", depends_on=["a"])])


def test_unknown_dependency_is_named():
    with pytest.raises(PlanError, match="'a' depends on 'ghost', which is not in the plan"):
        Plan([Task("a", "A", depends_on=["ghost"])])


def test_duplicate_and_unusable_ids_and_unknown_kinds():
    with pytest.raises(PlanError, match="unique"):
        Plan([Task("a", "A"), Task("a", "B")])
    with pytest.raises(PlanError, match="branch name"):
        Plan([Task("Has Spaces", "A")])
    with pytest.raises(PlanError, match="unknown kind 'poetry'"):
        Task("a", "A", kind="poetry")
    with pytest.raises(PlanError, match="no tasks"):
        Plan([])


def test_plan_round_trips_through_a_dict():
    plan = OfflinePlanner().plan(SEED_REQUEST)
    again = Plan.from_dict(plan.to_dict())
    assert [t.to_dict() for t in again.tasks] == [t.to_dict() for t in plan.tasks]
