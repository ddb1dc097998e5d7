import asyncio
import subprocess
from pathlib import Path

import pytest

from osqr_nb.config import settings

SEED_REQUEST = "Build the auth module, update the API docs, and refactor the database schema"


def git(cwd, *args) -> str:
    return subprocess.run(["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
                          cwd=cwd, check=True, capture_output=True, text=True).stdout


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("# demo app\n")
    (path / "app.py").write_text("def main():\n    return 'hello'\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "initial commit")
    return path


@pytest.fixture
def repo(tmp_path) -> Path:
    return make_repo(tmp_path / "repo")


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path_factory):
    """Hermetic: no real provider is ever reached from a test, whatever keys the machine has."""
    for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_BASE_URL",
                 "OSQR_GPKV_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    # each test learns into its own personal store, never the person's
    monkeypatch.setenv("OSQR_PKV", str(tmp_path_factory.mktemp("pkv") / "pkv.sqlite"))
    settings().scripted_delay = 0.0
    yield


def run_async(coro, timeout: float = 60):
    return asyncio.run(asyncio.wait_for(coro, timeout))
