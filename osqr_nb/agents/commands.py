"""run_command: the project's own tests, linters and build, run for an agent.

A command runs with `asyncio.create_subprocess_exec` (never blocking the
kernel) in the task's worktree, with a timeout that kills its whole process
group, output capped while the pipe is still drained (a command printing
gigabytes neither hangs nor fills memory), and an environment holding no API
keys or other secrets.

Where bubblewrap (`bwrap`) works, the command also runs inside it: the whole
file system read-only, the worktree writable, private `/tmp`, `/var/tmp` and
`/run` (hiding daemons' sockets), no network, no capabilities even for root,
its own process namespace (so a timeout kills every descendant) and well-known
credential files under HOME hidden. The worktree's `.git` is read-only inside
the sandbox, and so is the repository's git directory that a worktree's `.git`
file points to: git commands that only read (`git diff`, `git log`, `git status`) work, git
commands that write (`git commit`, `git add`, `git stash`) fail with a
read-only file system; committing is the orchestrator's job.
Without bwrap the command runs unconfined ("none"); the result says which mode
was used so the run can log it and the autonomy policy can ask first.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

DEFAULT_TIMEOUT = 120.0     # seconds
MAX_TIMEOUT = 600.0         # what a model may ask for at most
MAX_OUTPUT = 20_000         # bytes of output kept (head and tail)
KILL_GRACE = 2.0            # seconds to wait for the pipe to close after a kill
SANDBOX_HOME = "/tmp/home"  # HOME inside the sandbox, on its private /tmp

SandboxMode = Literal["bwrap", "none"]

_PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TERM", "VIRTUAL_ENV")
_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH", "PRIVATE")
_SECRET_PREFIXES = ("AWS_", "ANTHROPIC_", "OPENAI_", "GITHUB_", "GH_")
# Relative to HOME: hidden inside the sandbox, since the rest of the disk stays readable.
_CREDENTIAL_PATHS = (".ssh", ".aws", ".azure", ".gnupg", ".docker", ".kube", ".netrc", ".git-credentials",
                     ".pypirc", ".npmrc", ".config/gh", ".config/gcloud", ".config/hub", ".anthropic",
                     ".openai")
_SHELL_OPERATORS = set("|&;<>()")
# Replaced by empty private directories: scratch space, and the place daemons keep their
# sockets (a read-only mount does not stop connecting to a Unix socket).
_PRIVATE_DIRS = ("/tmp", "/var/tmp", "/run", "/var/run")
# Own namespaces (no network, own processes: a kill reaches every descendant), no
# capabilities (root could otherwise remount / writable), no controlling terminal.
_ISOLATION = ("--unshare-user-try", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
              "--cap-drop", "ALL", "--new-session", "--die-with-parent")


class CommandError(ValueError):
    """A command that cannot be started (empty, bad quoting, unknown program)."""


@dataclass(frozen=True)
class CommandResult:
    """What a command did; `text()` is what the model sees, `summary()` what the log keeps."""

    argv: list[str]
    exit_code: int | None       # None only when the process could not be reaped
    output: str                 # stdout and stderr interleaved, cut in the middle when long
    duration: float             # seconds
    timed_out: bool
    truncated: bool
    sandbox: SandboxMode
    output_bytes: int           # how much the command printed in all

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def text(self) -> str:
        """Compact: the exit code first, so a model reading the head knows the outcome."""
        if self.timed_out:
            head = (f"timed out after {self.duration:.1f} s: the command and all its processes "
                    f"were killed (sandbox: {self.sandbox})")
        else:
            head = f"exit code {self.exit_code}{_signal_note(self.exit_code)} " \
                   f"({self.duration:.1f} s, sandbox: {self.sandbox})"
        return f"{head}\n{self.output or '(no output)'}"

    def summary(self) -> dict[str, Any]:
        """For the event log: everything but the output itself."""
        return {"argv": self.argv, "exit_code": self.exit_code, "duration": round(self.duration, 3),
                "timed_out": self.timed_out, "truncated": self.truncated, "sandbox": self.sandbox,
                "output_bytes": self.output_bytes}


def _signal_note(code: int | None) -> str:
    if code is None or code >= 0:
        return ""
    try:
        return f" (killed by {signal.Signals(-code).name})"
    except ValueError:
        return f" (killed by signal {-code})"


@functools.cache
def sandbox_available() -> bool:
    """True when bwrap is installed and can make namespaces here (containers may forbid it).

    Probed once per process; the probe takes a few milliseconds.
    """
    if shutil.which("bwrap") is None:
        return False
    probe = ["bwrap", "--ro-bind", "/", "/", "--tmpfs", "/tmp", "--dev", "/dev", "--proc", "/proc",
             *_ISOLATION, "true"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def is_secret_name(name: str) -> bool:
    """Names that look like they hold a credential; never passed to a command."""
    upper = name.upper()
    return any(w in upper for w in _SECRET_WORDS) or upper.startswith(_SECRET_PREFIXES)


def safe_environment(home: str, tmp: str, source: dict[str, str] | None = None) -> dict[str, str]:
    """A small allowlist of the kernel's environment, minus anything secret-looking.

    HOME and TMPDIR point to throwaway directories, so tools find no stored
    credentials and leave nothing behind.
    """
    source = dict(os.environ) if source is None else source
    env = {k: v for k, v in source.items()
           if (k in _PASSED_ENV or k.startswith("PYTHON")) and not is_secret_name(k)}
    env.setdefault("PATH", os.defpath)
    env.update(HOME=home, TMPDIR=tmp)
    return env


def to_argv(command: str | Sequence[str]) -> list[str]:
    """An argv list: a list as given, a string split like a shell would.

    A string using pipes, `&&`, `;` or redirections runs through `sh -c`, since
    that is what a model writing them means.
    """
    if isinstance(command, str):
        try:
            lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            tokens = list(lexer)
        except ValueError as exc:
            raise CommandError(f"cannot split the command {command!r}: {exc}") from None
        if any(t and set(t) <= _SHELL_OPERATORS for t in tokens):
            return ["sh", "-c", command]
        argv = shlex.split(command)
    elif isinstance(command, (list, tuple)) and all(isinstance(a, str) for a in command):
        argv = list(command)
    else:
        raise CommandError("command must be a string or a list of strings")
    if not argv or not argv[0].strip():
        raise CommandError("the command is empty")
    return argv


def bwrap_argv(worktree: Path, argv: list[str], home: Path | None = None) -> list[str]:
    """The bubblewrap wrapping of `argv`: read-only disk, writable worktree, no network.

    Mounts stack in order: the private scratch directories first (the worktree
    or its repository may live under /tmp), then the git directories read-only,
    then the worktree writable, and last its `.git` read-only again.
    """
    wrapped = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for scratch in _PRIVATE_DIRS:
        if scratch == "/tmp" or (os.path.isdir(scratch) and not os.path.islink(scratch)):
            wrapped += ["--tmpfs", scratch]
    for git_dir in _git_dirs(worktree):
        wrapped += ["--ro-bind", str(git_dir), str(git_dir)]
    wrapped += ["--bind", str(worktree), str(worktree)]
    if (worktree / ".git").exists():
        wrapped += ["--ro-bind", str(worktree / ".git"), str(worktree / ".git")]
    wrapped += _hide_credentials(home or Path.home(), worktree)
    return [*wrapped, "--dir", SANDBOX_HOME, *_ISOLATION, "--chdir", str(worktree), "--", *argv]


def _git_dirs(worktree: Path) -> list[Path]:
    """The repository directories a worktree's `.git` file points to, so git can read them."""
    dot_git = worktree / ".git"
    try:
        text = dot_git.read_text().strip() if dot_git.is_file() else ""
    except (OSError, UnicodeDecodeError):
        return []
    if not text.startswith("gitdir:"):
        return []
    git_dir = (worktree / text.removeprefix("gitdir:").strip()).resolve()
    common_file = git_dir / "commondir"
    try:
        common = (git_dir / common_file.read_text().strip()).resolve() if common_file.is_file() else git_dir
    except (OSError, UnicodeDecodeError):
        common = git_dir
    dirs = [common] if common == git_dir or common in git_dir.parents else [common, git_dir]
    return [d for d in dirs if d.is_dir()]


def _hide_credentials(home: Path, worktree: Path) -> list[str]:
    """Mount empty things over credential files and directories under the real HOME."""
    hidden: list[str] = []
    for name in _CREDENTIAL_PATHS:
        path = home / name
        if path == worktree or path in worktree.parents or not path.exists():
            continue
        if path.is_dir():
            hidden += ["--tmpfs", str(path)]
        else:
            hidden += ["--ro-bind", "/dev/null", str(path)]
    return hidden


class _Capture:
    """Keeps the first and last `limit / 2` bytes of a stream and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.half = max(limit // 2, 1)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    async def drain(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(1 << 18):
            self.feed(chunk)

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.half - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        self.tail += chunk
        if len(self.tail) > 4 * self.half:      # trim in batches: amortised O(1) per byte
            del self.tail[:-self.half]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + self.half

    def text(self) -> str:
        if not self.truncated:
            return (bytes(self.head) + bytes(self.tail)).decode(errors="replace")
        tail = bytes(self.tail[-self.half:])
        cut = self.total - len(self.head) - len(tail)
        return (self.head.decode(errors="replace")
                + f"\n[... cut: {cut} bytes of output not shown ...]\n"
                + tail.decode(errors="replace"))


def _kill_group(process: asyncio.subprocess.Process) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _mode(sandbox: bool | None) -> SandboxMode:
    if sandbox is False:
        return "none"
    if sandbox_available():
        return "bwrap"
    if sandbox:
        raise CommandError("a sandbox was required but bubblewrap (bwrap) is not usable here")
    return "none"


def _check_program(argv: list[str], env: dict[str, str], cwd: Path) -> None:
    program = argv[0]
    found = (cwd / program).exists() if "/" in program else shutil.which(program, path=env["PATH"])
    if not found:
        raise CommandError(f"command not found: {program!r}")


async def run_command(command: str | Sequence[str], cwd: Path, *, timeout: float = DEFAULT_TIMEOUT,
                      sandbox: bool | None = None, limit: int = MAX_OUTPUT) -> CommandResult:
    """Run `command` in `cwd`; `sandbox`: None uses bwrap when usable, True requires it, False never.

    Raises `CommandError` when the command cannot start; everything the command
    itself does (failing, hanging, flooding) is reported in the result.
    """
    argv = to_argv(command)
    cwd = Path(cwd).resolve()
    if _mode(sandbox) == "bwrap":
        env = safe_environment(SANDBOX_HOME, "/tmp")
        _check_program(argv, env, cwd)
        return await _supervise(argv, bwrap_argv(cwd, argv), cwd, env, timeout, limit, "bwrap")
    scratch = Path(tempfile.mkdtemp(prefix="osqr-cmd-"))
    try:
        (scratch / "home").mkdir()
        (scratch / "tmp").mkdir()
        env = safe_environment(str(scratch / "home"), str(scratch / "tmp"))
        _check_program(argv, env, cwd)
        return await _supervise(argv, argv, cwd, env, timeout, limit, "none")
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, ignore_errors=True)


async def _supervise(argv: list[str], full: list[str], cwd: Path, env: dict[str, str], timeout: float,
                     limit: int, mode: SandboxMode) -> CommandResult:
    """Start the process in its own session, drain its output, kill the group on timeout or cancel."""
    started = time.monotonic()
    try:
        process = await asyncio.create_subprocess_exec(
            *full, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        raise CommandError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from None
    capture = _Capture(limit)
    assert process.stdout is not None

    async def finish() -> int:
        await capture.drain(process.stdout)
        return await process.wait()

    waiter = asyncio.ensure_future(finish())
    timed_out = False
    try:
        done, _ = await asyncio.wait({waiter}, timeout=max(timeout, 0.0))
        if not done:
            timed_out = True
            _kill_group(process)
            done, _ = await asyncio.wait({waiter}, timeout=KILL_GRACE)
    finally:
        if process.returncode is None:
            _kill_group(process)
        if not waiter.done():
            waiter.cancel()
        elif not waiter.cancelled():
            waiter.exception()      # mark it retrieved; the result speaks for the command
    code = process.returncode
    if code is None:
        try:
            code = await asyncio.wait_for(process.wait(), KILL_GRACE)
        except TimeoutError:
            code = None
    return CommandResult(argv, code, capture.text(), time.monotonic() - started, timed_out,
                         capture.truncated, mode, capture.total)
