"""The merge benchmark's scoring: the README's figures rest on how it tells outcomes apart."""

import pytest

from osqr_nb.workspace.semantic import RULES

from conftest import git, load_benchmark

corpus = load_benchmark("merge_corpus")

BASE = b"def a():\n    return 1\n\n\ndef b():\n    return 2\n"
OURS = BASE.replace(b"return 1", b"return 10")
THEIRS = BASE.replace(b"return 1", b"return 11")


def case(truth: bytes | None, ours: bytes = OURS, theirs: bytes = THEIRS) -> "corpus.Case":
    return corpus.Case("c", BASE, ours, theirs, truth)


@pytest.mark.parametrize("truth, reachable", [
    (OURS, True), (THEIRS, True),
    (BASE.replace(b"return 1", b"return 10\n    return 11"), True),       # both sides, in order
    (BASE.replace(b"return 1", b"return 12"), False),                     # neither side's line
    (OURS.replace(b"return 2", b"return 3"), False),                      # an edit outside the conflict
])
def test_choice_of_sides_tells_a_persons_own_edit(truth, reachable):
    assert corpus._choice_of_sides(case(truth)) is reachable


def test_same_code_in_another_order_is_told_apart():
    swapped = b"def b():\n    return 2\n\n\ndef a():\n    return 1\n"
    assert corpus._equivalent(swapped, BASE)
    assert corpus._equivalent(b"from x import b, a\n", b"from x import a, b\n")
    assert not corpus._equivalent(OURS, BASE)


def test_scores_name_each_outcome():
    git = ["git", "merge-file", "-q"]
    assert corpus.score("git", git, case(OURS)).outcome == "conflict"
    assert corpus.score("git", git, case(None)).outcome == "correct"        # a true conflict, admitted
    clean = corpus.Case("c", BASE, OURS, BASE.replace(b"return 2", b"return 20"), OURS.replace(b"return 2", b"return 20"))
    assert corpus.score("git", git, clean).outcome == "correct"
    wrong = corpus.Case("c", BASE, OURS, BASE.replace(b"return 2", b"return 20"), OURS.replace(b"return 2", b"return 3"))
    scored = corpus.score("git", git, wrong)
    assert scored.outcome == "wrong silent" and scored.beyond_sides and not scored.equivalent


def test_mines_merge_commits_of_a_real_repository(tmp_path):
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "m.py").write_bytes(BASE)
    git(tmp_path, "add", "m.py")
    git(tmp_path, "commit", "-qm", "base")
    git(tmp_path, "checkout", "-qb", "side")
    (tmp_path / "m.py").write_bytes(BASE.replace(b"return 2", b"return 20"))
    git(tmp_path, "commit", "-qam", "side")
    git(tmp_path, "checkout", "-q", "main")
    (tmp_path / "m.py").write_bytes(OURS)
    git(tmp_path, "commit", "-qam", "main")
    git(tmp_path, "merge", "-q", "--no-edit", "side")
    [mined] = corpus.mine(tmp_path, None)
    assert mined.name.endswith(":m.py") and mined.name.startswith(tmp_path.name + ":")
    assert (mined.base, mined.ours) == (BASE, OURS) and b"return 20" in mined.theirs
    assert mined.truth == OURS.replace(b"return 2", b"return 20")


def test_layout_is_scored_apart_from_code():
    """A result that differs from the truth only in blank lines and wrapping is wrong silent as
    exact text and correct with layout ignored; the parts follow what git does with the case."""
    git = ["git", "merge-file", "-q"]
    theirs = BASE.replace(b"return 2", b"return 20")
    spaced = OURS.replace(b"return 2", b"return 20").replace(b"\n\n\n", b"\n\n\n\n")
    scored = corpus.score("git", git, corpus.Case("c", BASE, OURS, theirs, spaced))
    assert (scored.outcome, scored.ast_outcome) == ("wrong silent", "correct")
    assert corpus.git_part(corpus.Case("c", BASE, OURS, theirs, spaced)) == "git clean, right"
    assert corpus.git_part(case(OURS)) == "git conflicts"
    assert corpus.git_part(corpus.Case("c", BASE, OURS, theirs, None)) == "git clean, wrong"


def test_table_shows_both_tools_on_each_part_and_the_rules_are_counted():
    git = ["git", "merge-file", "-q"]
    cases = [corpus.Case("merge", BASE, OURS, THEIRS, OURS), corpus.Case("true conflict", BASE, OURS, THEIRS, None)]
    scores = [corpus.score(tool, git, c) for c in cases for tool in ("a", "b")]
    printed = corpus.table(scores, ["a", "b"], cases, "mined")
    assert "| mined, all (2) | a | 1 (50.0%) | 1 (50.0%) | 1 |" in printed
    assert "| mined: git conflicts (2) | a |" in printed and "|  | b |" in printed
    ours = {c.name: c for c in corpus.load_corpus(corpus.DEFAULT_CORPUS)}
    counted = corpus.rule_counts([ours["sorted_imports_both_add"], ours["trap_same_name_elsewhere"]])
    assert counted[RULES["imports"]] == 1 and counted[corpus.CHECKS["defines"]] == 1
