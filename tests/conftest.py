import asyncio
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from osqr_nb.config import settings

SEED_REQUEST = "Build the auth module, update the API docs, and refactor the database schema"


def git(cwd, *args) -> str:
    return subprocess.run(["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
                          cwd=cwd, check=True, capture_output=True, text=True).stdout


def load_benchmark(name: str):
    """A script of benchmarks/ as a module, to test what its figures rest on."""
    path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module          # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


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


async def seed_run(repo, answer="DB Sessions", **kwargs):
    """The seed request, its one checkpoint answered from code; returns the finished run."""
    import osqr_nb

    run = osqr_nb.start(SEED_REQUEST, repo=repo, **kwargs)
    checkpoint = await run.next_checkpoint(timeout=20)
    assert checkpoint.task_id == "auth-module"
    assert checkpoint.options == ["JWT", "DB Sessions", "Let me think"]
    assert run.status == "needs_input"
    checkpoint.resolve(answer)
    await run
    return run


def execute_notebook(path, cwd, timeout: float = 180):
    """Run a notebook in a real kernel; its outputs, and their text joined for searching."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(cwd)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    return outputs, text


def path_without(program: str, bin_dir: Path) -> str:
    """A PATH finding everything the current one does except `program`: symlinks in `bin_dir`
    (first hit wins, as on PATH), so tests can run as on a machine without it."""
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not folder or not os.path.isdir(folder):
            continue
        for entry in os.scandir(folder):
            link = bin_dir / entry.name
            if entry.name != program and not os.path.lexists(link):
                link.symlink_to(entry.path)
    return str(bin_dir)
