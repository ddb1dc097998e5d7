"""notebooks/quickstart.ipynb runs clean, offline and unattended, in a real kernel."""

from pathlib import Path

import pytest

from conftest import execute_notebook

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "quickstart.ipynb"


@pytest.mark.kernel
def test_quickstart_notebook_runs_clean(tmp_path):
    outputs, text = execute_notebook(NOTEBOOK, tmp_path, timeout=120)
    assert not [o for o in outputs if o.output_type == "error"]
    assert "complete - osqr/" in text
    assert "db-schema -> auth-module (task_output): ['UUID for user IDs, separate sessions table']" in text
    assert "✓ auth-module files: ['auth/__init__.py', 'auth/sessions.py']" in text
