"""The Python-aware merge, driven by the committed corpus in benchmarks/merge_cases."""

import ast
import re
from pathlib import Path

import pytest

from osqr_nb.workspace.semantic import RULES, check_merged, semantic_merge

CORPUS = Path(__file__).resolve().parent.parent / "benchmarks" / "merge_cases"
MERGEABLE = sorted(p.name for p in CORPUS.iterdir() if (p / "expected.py").exists())
CONFLICTS = sorted(p.name for p in CORPUS.iterdir() if (p / "conflict").exists())


def versions(case: str) -> list[str]:
    return [(CORPUS / case / f"{role}.py").read_text() for role in ("base", "ours", "theirs")]


def test_corpus_holds_both_kinds_of_case():
    assert len(MERGEABLE) >= 12 and len(CONFLICTS) >= 8
    assert not set(MERGEABLE) & set(CONFLICTS)


@pytest.mark.parametrize("case", MERGEABLE)
def test_combines_each_mergeable_case(case):
    base, ours, theirs = versions(case)
    result = semantic_merge(base, ours, theirs, path="utils.py")
    assert result.merged == (CORPUS / case / "expected.py").read_text(), result.reason
    ast.parse(result.merged)
    assert result.details


@pytest.mark.parametrize("case", MERGEABLE)
def test_sides_swapped_keep_the_same_code(case):
    """Swapping ours and theirs may change the order of new things, never what is kept."""
    base, ours, theirs = versions(case)
    swapped = semantic_merge(base, theirs, ours).merged
    expected = (CORPUS / case / "expected.py").read_text()
    assert swapped is not None
    assert sorted(re.findall(r"\w+|\S", swapped)) == sorted(re.findall(r"\w+|\S", expected))


@pytest.mark.parametrize("case", CONFLICTS)
def test_refuses_each_true_conflict(case):
    base, ours, theirs = versions(case)
    result = semantic_merge(base, ours, theirs)
    assert result.merged is None
    assert result.reason and not result.clean


def test_seed_case_keeps_comments_and_formatting():
    base, ours, theirs = versions("comments_before_main_block")
    merged = semantic_merge(base, ours, theirs).merged
    assert "# --- auth ----" in merged and "# spacing kept as written" in merged
    assert "def check(   token ):" in merged and "return bool( token )" in merged
    assert '"usage: app [ARGS]"  # short on purpose' in merged


def test_reasons_name_what_went_wrong():
    assert "helper" in semantic_merge(*versions("rename_vs_call")).reason
    assert "normalize" in semantic_merge(*versions("both_change_body")).reason
    assert "removes" in semantic_merge(*versions("delete_vs_change")).reason
    assert "does not parse" in semantic_merge(*versions("syntax_error_one_side")).reason


def test_refuses_files_that_are_not_python():
    result = semantic_merge("a\n", "b\n", "c\n", path="notes.md")
    assert result.merged is None and "not a Python file" in result.reason


def test_refuses_a_base_with_a_syntax_error():
    result = semantic_merge("def f(:\n", "def f(:\n\nx = 1\n", "def f(:\n\ny = 2\n")
    assert result.merged is None and "base does not parse" in result.reason


def test_both_adding_the_same_function_keeps_one_copy():
    base = "import os\n"
    same = "\n\ndef home():\n    return os.path.expanduser('~')\n"
    merged = semantic_merge(base, base + same, base + same + "\n\ndef cwd():\n    return os.getcwd()\n").merged
    assert merged.count("def home") == 1 and "def cwd" in merged


def test_imports_that_cover_each_other_are_not_doubled():
    base = "def f():\n    return 1\n"
    ours = "import packaging\n\n\n" + base + "\n\ndef v():\n    return packaging.version\n"
    theirs = "import packaging.version\n\n\n" + base + "\n\ndef w():\n    return packaging.version.parse('1')\n"
    merged = semantic_merge(base, ours, theirs).merged
    assert "import packaging.version\n" in merged and "import packaging\n" not in merged


def test_one_name_imported_from_two_places_is_a_conflict():
    base = "def f():\n    return 1\n"
    ours = "from a import X\n" + base + "\n\ndef g():\n    return X\n"
    theirs = "from b import X\n" + base + "\n\ndef h():\n    return X\n"
    result = semantic_merge(base, ours, theirs)
    assert result.merged is None and "'X'" in result.reason


def test_both_changing_one_unnamed_statement_is_a_conflict():
    base = "import logging\n\nlogging.basicConfig(level=logging.INFO)\n"
    result = semantic_merge(base, base.replace("INFO", "DEBUG"), base.replace("INFO", "WARNING"))
    assert result.merged is None


def test_clean_text_merge_checks():
    base, ours, theirs = versions("remove_import_vs_use")
    text_merge = ours + theirs[len(base):]          # what a line merge produces
    assert "json" in check_merged(base, ours, theirs, text_merge)
    assert check_merged(base, ours, theirs, "def broken(:\n").startswith("the result is not valid Python")
    fine = versions("add_functions_same_place")
    assert check_merged(*fine, (CORPUS / "add_functions_same_place" / "expected.py").read_text()) is None


def test_calls_are_checked_against_changed_parameters():
    base = "class A:\n    def m(self, x):\n        return x\n\n    def n(self):\n        return self.m(1)\n"
    theirs = base + "\n    def k(self):\n        return self.m(3)\n"
    required = base.replace("def m(self, x)", "def m(self, x, y)").replace("self.m(1)", "self.m(1, 2)")
    optional = base.replace("def m(self, x)", "def m(self, x, y=0)")
    assert "self.m(3)" in semantic_merge(base, required, theirs).reason
    assert "def k(self)" in semantic_merge(base, optional, theirs).merged


def test_blank_line_above_two_removed_imports_stays():
    base = ("from __future__ import annotations\n\nimport typing as t\nimport warnings\nimport datetime\n\n\n"
            "def f() -> t.Any:\n    return datetime.date.today()\n\n\ndef g():\n    warnings.warn('old')\n")
    ours = base.replace("import warnings\n", "").replace("    warnings.warn('old')\n", "    pass\n")
    theirs = base.replace("import typing as t\n", "").replace("-> t.Any", "-> object")
    merged = semantic_merge(base, ours, theirs).merged
    assert merged.startswith("from __future__ import annotations\n\nimport datetime\n")


def test_imports_moved_under_the_docstring_bring_no_blank_line_with_them():
    """Ours moves the imports from the bottom to the top and drops the code between; the blank
    line that stood above the dropped code is not put under the docstring."""
    base = ('"""Pkg."""\nfrom types import ModuleType\n\nLIMIT = 1\n\n\nclass Shim(ModuleType):\n'
            '    pass\n\nfrom .core import run\nfrom .util import helper\n')
    ours = '"""Pkg."""\nfrom .core import run\nfrom .util import helper\n\nLIMIT = 1\n'
    theirs = base.replace("LIMIT = 1", "LIMIT = 1  # the most")
    assert semantic_merge(base, ours, theirs).merged == ours.replace("LIMIT = 1", "LIMIT = 1  # the most")


def test_blank_lines_under_the_docstring_removed_by_one_side_stay_removed():
    base = '"""Pkg."""\n\nimport uuid\nimport hashlib\n\n\ndef f():\n    return uuid, hashlib\n'
    ours = base.replace('"""\n\n', '"""\n')
    theirs = base.replace("import uuid\nimport hashlib\n", "import hashlib\nimport uuid\nimport warnings\n")
    merged = semantic_merge(base, ours, theirs).merged
    assert merged.startswith('"""Pkg."""\nimport hashlib\nimport uuid\nimport warnings\n\n\ndef f')


RELEASE = '"""The package."""\n\n__version__ = "2.0.0"\n\n\ndef f():\n    return 1\n'


def test_a_version_both_sides_raise_takes_the_higher():
    """A maintenance branch (2.0.1) merged into main (2.1.0.dev0): main's number stays."""
    main = RELEASE.replace("2.0.0", "2.1.0.dev0").replace("return 1", "return 2")
    maintenance = RELEASE.replace("2.0.0", "2.0.1") + "\n\ndef g():\n    return 3\n"
    for ours, theirs in ((main, maintenance), (maintenance, main)):
        result = semantic_merge(RELEASE, ours, theirs)
        assert '__version__ = "2.1.0.dev0"' in result.merged and "return 2" in result.merged
        assert "def g()" in result.merged
        assert any("keeps the higher, 2.1.0.dev0" in detail for detail in result.details)


def test_setup_version_keyword_takes_the_higher_too():
    base = "from setuptools import setup\n\nsetup(\n    name='pkg',\n    version='0.10-dev',\n)\n"
    result = semantic_merge(base, base.replace("0.10-dev", "0.11-dev"), base.replace("0.10-dev", "0.10.1-dev"))
    assert result.merged == base.replace("0.10-dev", "0.11-dev")


def test_versions_that_are_not_both_raised_stay_a_conflict():
    lowered = semantic_merge(RELEASE, RELEASE.replace("2.0.0", "2.0.0.dev0"), RELEASE.replace("2.0.0", "2.0.1"))
    assert lowered.merged is None and "__version__" in lowered.reason
    odd = semantic_merge(RELEASE, RELEASE.replace("2.0.0", "2.1 (dev)"), RELEASE.replace("2.0.0", "2.0.1"))
    assert odd.merged is None
    computed = RELEASE.replace('"2.0.0"', 'read_version()')
    assert semantic_merge(RELEASE, computed, RELEASE.replace("2.0.0", "2.0.1")).merged is None


DEPRECATED = ('import warnings\n\n\ndef current():\n    return 1\n\n\n'
              'def old():\n    warnings.warn("use current()")\n    return current()\n')


def test_new_code_where_the_other_side_removed_code_is_a_conflict():
    """Main deletes the deprecated function; the maintenance branch replaces it with a shim.
    Keeping the shim would bring back what main removed, so a person decides."""
    main = DEPRECATED.split("\n\n\ndef old")[0] + "\n"
    shim = DEPRECATED.split("\n\n\ndef old")[0] + '\n\n\nold = deprecated_alias("old", current)\n'
    result = semantic_merge(DEPRECATED, main, shim)
    assert result.merged is None
    assert "theirs adds old where ours removes def old()" in result.reason
    appended = DEPRECATED + "\n\ndef later():\n    return 2\n"    # new code after the removed function
    assert "removes def old()" in semantic_merge(DEPRECATED, main, appended).reason


def test_new_code_away_from_a_removal_still_merges():
    main = DEPRECATED.replace('\n\n\ndef old():\n    warnings.warn("use current()")\n    return current()\n', "\n")
    first = DEPRECATED.replace("\n\n\ndef current", "\n\n\ndef first():\n    return 0\n\n\ndef current")
    merged = semantic_merge(DEPRECATED, main, first).merged
    assert merged is not None and "def first()" in merged and "def old()" not in merged


def test_blocks_both_sides_add_to_follow_the_files_order():
    """Sorted imports stay sorted; a block with no order keeps each side's order, ours first."""
    base = "import csv\nimport os\nimport sys\n\n\ndef f():\n    return csv, os, sys\n"
    ours, theirs = (base.replace("import os\n", f"import os\nimport {name}\n") for name in ("re", "pathlib"))
    result = semantic_merge(base, ours, theirs)
    assert result.merged.startswith("import csv\nimport os\nimport pathlib\nimport re\nimport sys\n")
    assert result.rules == [RULES["imports"]]
    unsorted = base.replace("import csv\nimport os\nimport sys", "import sys\nimport os\nimport csv")
    ours, theirs = (unsorted.replace("import os\n", f"import os\nimport {name}\n") for name in ("re", "pathlib"))
    result = semantic_merge(unsorted, ours, theirs)
    assert result.merged.startswith("import sys\nimport os\nimport re\nimport pathlib\nimport csv\n")
    assert result.rules == [RULES["stable"]]


def test_a_sorted_block_moves_its_blank_lines_with_its_first_place():
    base = '"""Doc."""\n\nimport os\nimport sys\n'
    ours, theirs = (base.replace("import os\n", f"import {name}\nimport os\n") for name in ("json", "abc"))
    assert semantic_merge(base, ours, theirs).merged == '"""Doc."""\n\nimport abc\nimport json\nimport os\nimport sys\n'
