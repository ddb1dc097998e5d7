"""JupyterLab in a real browser (Debian's chromium through Playwright): the run's widgets
render, a person's click on the checkpoint card lets the agent go on, the graph turns ✓."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from conftest import SEED_REQUEST

CHROMIUM = "/usr/lib/chromium/chromium"
TOKEN = "osqr-browser-test"

pytestmark = pytest.mark.browser


def _browser_or_skip():
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        reason = "playwright is not installed (pip install -e '.[test]')"
    else:
        if Path(CHROMIUM).exists():
            return
        reason = "Debian's chromium is not installed (apt-get install chromium)"
    if os.environ.get("OSQR_REQUIRE_BROWSER"):
        pytest.fail(reason)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(port: int, path: str, method: str = "GET"):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read() or b"null")


ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"


@pytest.fixture(params=["lab", "notebook"])
def frontend(request, tmp_path):
    """JupyterLab 4 or Notebook 7 serving a notebook with a tier 2 run in it."""
    _browser_or_skip()
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("%load_ext osqr_nb\n%config OSQR.scripted_delay = 0.1\n"
                                  "from osqr_nb.demo import demo_repo\nrepo = demo_repo('demo-repo')"),
        nbformat.v4.new_code_cell(f"%%osqr --repo $repo\n{SEED_REQUEST}"),
    ]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, tmp_path / "demo.ipynb")
    port = _free_port()
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "config"))
    news = tmp_path / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)                              # no "Jupyter news?" toast over the page
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", request.param, "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={tmp_path}", "--ServerApp.open_browser=False"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while True:
        try:
            _api(port, "/api/status")
            break
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                raise AssertionError(f"jupyter {request.param} did not start")
            time.sleep(0.3)
    yield request.param, port
    try:
        _api(port, "/api/shutdown", "POST")
        server.wait(timeout=20)
    except Exception:
        server.kill()


def test_checkpoint_clicked_in_the_browser_lets_the_run_finish(frontend):
    from playwright.sync_api import expect, sync_playwright

    app, port = frontend
    path = "lab/tree" if app == "lab" else "notebooks"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"http://127.0.0.1:{port}/{path}/demo.ipynb?token={TOKEN}")
            deadline = time.time() + 60
            while not any(s["kernel"]["execution_state"] == "idle" for s in _api(port, "/api/sessions")):
                assert time.time() < deadline, "the notebook's kernel never became idle"
                time.sleep(0.3)
            page.wait_for_selector(".jp-Notebook", timeout=30_000)
            for dialog in page.query_selector_all(".jp-Dialog .jp-mod-accept"):
                dialog.click()
            page.get_by_role("menuitem", name="Run", exact=True).click(timeout=10_000)
            page.get_by_text("Run All Cells", exact=True).click(timeout=10_000)

            button = page.locator(".osqr-checkpoint button", has_text="DB Sessions")
            expect(button).to_be_visible(timeout=60_000)
            expect(page.locator(".osqr-run").first).to_contain_text("Needs input 1")
            button.click()
            outputs = page.locator(".jp-OutputArea")
            expect(outputs.get_by_text("Complete 3").first).to_be_visible(timeout=60_000)
            expect(page.locator(".osqr-checkpoint").first).to_contain_text("decided by human")
            assert page.locator('.osqr-dag g[data-status="complete"]').count() == 3
        finally:
            ARTIFACTS.mkdir(exist_ok=True)     # kept for a person to look at (CI artifact)
            page.screenshot(path=str(ARTIFACTS / f"checkpoint-{app}.png"))
            browser.close()
