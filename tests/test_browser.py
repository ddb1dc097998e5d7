"""JupyterLab and Notebook 7 in a real browser (Debian's chromium through Playwright), with
osqr-nb installed as the README says (so its JupyterLab extension is in the environment):

- the run's widgets render and a click on the checkpoint card lets the agent go on;
- the OSQR Agents sidebar (found by its tab's caption) shows the pending checkpoint, and a
  click on its [DB Sessions] answers it as the person's decision; the extension put the card
  in a cell of its own below the one being worked in, and both copies show the answer;
- the same after a kernel restart and `%osqr resume`;
- in JupyterLab Dark, every text of the cell outputs and the sidebar has at least 4.5:1
  contrast against its effective background (computed in the page).

Screenshots of the sidebar and the dashboard, Light and Dark, go to test-artifacts/ (git-ignored).
"""

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

import osqr_nb
from conftest import SEED_REQUEST

CHROMIUM = "/usr/lib/chromium/chromium"
TOKEN = "osqr-browser-test"
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
SETUP = ("%load_ext osqr_nb\n%config OSQR.scripted_delay = 0.1\n"
         "from osqr_nb.demo import demo_repo\nrepo = demo_repo('demo-repo')")
DARK = {"@jupyterlab/apputils-extension/themes.jupyterlab-settings": {"theme": "JupyterLab Dark"}}

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


class Server:
    """`jupyter lab` / `jupyter notebook` on a free port, a temporary root and config dir."""

    def __init__(self, tmp_path: Path, app: str, cells: list[str], settings: dict | None = None) -> None:
        self.app, self.root, self.port = app, tmp_path, _free_port()
        notebook = nbformat.v4.new_notebook()
        notebook.cells = [nbformat.v4.new_code_cell(c) for c in cells]
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(notebook, tmp_path / "demo.ipynb")
        user = tmp_path / "config" / "lab" / "user-settings"
        wanted = {"@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"},
                  **(settings or {})}
        for name, value in wanted.items():         # no "Jupyter news?" toast over the page
            (user / name).parent.mkdir(parents=True, exist_ok=True)
            (user / name).write_text(json.dumps(value))
        env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "config"))
        expose = ["--LabApp.expose_app_in_browser=True"] if app == "lab" else []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyter", app, "--no-browser", "--allow-root", f"--port={self.port}",
             "--ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={tmp_path}",
             "--ServerApp.open_browser=False", *expose],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while True:
            try:
                _api(self.port, "/api/status")
                return
            except OSError:
                if time.time() > deadline or self.process.poll() is not None:
                    self.process.kill()
                    raise AssertionError(f"jupyter {app} did not start")
                time.sleep(0.3)

    def wait_idle(self, timeout: float = 60) -> str:
        """The notebook's kernel id, once it is idle (running earlier opens a "Select Kernel" dialog)."""
        deadline = time.time() + timeout
        while True:
            idle = [s["kernel"]["id"] for s in _api(self.port, "/api/sessions")
                    if s["kernel"]["execution_state"] == "idle"]
            if idle:
                return idle[0]
            assert time.time() < deadline, "the notebook's kernel never became idle"
            time.sleep(0.3)

    def stop(self) -> None:
        try:
            _api(self.port, "/api/shutdown", "POST")
            self.process.wait(timeout=20)
        except Exception:
            self.process.kill()


def _open(p, server: Server, name: str = "demo.ipynb"):
    browser = p.chromium.launch(executable_path=CHROMIUM, args=[
        "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"])
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    path = "lab/tree" if server.app == "lab" else "notebooks"
    page.goto(f"http://127.0.0.1:{server.port}/{path}/{name}?token={TOKEN}")
    kernel = server.wait_idle()
    page.wait_for_selector(".jp-Notebook", timeout=30_000)
    for dialog in page.query_selector_all(".jp-Dialog .jp-mod-accept"):
        dialog.click()
    return browser, page, kernel


def _run_all(page) -> None:
    page.get_by_role("menuitem", name="Run", exact=True).click(timeout=10_000)
    page.get_by_text("Run All Cells", exact=True).click(timeout=10_000)


def _run_cell(page, start: str) -> None:
    """Run the cell whose source starts so (set-up steps only: what the tests check is clicked for real)."""
    page.evaluate("""start => {
        const panel = window.jupyterapp.shell.currentWidget;
        const index = panel.content.widgets.findIndex(c => c.model.sharedModel.getSource().startsWith(start));
        panel.content.activeCellIndex = index;
        return window.jupyterapp.commands.execute('notebook:run-cell');
    }""", start)


def _sidebar(page):
    """Open the OSQR Agents panel by its tab, found by the tab's caption (tabs show icons only)."""
    tab = page.locator(".jp-SideBar .lm-TabBar-tab[title='OSQR Agents']")
    tab.click(timeout=15_000)
    panel = page.locator(".osqr-sidebar")
    panel.wait_for(state="visible", timeout=10_000)
    return panel


def _screenshot(page, name: str, locator=None) -> None:
    ARTIFACTS.mkdir(exist_ok=True)           # kept for a person to look at (CI artifact), never committed
    (locator or page).screenshot(path=str(ARTIFACTS / f"{name}.png"))


def _decision(root: Path) -> tuple[str, str]:
    history = osqr_nb.history(root / "demo-repo")
    auth = history[history.task_id == "auth-module"].iloc[0]
    return auth.chosen, auth.decided_by


@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_checkpoint_clicked_in_the_browser_lets_the_run_finish(app, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    _browser_or_skip()
    server = Server(tmp_path, app, [SETUP, f"%%osqr --repo $repo\n{SEED_REQUEST}"])
    with sync_playwright() as p:
        browser, page, _ = _open(p, server)
        try:
            _run_all(page)
            button = page.locator(".osqr-checkpoint button", has_text="DB Sessions").first
            expect(button).to_be_visible(timeout=60_000)
            expect(page.locator(".osqr-run").first).to_contain_text("Needs input 1")
            button.click()
            outputs = page.locator(".jp-OutputArea")
            expect(outputs.get_by_text("Complete 3").first).to_be_visible(timeout=60_000)
            expect(page.locator(".osqr-checkpoint").first).to_contain_text("decided by human")
            assert page.locator('.osqr-dag g[data-status="complete"]').count() == 3
        finally:
            _screenshot(page, f"checkpoint-{app}")
            browser.close()
            server.stop()
    assert _decision(tmp_path) == ("DB Sessions", "human")


def test_sidebar_answers_the_checkpoint_and_a_cell_shows_it_where_the_person_works(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    _browser_or_skip()
    server = Server(tmp_path, "lab", [SETUP, f"%%osqr --repo $repo --tier 2\n{SEED_REQUEST}"])
    with sync_playwright() as p:
        browser, page, _ = _open(p, server)
        try:
            panel = _sidebar(page)
            expect(panel).to_contain_text("No osqr here yet")     # listening before any cell ran
            _run_all(page)
            checkpoint = panel.locator(".osqr-sidebar-checkpoint")
            expect(checkpoint).to_contain_text("AGENT CHECKPOINT: Auth Module", timeout=60_000)
            expect(checkpoint).to_contain_text("JWT or database sessions")
            labels = [b.inner_text() for b in checkpoint.locator("button").all()]
            assert labels == ["JWT", "DB Sessions", "Let me think"]
            expect(panel.locator(".osqr-task-row")).to_have_count(3)
            expect(panel.locator(".osqr-sidebar-counts")).to_have_text(
                "Active 0 · Waiting 1 · Complete 1 · Needs input 1")
            # The extension put the card in a cell of its own, run, below the one worked in.
            cell = page.locator(".jp-CodeCell", has_text="%osqr checkpoint")
            expect(cell.locator(".osqr-checkpoint button", has_text="DB Sessions")).to_be_visible(timeout=15_000)
            toast = page.locator(".Toastify__toast").first
            expect(toast).to_contain_text("Auth Module")
            _screenshot(page, "sidebar-light", panel)
            _screenshot(page, "dashboard-light", page.locator(".osqr-run").first)
            toast.get_by_role("button", name="Answer in OSQR Agents").click()     # opens the sidebar on it
            expect(checkpoint).to_have_class("osqr-sidebar-checkpoint osqr-mod-focused")
            # The palette's commands pause and resume every run of the kernel.
            for command, status in (("osqr-nb:pause-all", "paused"), ("osqr-nb:resume-all", "needs_input")):
                page.evaluate(f"() => {{ void window.jupyterapp.commands.execute('{command}'); }}")
                expect(panel.locator(".osqr-sidebar-run-head")).to_contain_text(f"· {status} ·")

            checkpoint.get_by_role("button", name="DB Sessions", exact=True).click()
            expect(panel.locator(".osqr-sidebar-counts")).to_contain_text("Complete 3", timeout=60_000)
            expect(panel.locator(".osqr-sidebar-checkpoint")).to_have_count(0)
            for card in page.locator(".jp-OutputArea .osqr-checkpoint").all():   # both copies
                expect(card).to_contain_text("DB Sessions, decided by human")
            expect(page.locator(".jp-OutputArea").get_by_text("Complete 3").first).to_be_visible()
        finally:
            _screenshot(page, "sidebar-run-light")
            browser.close()
            server.stop()
    assert _decision(tmp_path) == ("DB Sessions", "human")


def test_sidebar_follows_a_kernel_restart_and_osqr_resume(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    _browser_or_skip()
    server = Server(tmp_path, "lab", [SETUP, f"%%osqr --repo $repo --tier 2\n{SEED_REQUEST}",
                                      "%load_ext osqr_nb\n%osqr resume --repo demo-repo"])
    with sync_playwright() as p:
        browser, page, _ = _open(p, server)
        try:
            panel = _sidebar(page)
            _run_cell(page, "%load_ext osqr_nb\n%config")
            _run_cell(page, "%%osqr")
            expect(panel.locator(".osqr-sidebar-checkpoint")).to_contain_text("Auth Module", timeout=60_000)
            page.evaluate("() => { void window.jupyterapp.commands.execute('notebook:restart-kernel'); }")
            page.locator(".jp-Dialog .jp-mod-accept").click(timeout=10_000)        # [Restart]
            expect(panel).to_contain_text("No osqr here yet", timeout=30_000)
            server.wait_idle()
            _run_cell(page, "%load_ext osqr_nb\n%osqr resume")
            checkpoint = panel.locator(".osqr-sidebar-checkpoint")
            expect(checkpoint).to_contain_text("JWT or database sessions", timeout=60_000)
            checkpoint.get_by_role("button", name="DB Sessions", exact=True).click()
            expect(panel.locator(".osqr-sidebar-counts")).to_contain_text("Complete 3", timeout=60_000)
            expect(panel.locator(".osqr-sidebar-run-head")).to_contain_text("complete")
        finally:
            _screenshot(page, "sidebar-after-restart")
            browser.close()
            server.stop()
    assert _decision(tmp_path) == ("DB Sessions", "human")


CONTRAST = """
roots => {
  const rgba = text => {
    const m = /rgba?\\(([^)]+)\\)/.exec(text || '');
    if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, bottom) => [0, 1, 2].map(i => top[i] * top[3] + bottom[i] * (1 - top[3])).concat([1]);
  const lum = c => {
    const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  const backdrop = el => {            // the colours painted under el, composited from the page up
    const layers = [];
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
      const bg = rgba(getComputedStyle(node).backgroundColor);
      if (bg && bg[3] > 0) { layers.push(bg); if (bg[3] >= 1) break; }
    }
    return layers.reverse().reduce((base, layer) => over(layer, base), [255, 255, 255, 1]);
  };
  const opacity = el => {
    let o = 1;
    for (let node = el; node && node.nodeType === 1; node = node.parentElement) {
      o *= Number(getComputedStyle(node).opacity);
    }
    return o;
  };
  const found = [];
  for (const root of document.querySelectorAll(roots)) {
    for (const el of root.querySelectorAll('*')) {
      const own = [...el.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent).join('').trim();
      if (!own || ['TITLE', 'STYLE', 'SCRIPT', 'OPTION', 'TEXTAREA', 'INPUT'].includes(el.tagName)) continue;
      if (el.closest(':disabled') || el.getClientRects().length === 0) continue;
      const style = getComputedStyle(el);
      if (style.visibility !== 'visible') continue;
      const svg = el instanceof SVGElement;
      let colour = rgba(svg ? style.fill : style.color);
      if (!colour) continue;
      let bg;
      if (svg) {
        const rect = el.closest('g') && el.closest('g').querySelector('rect');
        const fill = rect && rgba(getComputedStyle(rect).fill);
        bg = fill && fill[3] >= 1 ? fill : backdrop(el.closest('svg').parentElement);
      } else {
        bg = backdrop(el);
      }
      colour = [colour[0], colour[1], colour[2], colour[3] * opacity(el)];
      const fg = over(colour, bg);
      const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
      found.push({text: own.slice(0, 400), ratio: (a + 0.05) / (b + 0.05),
                  colour: style.color + ' ' + (svg ? style.fill : ''), background: 'rgb(' + bg.slice(0, 3).map(Math.round) + ')'});
    }
  }
  return found;
}
"""


def test_dark_theme_every_text_reads_at_4_5_to_1(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    _browser_or_skip()
    server = Server(tmp_path, "lab", [SETUP, f"%%osqr --repo $repo --tier 1\n{SEED_REQUEST}"], settings=DARK)
    with sync_playwright() as p:
        browser, page, _ = _open(p, server)
        try:
            expect(page.locator("body[data-jp-theme-name='JupyterLab Dark']")).to_have_count(1, timeout=15_000)
            panel = _sidebar(page)
            _run_all(page)
            expect(page.locator(".jp-OutputArea .osqr-checkpoint pre").first).to_be_visible(timeout=60_000)
            expect(panel.locator(".osqr-sidebar-checkpoint").first).to_be_visible(timeout=15_000)
            page.wait_for_timeout(500)                     # one more refresh of the dashboard
            texts = page.evaluate(CONTRAST, ".jp-OutputArea-output, .osqr-sidebar")
            _screenshot(page, "sidebar-dark", panel)
            _screenshot(page, "dashboard-dark", page.locator(".osqr-run").first)
            _screenshot(page, "page-dark")
        finally:
            browser.close()
            server.stop()
    joined = " ".join(t["text"] for t in texts)
    for expected in ("AGENT CHECKPOINT", "Needs input", "● running", "DB Schema", "Pause All", "osqr run"):
        assert expected in joined, expected
    assert any(t["text"].startswith(("+", "-", "@@", "diff")) for t in texts), "no diff line was checked"
    low = [t for t in texts if t["ratio"] < 4.5]
    assert not low, f"{len(low)} of {len(texts)} texts under 4.5:1: {[dict(t, text=t['text'][:40]) for t in low[:8]]}"
