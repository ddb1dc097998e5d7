"""Clean merges made ahead while a run goes on are the very merges the integration makes:
same commits, same order, and a conflict still left to the integration and its resolvers."""

import asyncio

from osqr_nb.workspace.merge import Integrator

from conftest import git, make_repo, run_async


def branch(repo, name, path, text, base="main"):
    git(repo, "checkout", "-q", "-b", name, base)
    (repo / path).write_text(text)
    git(repo, "add", path)
    git(repo, "commit", "-q", "-m", name)
    git(repo, "checkout", "-q", "main")


def test_merges_made_ahead_are_the_integrations_and_a_conflict_stays_for_it(tmp_path):
    repo = make_repo(tmp_path / "repo")
    base = git(repo, "rev-parse", "HEAD").strip()
    branch(repo, "b1", "one.txt", "1\n")
    branch(repo, "b2", "two.txt", "2\n")
    branch(repo, "b3", "README.md", "# demo app, by b3\n")
    branch(repo, "b4", "README.md", "# demo app, by b4\n")
    order = [("t1", "b1", ["one.txt"]), ("t2", "b2", ["two.txt"]), ("t3", "b3", ["README.md"]),
             ("t4", "b4", ["README.md"])]

    async def main():
        ahead = Integrator(repo, "run1", base, repo / ".osqr" / "worktrees" / "run1" / "_integration")
        went = [await ahead.merge_ahead(*step) for step in order]
        premerged = dict(ahead.premerged)
        final = Integrator(repo, "run1", base, repo / ".osqr" / "worktrees" / "run1" / "_integration")
        final.premerged = premerged
        result = await final.integrate(order)
        alone = Integrator(repo, "run2", base, repo / ".osqr" / "worktrees" / "run2" / "_integration")
        plain = await alone.integrate(order)
        return went, premerged, result, plain

    went, premerged, result, plain = run_async(main())
    assert went == [True, True, True, False]          # t4 conflicts with t3: left to the integration
    assert len(premerged) == 3
    chain = git(repo, "rev-list", "--first-parent", result.head).split()
    assert all(commit in chain for commit in premerged.values())    # the very commits made ahead
    assert result.merged == plain.merged == ["t1", "t2", "t3"]
    assert git(repo, "log", "-1", "--format=%s", premerged[(base, "t1")]).strip() == "osqr: merge t1"
    assert [c.file for c in result.conflicts] == [c.file for c in plain.conflicts] == ["README.md"]
    assert git(repo, "rev-parse", f"{result.head}^{{tree}}") == git(repo, "rev-parse", f"{plain.head}^{{tree}}")


def test_the_integration_takes_the_merge_made_ahead_rather_than_merging_again(tmp_path):
    repo = make_repo(tmp_path / "repo")
    base = git(repo, "rev-parse", "HEAD").strip()
    branch(repo, "b1", "one.txt", "1\n")
    tree = git(repo, "rev-parse", "b1^{tree}").strip()
    ahead = git(repo, "commit-tree", tree, "-p", base, "-p", "b1", "-m", "made ahead").strip()

    async def main():
        final = Integrator(repo, "run1", base, repo / ".osqr" / "worktrees" / "run1" / "_integration")
        final.premerged = {(base, "t1"): ahead}
        return await final.integrate([("t1", "b1", ["one.txt"])])

    assert run_async(main()).head == ahead
