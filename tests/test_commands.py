"""run_command: outcomes, timeouts, floods, a secret-free environment, and the bubblewrap sandbox."""

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from osqr_nb.agents import commands
from osqr_nb.agents.commands import CommandError, run_command, sandbox_available, to_argv
from osqr_nb.agents.tools import ToolError, Workspace
from osqr_nb.config import settings
from traitlets import TraitError

from conftest import path_without

NO_BWRAP = "bubblewrap (bwrap) is not installed or cannot create namespaces here; apt-get install bubblewrap"
needs_bwrap = pytest.mark.skipif(not sandbox_available(), reason=NO_BWRAP)
MODES = [pytest.param(True, id="bwrap", marks=needs_bwrap), pytest.param(False, id="none")]


def run(command, cwd: Path, **options) -> commands.CommandResult:
    return asyncio.run(asyncio.wait_for(run_command(command, cwd, **options), 30))


@pytest.fixture
def without_bwrap(monkeypatch, tmp_path_factory):
    """PATH as it is, minus bubblewrap: what a machine without it looks like."""
    monkeypatch.setenv("PATH", path_without("bwrap", tmp_path_factory.mktemp("bin")))


@pytest.fixture
def wt(tmp_path) -> Path:
    root = tmp_path / "wt"
    root.mkdir()
    (root / "hello.py").write_text("print('hello')\n")
    return root


@pytest.mark.parametrize("sandbox", MODES)
def test_success_and_failure_report_the_exit_code_first(wt, sandbox):
    ok = run("python hello.py", wt, sandbox=sandbox)
    assert (ok.exit_code, ok.output, ok.timed_out, ok.truncated, ok.ok) == (0, "hello\n", False, False, True)
    assert ok.sandbox == ("bwrap" if sandbox else "none")
    assert ok.text().startswith(f"exit code 0 (") and ok.text().endswith(f"sandbox: {ok.sandbox})\nhello\n")
    bad = run(["python", "-c", "import sys; print('oops', file=sys.stderr); sys.exit(3)"], wt, sandbox=sandbox)
    assert (bad.exit_code, bad.output, bad.ok) == (3, "oops\n", False)
    assert bad.text().split("\n")[:2] == [f"exit code 3 ({bad.duration:.1f} s, sandbox: {bad.sandbox})", "oops"]


@pytest.mark.parametrize("sandbox", MODES)
def test_a_hanging_command_times_out_and_its_whole_group_is_killed(wt, sandbox):
    # The background sleep holds the output pipe open: the result can only come back quickly
    # if the kill reached it too, not just the shell.
    started = time.monotonic()
    result = run(["sh", "-c", "sleep 60 & echo started; wait"], wt, sandbox=sandbox, timeout=0.3)
    assert result.timed_out and not result.ok
    assert time.monotonic() - started < commands.KILL_GRACE
    assert result.output == "started\n"
    assert result.text().startswith("timed out after 0.3 s: the command and all its processes were killed")


@pytest.mark.parametrize("sandbox", MODES)
def test_huge_output_is_capped_without_hanging(wt, sandbox):
    result = run("yes | head -c 200000000", wt, sandbox=sandbox, timeout=20)
    assert result.exit_code == 0 and result.truncated and result.output_bytes == 200_000_000
    assert len(result.output) < commands.MAX_OUTPUT + 100
    head, marker, tail = result.output.partition("\n[... cut: ")
    assert head.startswith("y\ny\n") and tail.endswith("y\ny\n")
    assert marker and f"{200_000_000 - commands.MAX_OUTPUT} bytes of output not shown ...]" in tail


@pytest.mark.parametrize("sandbox", MODES)
def test_only_allow_listed_variables_reach_the_command(wt, sandbox, monkeypatch):
    for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "MY_TOKEN", "AWS_SECRET_ACCESS_KEY", "GH_ENTERPRISE",
                 "PYTHON_KEYRING_PASSWORD", "PYTHON_PYPI_PASS", "DATABASE_URL", "GIT_DIR", "PYTHONPATH"):
        monkeypatch.setenv(name, "sk-leaked-value")
    monkeypatch.setenv("LANG", "C.UTF-8")
    result = run("env", wt, sandbox=sandbox)
    env = dict(line.split("=", 1) for line in result.output.splitlines())
    assert "sk-leaked-value" not in result.output
    assert env["LANG"] == "C.UTF-8" and env["HOME"] != os.environ.get("HOME")
    assert env["TMPDIR"] != os.environ.get("TMPDIR")
    assert set(env) <= {"PATH", "HOME", "TMPDIR", "PYTHONDONTWRITEBYTECODE", "LANG", "LC_ALL", "TERM", "VIRTUAL_ENV",
                        "PWD", "SHLVL", "_"}
    # `python` is the kernel's interpreter, whose packages the project's tests need
    assert env["PATH"].split(os.pathsep)[0] == os.path.dirname(sys.executable) or not sandbox
    python = run(["python", "-c", "import sys; print(sys.prefix)"], wt, sandbox=sandbox)
    assert python.output.strip() == sys.prefix or not sandbox


@pytest.mark.parametrize("sandbox", MODES)
def test_osqr_command_env_names_the_variables_a_command_gets(wt, sandbox, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "src")
    monkeypatch.setenv("PYTHON_PYPI_PASS", "sk-leaked-value")
    config = settings()
    try:
        config.command_env = ["PYTHONPATH", "NOT_SET_ANYWHERE"]
        listed = dict(line.split("=", 1) for line in run("env", wt, sandbox=sandbox).output.splitlines())
        config.command_env = {"DJANGO_SETTINGS_MODULE": "app.settings"}
        given = dict(line.split("=", 1) for line in run("env", wt, sandbox=sandbox).output.splitlines())
    finally:
        config.command_env = []
    assert listed["PYTHONPATH"] == "src" and "NOT_SET_ANYWHERE" not in listed and "PYTHON_PYPI_PASS" not in listed
    assert given["DJANGO_SETTINGS_MODULE"] == "app.settings" and "PYTHONPATH" not in given
    with pytest.raises(TraitError, match="HOME and TMPDIR are the sandbox's own"):
        config.command_env = ["HOME"]


def test_the_environment_filter_itself():
    source = {"PATH": "/bin", "HOME": "/root", "OPENAI_BASE_URL": "x", "PYTHONPATH": "src", "PYTHON_PYPI_PASS": "x",
              "LANG": "C", "SSH_AUTH_SOCK": "x", "GITHUB_ACTIONS": "1", "TERM": "xterm", "VIRTUAL_ENV": "/venv"}
    assert commands.safe_environment("/h", "/t", source) == {
        "PATH": "/bin", "LANG": "C", "TERM": "xterm", "VIRTUAL_ENV": "/venv", "HOME": "/h", "TMPDIR": "/t",
        "PYTHONDONTWRITEBYTECODE": "1"}
    assert commands.safe_environment("/h", "/t", source, extra={"PYTHONPATH": "src"}, path="/usr/bin") == {
        "PATH": "/usr/bin", "LANG": "C", "TERM": "xterm", "VIRTUAL_ENV": "/venv", "PYTHONPATH": "src",
        "HOME": "/h", "TMPDIR": "/t", "PYTHONDONTWRITEBYTECODE": "1"}


def test_commands_are_split_like_a_shell_and_bad_ones_refused(wt):
    assert to_argv("python -m pytest -k 'a or b'") == ["python", "-m", "pytest", "-k", "a or b"]
    assert to_argv(["ls", "-l"]) == ["ls", "-l"]
    assert to_argv("pytest -q && ruff check .") == ["sh", "-c", "pytest -q && ruff check ."]
    assert to_argv("grep 'a|b' f") == ["grep", "a|b", "f"]
    for command, message in [("", "empty"), ("echo 'unclosed", "cannot split"), ([1], "string or a list")]:
        with pytest.raises(CommandError, match=message):
            to_argv(command)
    with pytest.raises(CommandError, match="command not found: 'no-such-program'"):
        run("no-such-program --help", wt)


def test_without_a_sandbox_commands_are_refused_unless_the_person_opted_in(wt, without_bwrap):
    assert not sandbox_available() and Workspace(wt).sandbox_mode == "none"
    with pytest.raises(CommandError, match="a sandbox was required.*apt-get install bubblewrap"):
        run("true", wt, sandbox=True)
    with pytest.raises(CommandError, match=r"apt-get install bubblewrap.*OSQR.unsandboxed_commands = True"):
        run("true", wt)
    with pytest.raises(ToolError, match="apt-get install bubblewrap"):
        asyncio.run(Workspace(wt).acall("run_command", {"command": "true"}))
    settings().unsandboxed_commands = True
    try:
        assert run("true", wt).sandbox == "none"
        with pytest.raises(CommandError, match="bubblewrap"):
            run("true", wt, sandbox=True)        # required stays required
    finally:
        settings().unsandboxed_commands = False
    assert run("true", wt, sandbox=False).sandbox == "none"     # code that chose no sandbox explicitly


def test_cancelling_kills_the_command(wt):
    async def cancel_soon():
        task = asyncio.ensure_future(run_command(["sh", "-c", "echo $$ > pid; exec sleep 60"], wt, sandbox=False))
        while not (wt / "pid").exists() or not (wt / "pid").read_text().strip():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.1)
    asyncio.run(cancel_soon())
    status = Path(f"/proc/{(wt / 'pid').read_text().strip()}/status")
    assert not status.exists() or "State:\tZ" in status.read_text()


# -- the sandbox ---------------------------------------------------------------

@pytest.fixture
def disk_dir():
    """A directory on the real disk: not under /tmp, /var/tmp or /run, which the sandbox replaces."""
    for parent in (Path.home(), Path.cwd()):
        if not str(parent).startswith(("/tmp", "/var/tmp", "/run")) and os.access(parent, os.W_OK):
            with tempfile.TemporaryDirectory(dir=parent, prefix=".osqr-test-") as path:
                yield Path(path)
            return
    pytest.skip("no writable directory outside /tmp to show read-only writes with")


@needs_bwrap
def test_the_sandbox_writes_only_the_worktree_and_its_own_tmp(disk_dir, tmp_path):
    worktree, sibling, beside = disk_dir / "wt", disk_dir / "other-task" / "x.py", tmp_path / "beside.txt"
    worktree.mkdir()
    sibling.parent.mkdir()
    parent = disk_dir / "next-to-the-worktree.txt"
    script = (f"echo in > inside.txt; echo out > {sibling}; echo out > {beside}; echo out > {parent}; "
              f"ls -A {disk_dir}; echo tmp > /tmp/scratch; cat /tmp/scratch")
    result = run(["sh", "-c", script], worktree, sandbox=True)
    assert result.sandbox == "bwrap"
    assert (worktree / "inside.txt").read_text() == "in\n"
    assert f"cannot create {sibling}: Directory nonexistent" in result.output     # other tasks are not there
    assert f"cannot create {parent}: Read-only file system" in result.output
    assert "\nwt\ntmp\n" in result.output                  # the worktree's parent shows only the worktree
    assert not sibling.exists() and not beside.exists() and not parent.exists()
    unconfined = run(["sh", "-c", f"echo out > {sibling}"], worktree, sandbox=False)
    assert unconfined.exit_code == 0 and sibling.exists()    # the same write succeeds without the sandbox


@needs_bwrap
def test_the_sandbox_shows_the_interpreter_but_no_other_part_of_home(wt, monkeypatch):
    home = Path.home().resolve()
    toolchain = commands.toolchain_dirs(wt)
    assert all(home != d and d not in home.parents for d in toolchain)
    allowed = {d.relative_to(home).parts[0] for d in toolchain if home in d.parents}
    shown = run(["sh", "-c", f"ls -A {home}"], wt, sandbox=True).output.split()
    assert set(shown) <= allowed                           # with pyenv: .pyenv, and in it only the version
    monkeypatch.setattr(sys, "prefix", str(home))          # an interpreter "installed" in HOME itself
    assert home not in commands.toolchain_dirs(wt)


@needs_bwrap
def test_the_sandbox_hides_the_secrets_in_etc(wt):
    result = run(["sh", "-c", "cat /etc/shadow /etc/gitconfig; ls -A /etc/ssh; head -c 5 /etc/passwd"], wt,
                 sandbox=True)
    assert result.output == "root:"                        # /etc itself is there: tools need it


@needs_bwrap
def test_the_sandbox_drops_capabilities_so_root_cannot_remount(disk_dir, wt):
    target = disk_dir / "escape.txt"
    script = f"grep CapEff /proc/self/status; mount -o remount,rw / 2>/dev/null; echo x > {target}"
    result = run(["sh", "-c", script], wt, sandbox=True)
    assert result.output.startswith("CapEff:\t0000000000000000\n")
    assert not target.exists()


@needs_bwrap
def test_the_sandbox_hides_unix_sockets_under_tmp_and_run(wt, tmp_path):
    path = tmp_path / "daemon.sock"
    probe = ["python", "-c", f"import socket; socket.socket(socket.AF_UNIX).connect({str(path)!r}); print('connected')"]
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen()
        assert run(probe, wt, sandbox=False).output == "connected\n"
        confined = run(probe, wt, sandbox=True)
    assert "FileNotFoundError" in confined.output
    assert run("ls -A /var/tmp", wt, sandbox=True).output == ""
    assert "No such file or directory" in run("ls /run /var/run", wt, sandbox=True).output


@needs_bwrap
def test_the_sandbox_has_no_network(wt):
    with socket.socket() as server:                 # a listener on the host's loopback
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        connect = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2); print('connected')"
        probe = ["python", "-c", connect]
        assert run(probe, wt, sandbox=False).output == "connected\n"
        confined = run(probe, wt, sandbox=True)
    assert confined.exit_code != 0 and "ConnectionRefusedError" in confined.output
    interfaces = run(["cat", "/proc/net/dev"], wt, sandbox=True).output
    assert [line.split(":")[0].strip() for line in interfaces.splitlines()[2:]] == ["lo"]


@needs_bwrap
def test_the_sandbox_hides_credential_files(wt, tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text("aws_secret_access_key = sk-leaked-value\n")
    (home / ".netrc").write_text("machine example.com password sk-leaked-value\n")
    monkeypatch.setenv("HOME", str(home))
    result = run(["sh", "-c", f"cat {home}/.netrc {home}/.aws/credentials; ls -A {home}/.aws"], wt, sandbox=True)
    assert "sk-leaked-value" not in result.output
    assert "No such file or directory" in result.output


@needs_bwrap
def test_git_reads_work_in_the_sandbox_and_writes_fail(tmp_path):
    repo = tmp_path / "repo"
    git = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "a.txt").write_text("one\n")
    subprocess.run([*git, "-C", str(repo), "add", "."], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-qm", "initial"], check=True)
    worktree = tmp_path / "wt"
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "-q", "-b", "task", str(worktree)], check=True)
    (worktree / "a.txt").write_text("two\n")
    assert run("git status --short", worktree, sandbox=True).output == " M a.txt\n"
    commit = run([*git, "commit", "-qam", "agent"], worktree, sandbox=True)
    assert commit.exit_code != 0 and "Read-only file system" in commit.output
    removal = run("rm -f .git", worktree, sandbox=True)
    assert removal.exit_code != 0 and (worktree / ".git").is_file()


# -- through the workspace -------------------------------------------------------

def test_workspace_acall_runs_commands_and_keeps_the_result(wt):
    ws = Workspace(wt)
    text = asyncio.run(ws.acall("run_command", {"command": "python hello.py", "timeout": 10}))
    assert text.startswith("exit code 0 (") and text.endswith("hello\n")
    assert ws.last_command is not None and ws.last_command.sandbox == ws.sandbox_mode
    assert ws.last_command.summary()["argv"] == ["python", "hello.py"]
    assert ws.sandbox_mode == ("bwrap" if sandbox_available() else "none")
    assert Workspace(wt, sandbox=False).sandbox_mode == "none"


def test_workspace_command_errors_are_tool_errors(wt):
    ws = Workspace(wt)
    for args, message in [({}, r"run_command needs the argument 'command' \(a string or a list of strings\)"),
                          ({"command": "true", "timeout": "5"}, "'timeout' must be a number"),
                          ({"command": "true", "timeout": 0}, "timeout must be a positive number"),
                          ({"command": "nope-nope"}, "command not found: 'nope-nope'"),
                          ({"command": "echo 'open"}, "cannot split the command")]:
        with pytest.raises(ToolError, match=message):
            asyncio.run(ws.acall("run_command", args))


@pytest.mark.parametrize("sandbox", MODES)
def test_python_run_by_a_command_leaves_no_bytecode_in_the_worktree(wt, sandbox):
    """`__pycache__/` would be committed with the task's work (git add -A): Python writes no
    bytecode there (PYTHONDONTWRITEBYTECODE), and still reads the installed packages' own."""
    (wt / "mod.py").write_text("VALUE = 41\n")
    done = run(["python", "-c", "import mod; print(mod.VALUE + 1)"], wt, sandbox=sandbox)
    assert (done.exit_code, done.output) == (0, "42\n")
    assert not list(wt.rglob("__pycache__")) and not list(wt.rglob("*.pyc"))
