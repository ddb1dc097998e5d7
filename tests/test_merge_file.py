"""`python -m osqr_nb merge-file`: git merge-file's arguments and exit codes, then the semantic merge."""

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from osqr_nb.__main__ import main

CORPUS = Path(__file__).resolve().parent.parent / "benchmarks" / "merge_cases"


def copy_case(case: str, into: Path) -> tuple[str, str, str]:
    """OURS BASE THEIRS, in git merge-file's order, as copies that the merge may overwrite."""
    for role in ("base", "ours", "theirs"):
        shutil.copy(CORPUS / case / f"{role}.py", into / f"{role}.py")
    return str(into / "ours.py"), str(into / "base.py"), str(into / "theirs.py")


def git_merge_file(ours: str, base: str, theirs: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "merge-file", "-p", ours, base, theirs], capture_output=True, text=True)


def test_clean_case_exits_0_like_git(tmp_path):
    ours, base, theirs = copy_case("decorator_elsewhere", tmp_path)
    git = git_merge_file(ours, base, theirs)
    assert git.returncode == 0
    assert main(["merge-file", ours, base, theirs]) == 0
    assert Path(ours).read_text() == git.stdout == (CORPUS / "decorator_elsewhere" / "expected.py").read_text()


def test_true_conflict_exits_1_with_git_markers(tmp_path, capsys):
    ours, base, theirs = copy_case("both_change_body", tmp_path)
    git = git_merge_file(ours, base, theirs)
    assert git.returncode == 1
    assert main(["merge-file", ours, base, theirs]) == 1
    merged = Path(ours).read_text()
    assert merged == git.stdout and "<<<<<<< " in merged and ">>>>>>> " in merged
    assert "normalize" in capsys.readouterr().err


def test_missing_file_is_an_error_with_a_clear_message(tmp_path):
    ours, base, theirs = copy_case("both_change_body", tmp_path)
    missing = str(tmp_path / "nope.py")
    git = subprocess.run(["git", "merge-file", ours, missing, theirs], capture_output=True)
    done = subprocess.run([sys.executable, "-m", "osqr_nb", "merge-file", ours, missing, theirs],
                          capture_output=True, text=True)
    assert git.returncode not in (0, 1) and done.returncode not in (0, 1)
    assert "cannot read BASE" in done.stderr and "nope.py" in done.stderr
    assert Path(ours).read_text() == (CORPUS / "both_change_body" / "ours.py").read_text()


def test_semantic_merge_resolves_what_git_cannot(tmp_path):
    ours, base, theirs = copy_case("add_functions_same_place", tmp_path)
    assert git_merge_file(ours, base, theirs).returncode == 1
    assert main(["merge-file", ours, base, theirs]) == 0
    merged = Path(ours).read_text()
    assert "def validate_token(" in merged and "def format_response(" in merged and "<<<<<<<" not in merged


def test_clean_text_merge_that_loses_a_name_is_a_conflict(tmp_path):
    ours, base, theirs = copy_case("remove_import_vs_use", tmp_path)
    assert git_merge_file(ours, base, theirs).returncode == 0   # git merges it, silently wrong
    assert main(["merge-file", "-q", ours, base, theirs]) == 1
    merged = Path(ours).read_text()
    assert merged.startswith("<<<<<<< ") and "=======\n" in merged


def test_stdout_and_output_leave_ours_alone(tmp_path, capsysbinary):
    ours, base, theirs = copy_case("add_functions_same_place", tmp_path)
    before = Path(ours).read_bytes()
    assert main(["merge-file", "-p", ours, base, theirs]) == 0
    assert b"def format_response(" in capsysbinary.readouterr().out
    out = tmp_path / "out.py"
    assert main(["merge-file", ours, base, theirs, "-o", str(out)]) == 0
    assert Path(ours).read_bytes() == before and b"def validate_token(" in out.read_bytes()


def test_files_that_are_not_python_get_git_alone(tmp_path):
    for role, text in (("base", "a\nb\n"), ("ours", "a\nB\n"), ("theirs", "a\nC\n")):
        (tmp_path / f"{role}.txt").write_text(text)
    paths = [str(tmp_path / f"{role}.txt") for role in ("ours", "base", "theirs")]
    git = git_merge_file(*paths)
    assert main(["merge-file", "-q", *paths]) == 1
    assert Path(paths[0]).read_text() == git.stdout


def test_versions_both_raised_merge_to_the_higher(tmp_path, capsys):
    """A maintenance branch merged forward: git conflicts on the version line, merge-file keeps
    the higher number and says so; the other changes merge as git merges them."""
    base = '__version__ = "1.4.2"\n\n\ndef a():\n    return 1\n\n\ndef b():\n    return 2\n'
    texts = {"base": base, "ours": base.replace("1.4.2", "1.5.0.dev0").replace("return 1", "return 10"),
             "theirs": base.replace("1.4.2", "1.4.3").replace("return 2", "return 20")}
    for role, text in texts.items():
        (tmp_path / f"{role}.py").write_text(text)
    paths = [str(tmp_path / f"{role}.py") for role in ("ours", "base", "theirs")]
    assert git_merge_file(*paths).returncode == 1
    assert main(["merge-file", *paths]) == 0
    assert Path(paths[0]).read_text() == base.replace("1.4.2", "1.5.0.dev0").replace(
        "return 1", "return 10").replace("return 2", "return 20")
    assert "keeps the higher, 1.5.0.dev0" in capsys.readouterr().err


def commit_all(repo: Path, message: str) -> None:
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-qm", message],
                   cwd=repo, check=True)


def test_as_a_git_merge_driver(tmp_path):
    """git hands the driver temporary copies (%A ours, %O base, %B theirs); the result goes to %A."""
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    driver = f"{shlex.quote(sys.executable)} -m osqr_nb merge-file %A %O %B"
    subprocess.run(["git", "config", "merge.osqr.driver", driver], cwd=repo, check=True)
    (repo / ".gitattributes").write_text("*.py merge=osqr\n")
    case = CORPUS / "add_functions_same_place"
    shutil.copy(case / "base.py", repo / "utils.py")
    commit_all(repo, "base")
    for branch, role in (("auth", "ours"), ("docs", "theirs")):
        subprocess.run(["git", "checkout", "-qb", branch, "main"], cwd=repo, check=True)
        shutil.copy(case / f"{role}.py", repo / "utils.py")
        commit_all(repo, branch)
    subprocess.run(["git", "checkout", "-q", "auth"], cwd=repo, check=True)
    done = subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@example.com", "merge", "-q",
                           "--no-edit", "docs"], cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (repo / "utils.py").read_text() == (case / "expected.py").read_text()
