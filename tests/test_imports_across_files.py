"""A clean merge across files must not leave an import pointing at a name the other side removed."""

import osqr_nb
from osqr_nb import Plan, Task
from osqr_nb.workspace.imports import broken_imports, wanted_paths

from conftest import git, load_benchmark, run_async
from test_run_git import ListModel, finish

UTILS = "def helper():\n    return 1\n"
RENAMED = "def make_helper():\n    return 1\n"
API = "from pkg.utils import helper\n\n\ndef get():\n    return helper()\n"


def test_a_new_import_of_a_renamed_name_is_broken():
    base = {"pkg/__init__.py": "", "pkg/utils.py": UTILS, "pkg/api.py": None}
    ours = {**base, "pkg/utils.py": RENAMED}                     # renames helper
    theirs = {**base, "pkg/api.py": API}                         # imports it
    merged = {**base, "pkg/utils.py": RENAMED, "pkg/api.py": API}
    assert "pkg/utils.py" in wanted_paths("pkg/api.py", API)
    (broken,) = broken_imports(["pkg/api.py", "pkg/utils.py"], merged, [ours, theirs])
    assert (broken.file, broken.line, broken.name) == ("pkg/api.py", 1, "helper")
    assert broken.describe() == "pkg/api.py line 1 imports 'helper' from pkg.utils, but pkg/utils.py no longer defines it"


def test_relative_imports_submodules_and_removed_modules():
    relative = "from .utils import helper\nfrom . import utils\n"
    base = {"pkg/__init__.py": "", "pkg/utils.py": UTILS, "pkg/api.py": relative}
    assert broken_imports(["pkg/api.py"], base, [base, base]) == []
    gone = {**base, "pkg/utils.py": None}
    problems = broken_imports(["pkg/api.py"], gone, [base, base])
    assert [p.describe() for p in problems][0].endswith("but .utils no longer exists")


def test_what_cannot_be_judged_is_left_alone():
    side = {"app.py": "from requests import get\nfrom lazy import thing\n",
            "lazy.py": "def __getattr__(name):\n    return name\n"}
    assert broken_imports(["app.py"], {**side, "lazy.py": "x = 1\n"}, [side]) == []   # lazy: unknowable
    starry = {"a.py": "from b import f\n", "b.py": "from c import *\n"}
    assert broken_imports(["a.py"], starry, [starry]) == []
    own_bug = {"a.py": "from b import nope\n", "b.py": "x = 1\n"}   # broken in the side itself
    assert broken_imports(["a.py"], own_bug, [own_bug]) == []
    optional = {"a.py": "try:\n    from b import f\nexcept ImportError:\n    f = None\n", "b.py": "def f():\n    pass\n"}
    assert broken_imports(["a.py"], {**optional, "b.py": None}, [optional]) == []   # allowed to fail


def rename_and_import(repo, utils=UTILS, renamed=RENAMED, api=API):
    """A run of two tasks: one renames `helper` in pkg/utils.py, the other imports it in pkg/api.py."""
    (repo / "pkg").mkdir()
    (repo / "pkg" / "__init__.py").write_text("")
    (repo / "pkg" / "utils.py").write_text(utils)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "pkg")
    scripts = {
        "rename": [("write_file", {"path": "pkg/utils.py", "content": renamed}), finish()],
        "api": [("write_file", {"path": "pkg/api.py", "content": api}), finish()]}

    async def main():
        run = osqr_nb.start(plan=Plan([Task("rename", "Rename helper"), Task("api", "API module")]),
                            repo=repo, tier=4, model=ListModel(scripts))
        await run
        return run
    return run_async(main())


def test_a_run_whose_tasks_break_an_import_between_files_does_not_merge_clean(repo):
    run = rename_and_import(repo)
    assert run.status == "conflicts"                        # git alone merges both branches cleanly
    (conflict,) = run.integration["conflicts"]
    assert conflict["file"] == "pkg/api.py"
    assert "imports 'helper' from pkg.utils, but pkg/utils.py no longer defines it" in conflict["reason"]
    assert "helper" in git(repo, "show", f"osqr/{run.id}/api:pkg/api.py")   # both branches stay
    assert "make_helper" in git(repo, "show", f"osqr/{run.id}/rename:pkg/utils.py")


def test_the_import_benchmark_catches_what_git_merged_and_the_person_mended(tmp_path):
    """History where one branch renamed helper and the other imported it: git's merge is clean
    and broken, the person's merge mended the import; the person's merge raises no alarm."""
    bench = load_benchmark("import_check")
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "utils.py").write_text(UTILS)
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "base")
    git(tmp_path, "checkout", "-qb", "api")
    (tmp_path / "pkg" / "api.py").write_text(API)
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "api")
    git(tmp_path, "checkout", "-q", "main")
    (tmp_path / "pkg" / "utils.py").write_text(RENAMED)
    git(tmp_path, "commit", "-qam", "rename")
    git(tmp_path, "merge", "-q", "--no-commit", "api")
    (tmp_path / "pkg" / "api.py").write_text(API.replace("helper", "make_helper"))
    git(tmp_path, "commit", "-qam", "merge api, mended")
    counts = bench.check(tmp_path, None, verbose=False)
    assert counts == {"merges": 1, "checked": 1, "alarms": 0, "git clean": 1, "caught": 1}
