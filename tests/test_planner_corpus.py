"""The offline planner on the hand-written corpus (benchmarks/planner_corpus.md), and what the
benchmark's scoring rests on. The figures against the committed planner are printed by
`python benchmarks/planner_corpus.py`; here, floors the planner must keep."""

from __future__ import annotations

import pytest

from osqr_nb.plan.collisions import RepoIndex, predict_collisions
from osqr_nb.plan.decompose import OfflinePlanner
from osqr_nb.plan.task import Plan, Task

from conftest import load_benchmark

corpus = load_benchmark("planner_corpus")


@pytest.fixture(scope="module")
def entries():
    return corpus.load_corpus()


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    return corpus.make_repo(tmp_path_factory.mktemp("corpus"))


def test_the_corpus_has_fifty_requests_each_with_a_valid_plan_and_its_truth(entries):
    assert len(entries) >= 50 and len({e.name for e in entries}) == len(entries)
    for entry in entries:
        assert entry.request and len(entry.plan) >= 1
        assert set(entry.changes) == {t.id for t in entry.plan.tasks}


def test_matching_pairs_tasks_by_title_words_and_scores_what_differs():
    expected = Plan([Task("a", "Discount Codes in the Cart", "code"),
                     Task("b", "Tests for Discount Codes", "tests", depends_on=["a"], writes=["tests/**"])])
    predicted = Plan([Task("x", "Tests for discount code", "tests", writes=["tests/**"]),
                      Task("y", "Discount codes", "docs")])
    assert corpus.match(expected, predicted) == {"a": "y", "b": "x"}
    tally = corpus.Tally()
    notes = tally.add(corpus.Entry("e", "r", expected), predicted)
    assert tally.kinds == 1 and tally.order_true == 1 and tally.order_hit == 0 and tally.writes_hit == 1
    assert "a: kind docs, not code" in notes and tally.whole == 0
    assert corpus.title_f1("Tests for Discount Codes", "Tests for discount code") == 1.0


def test_the_planner_keeps_its_figures_on_the_corpus(entries, shop):
    tally = corpus.score_planner(entries, OfflinePlanner(), shop)
    assert tally.right_count / tally.requests >= 0.9
    assert tally.kinds / tally.expected >= 0.9
    assert tally.title / tally.expected >= 0.85
    assert tally.order_hit / tally.order_pred >= 0.9 and tally.order_hit / tally.order_true >= 0.85
    assert tally.writes_hit / tally.writes_pred >= 0.9 and tally.writes_hit / tally.writes_true >= 0.9
    assert tally.whole / tally.requests >= 0.8


def test_no_collision_warning_contradicts_the_files_a_careful_plan_declares(entries, shop):
    index = RepoIndex.build(shop)
    for entry in entries:
        for collision in predict_collisions(entry.plan, shop, index=index):
            a, b = entry.plan[collision.task_a], entry.plan[collision.task_b]
            if a.writes and b.writes:
                assert set(collision.files) <= set(a.writes) | set(b.writes), entry.name


def test_the_baseline_planner_loads_beside_todays():
    old = corpus.committed_module("osqr_nb/plan/decompose.py", "_decompose_head_test")
    plan = old.OfflinePlanner().plan("Build the auth module, update the API docs, and refactor the database "
                                     "schema")
    assert [t.title for t in plan.tasks] == ["DB Schema", "Auth Module", "API Docs"]
