"""run_command: the project's own tests, linters and build, run for an agent.

A command runs with `asyncio.create_subprocess_exec` (never blocking the
kernel) in the task's worktree, with a timeout that kills its whole process
group, output capped while the pipe is still drained (a command printing
gigabytes neither hangs nor fills memory), and an allow-listed environment:
PATH, LANG, LC_ALL, TERM, VIRTUAL_ENV, a throwaway HOME and TMPDIR, and only
the variables the person names in `OSQR.command_env`.

An agent is a stranger with a shell, so every command runs in a sandbox that
shows it only what a build needs. With bubblewrap (`bwrap`, Linux):

- an empty root; the system directories (/usr, /bin, /lib*, /sbin, /etc
  minus its secrets: shadow files, sudoers, ssh host keys, /etc/environment,
  system git/pip/npm configs) and the Python the kernel runs (its prefixes,
  site-packages and virtualenv, nothing else of HOME) read-only;
- the worktree read-write, at its real path. The parents bwrap creates for it
  are empty: the user's repository (which holds the worktrees under
  `.osqr/worktrees/`), its untracked files, the event log and other tasks'
  worktrees are not there;
- the repository's git directories read-only (objects, refs; `.git/config`
  replaced by its [core] and [extensions] sections, so remote URLs with tokens
  and credential helpers stay out): `git diff/log/status` work, `git commit`
  fails with a read-only file system (committing is the orchestrator's job);
- a fresh /proc (its own process namespace: no other process's environment,
  and a timeout kills every descendant), a minimal /dev, a private /tmp that
  holds HOME, no network (`--unshare-all`), no capabilities, no terminal.

On macOS the same profile is written for Seatbelt (`sandbox-exec`); it is
untested. Where neither is usable, `run_command` refuses, naming the install
line, unless the person opted in with `OSQR.unsandboxed_commands = True`
(then commands run unconfined and tiers 1-2 ask before each). The result says
which mode ran so the run can log it.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import shlex
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

DEFAULT_TIMEOUT = 120.0     # seconds
MAX_TIMEOUT = 600.0         # what a model may ask for at most
MAX_OUTPUT = 20_000         # bytes of output kept (head and tail)
KILL_GRACE = 2.0            # seconds to wait for the pipe to close after a kill
SANDBOX_HOME = "/tmp/home"  # HOME inside the sandbox, on its private /tmp
INSTALL_LINE = "apt-get install bubblewrap"

SandboxMode = Literal["bwrap", "seatbelt", "none"]

_PASSED_ENV = ("LANG", "LC_ALL", "TERM")
_SHELL_OPERATORS = set("|&;<>()")
# Read-only from the host; a top-level symlink (/bin -> usr/bin) is recreated as a symlink.
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
# Under /etc: credentials and secrets rather than configuration a build needs.
_ETC_SECRETS = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers",
                "/etc/sudoers.d", "/etc/ssh", "/etc/ssl/private", "/etc/security/opasswd",
                "/etc/environment", "/etc/gitconfig", "/etc/pip.conf", "/etc/npmrc", "/etc/docker",
                "/etc/NetworkManager/system-connections", "/etc/wpa_supplicant", "/etc/credstore",
                "/etc/credstore.encrypted")
# Every namespace (no network, own processes), no capabilities (root could otherwise remount),
# no controlling terminal (TIOCSTI), killed with the kernel, no inherited environment.
_ISOLATION = ("--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--clearenv")
# Sections of a repository's git config a read-only git needs; the rest (remotes with tokens,
# credential helpers, http.extraheader, includes) stays out of the sandbox.
_GIT_SECTIONS = ("core", "extensions")
_GIT_DROPPED_KEYS = ("sshcommand", "askpass", "editor", "pager")


class CommandError(ValueError):
    """A command that cannot be started (empty, bad quoting, unknown program, no sandbox here)."""


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


def sandbox_kind() -> SandboxMode:
    """The sandbox this machine offers now: bwrap on PATH that can make namespaces, Seatbelt on macOS.

    Looked up on every call (PATH may change); probing a given bwrap is done once.
    """
    if sys.platform == "darwin":
        return "seatbelt" if os.path.exists("/usr/bin/sandbox-exec") else "none"
    found = shutil.which("bwrap")
    return "bwrap" if found is not None and _bwrap_works(found) else "none"


def sandbox_available() -> bool:
    return sandbox_kind() != "none"


@functools.cache
def _bwrap_works(bwrap: str) -> bool:
    """Containers may forbid the namespaces bwrap needs; a few milliseconds, once per binary."""
    probe = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", *_ISOLATION, "true"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def unsandboxed_refusal() -> str | None:
    """Why a command may not run without a sandbox here, or None when it may (the person opted in)."""
    from ..config import settings
    if settings().unsandboxed_commands:
        return None
    return ("run_command needs a sandbox, and bubblewrap (bwrap) is not usable here: install it "
            f"(`{INSTALL_LINE}`), or let commands run unconfined with "
            "`%config OSQR.unsandboxed_commands = True` (tiers 1-2 then ask before each command)")


def extra_environment(source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables `OSQR.command_env` adds: a list of names copied from the kernel's
    environment (absent ones skipped), or a dict of name -> value."""
    from ..config import settings
    source = os.environ if source is None else source
    wanted = settings().command_env
    if isinstance(wanted, Mapping):
        return {str(k): str(v) for k, v in wanted.items()}
    return {name: source[name] for name in wanted if name in source}


def safe_environment(home: str, tmp: str, source: Mapping[str, str] | None = None,
                     extra: Mapping[str, str] | None = None, path: str | None = None) -> dict[str, str]:
    """An allow-list, not a filter: whatever secret the kernel's environment holds, under
    whatever name, stays out unless the person names it in `OSQR.command_env`.

    HOME and TMPDIR point to throwaway directories, so tools find no stored
    credentials and leave nothing behind. Python writes no bytecode cache: in the
    worktree (`__pycache__/`) it would be committed with the task's work (a cache
    elsewhere, PYTHONPYCACHEPREFIX, would miss the installed packages' own and make
    `import pandas` 3.5 times slower in every command).
    """
    source = os.environ if source is None else source
    env = {k: source[k] for k in _PASSED_ENV if k in source}
    if source.get("VIRTUAL_ENV"):
        env["VIRTUAL_ENV"] = source["VIRTUAL_ENV"]
    env["PATH"] = path or source.get("PATH") or os.defpath
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
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


def toolchain_dirs(worktree: Path) -> list[Path]:
    """The Python the kernel runs (prefixes, site-packages, virtualenv), outside the system dirs.

    Exactly these directories, never a parent: with pyenv the interpreter lives in
    ~/.pyenv/versions/X, and the rest of HOME must stay out. A directory that is
    HOME, `/` or holds the worktree is never bound.
    """
    candidates = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                  os.path.dirname(os.path.realpath(sys.executable)), *site.getsitepackages(),
                  os.environ.get("VIRTUAL_ENV") or ""}
    if site.ENABLE_USER_SITE:
        candidates.add(site.getusersitepackages())
    home = Path.home().resolve()
    real = sorted({Path(c).resolve() for c in candidates if c and os.path.isdir(c)})
    unsafe = {Path("/"), home, *home.parents, worktree, *worktree.parents}
    kept: list[Path] = []
    for path in real:
        if path in unsafe or _under_system(path) or any(k == path or k in path.parents for k in kept):
            continue
        kept.append(path)
    return kept


def _under_system(path: Path) -> bool:
    return any(path == root or root in path.parents for root in _system_roots())


@functools.cache
def _system_roots() -> tuple[Path, ...]:
    return tuple(Path(d).resolve() for d in _SYSTEM_DIRS if os.path.isdir(d))


def sandbox_path(kernel_path: str, visible: Sequence[Path]) -> str:
    """PATH inside the sandbox: the kernel's interpreter first (`python` is the one the project's
    packages are installed for), then the kernel's PATH entries the sandbox can see."""
    entries = [os.path.dirname(sys.executable), *kernel_path.split(os.pathsep)]
    kept: list[str] = []
    for entry in entries:
        resolved = Path(entry).resolve() if entry else None
        if resolved is None or entry in kept:
            continue
        if _under_system(resolved) or any(v == resolved or v in resolved.parents for v in visible):
            kept.append(entry)
    return os.pathsep.join(kept)


def bwrap_argv(worktree: Path, argv: list[str], env: Mapping[str, str], scratch: Path,
               bwrap: str = "bwrap") -> list[str]:
    """The bubblewrap wrapping of `argv`: an empty root holding only what a build needs.

    Mounts stack in order: the system and the toolchain read-only, then the git
    directories read-only, then the worktree writable, its `.git` read-only again,
    and the sanitized git config over the real one.
    """
    wrapped = [bwrap, *_ISOLATION, *_system_mounts(scratch), "--proc", "/proc", "--dev", "/dev",
               "--tmpfs", "/tmp", "--tmpfs", "/var/tmp", "--dir", SANDBOX_HOME]
    for tool_dir in toolchain_dirs(worktree):
        wrapped += ["--ro-bind", str(tool_dir), str(tool_dir)]
    git_dirs = _git_dirs(worktree)
    for git_dir in git_dirs:
        wrapped += ["--ro-bind", str(git_dir), str(git_dir)]
    wrapped += ["--bind", str(worktree), str(worktree)]
    if (worktree / ".git").exists():
        wrapped += ["--ro-bind", str(worktree / ".git"), str(worktree / ".git")]
    common = git_dirs[0] if git_dirs else worktree / ".git"
    config = _sanitized_git_config(common / "config", scratch)
    if config is not None:
        wrapped += ["--ro-bind", str(config), str(common / "config")]
    for name, value in env.items():
        wrapped += ["--setenv", name, value]
    return [*wrapped, "--remount-ro", "/", "--chdir", str(worktree), "--", *argv]


def _system_mounts(scratch: Path) -> list[str]:
    """/usr, /etc and friends read-only (symlinks kept as symlinks); /etc's secrets replaced by
    empty ones (an empty file, not /dev/null: bind mounts are nodev, so a device would not open)."""
    empty = scratch / "empty"
    empty.touch()
    mounts: list[str] = []
    for path in _SYSTEM_DIRS:
        if os.path.islink(path):
            mounts += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            mounts += ["--ro-bind", path, path]
    for secret in _ETC_SECRETS:
        if os.path.isdir(secret) and not os.path.islink(secret):
            mounts += ["--tmpfs", secret]
        elif os.path.lexists(secret):
            mounts += ["--ro-bind", str(empty), secret]
    return mounts


def _git_dirs(worktree: Path) -> list[Path]:
    """The repository directories a worktree's `.git` file points to (the common dir first),
    so git can read objects and refs; not the repository's working files."""
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


def _sanitized_git_config(config: Path, scratch: Path) -> Path | None:
    """A copy of a git config holding only [core] and [extensions] (minus programs), written to
    `scratch`: what read-only git needs, without remotes' tokens or credential helpers."""
    try:
        lines = config.read_text(errors="replace").splitlines()
    except OSError:
        return None
    kept, keep = [], False
    for line in lines:
        header = re.match(r"\s*\[\s*([A-Za-z0-9.-]+)", line)
        if header:
            keep = header.group(1).lower() in _GIT_SECTIONS and "]" in line and \
                not line.split("]", 1)[1].strip()
        key = line.split("=", 1)[0].strip().lower()
        if keep and (header or key not in _GIT_DROPPED_KEYS):
            kept.append(line)
    target = scratch / "gitconfig"
    target.write_text("\n".join(kept) + "\n")
    return target


def seatbelt_profile() -> str:
    """The same confinement for macOS's `sandbox-exec` (as Codex CLI does). UNTESTED: no macOS here.

    Deny by default; read the system, the toolchain, the git dirs and the worktree;
    write the worktree (not its .git) and the scratch dir; no network. Seatbelt cannot
    mount a sanitized copy over `.git/config`, so there the repository's config (remote
    URLs included) stays readable; HOME is the scratch dir's, the real one unreadable.
    """
    return """(version 1)
(deny default)
(allow process-exec)
(allow process-fork)
(allow signal (target same-sandbox))
(allow process-info* (target same-sandbox))
(allow sysctl-read)
(allow ipc-posix-sem)
(allow mach-lookup (global-name "com.apple.system.opendirectoryd.libinfo")
                   (global-name "com.apple.system.logger") (global-name "com.apple.SystemConfiguration.configd"))
(allow file-read-metadata)
(allow file-read*
  (literal "/") (subpath "/usr") (subpath "/bin") (subpath "/sbin") (subpath "/System")
  (subpath "/Library/Developer/CommandLineTools") (subpath "/Applications/Xcode.app")
  (subpath "/opt/homebrew") (subpath "/dev")
  (require-all (subpath "/private/etc") (require-not (literal "/private/etc/master.passwd"))
               (require-not (subpath "/private/etc/ssh")) (require-not (literal "/private/etc/sudoers")))
  (subpath (param "WORKTREE")) (subpath (param "SCRATCH"))
  (subpath (param "TOOLCHAIN_0")) (subpath (param "TOOLCHAIN_1")) (subpath (param "TOOLCHAIN_2"))
  (subpath (param "GIT_0")) (subpath (param "GIT_1")))
(allow file-write*
  (require-all (subpath (param "WORKTREE")) (require-not (subpath (param "WORKTREE_GIT"))))
  (subpath (param "SCRATCH"))
  (literal "/dev/null") (literal "/dev/zero") (literal "/dev/tty"))
"""


def seatbelt_argv(worktree: Path, argv: list[str], scratch: Path) -> list[str]:
    """`sandbox-exec` with the profile's parameters; unused slots point at the scratch dir."""
    tools = [str(p) for p in toolchain_dirs(worktree)][:3]
    gits = [str(p) for p in _git_dirs(worktree)][:2]
    params = {"WORKTREE": str(worktree), "WORKTREE_GIT": str(worktree / ".git"), "SCRATCH": str(scratch),
              **{f"TOOLCHAIN_{i}": (tools[i] if i < len(tools) else str(scratch)) for i in range(3)},
              **{f"GIT_{i}": (gits[i] if i < len(gits) else str(scratch)) for i in range(2)}}
    return ["/usr/bin/sandbox-exec", "-p", seatbelt_profile(),
            *[f"-D{k}={v}" for k, v in params.items()], "--", *argv]


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
    """None: the machine's sandbox, else unconfined only if the person opted in; True: a sandbox
    or an error; False: never (for code that chose so explicitly, not for agents)."""
    if sandbox is False:
        return "none"
    kind = sandbox_kind()
    if kind != "none":
        return kind
    if sandbox:
        raise CommandError(f"a sandbox was required but bubblewrap (bwrap) is not usable here; {INSTALL_LINE}")
    refusal = unsandboxed_refusal()
    if refusal is not None:
        raise CommandError(refusal)
    return "none"


def _check_program(argv: list[str], env: dict[str, str], cwd: Path) -> None:
    program = argv[0]
    found = (cwd / program).exists() if "/" in program else shutil.which(program, path=env["PATH"])
    if not found:
        raise CommandError(f"command not found: {program!r}")


async def run_command(command: str | Sequence[str], cwd: Path, *, timeout: float = DEFAULT_TIMEOUT,
                      sandbox: bool | None = None, limit: int = MAX_OUTPUT) -> CommandResult:
    """Run `command` in `cwd`; `sandbox`: None uses the machine's sandbox (or refuses without one,
    unless OSQR.unsandboxed_commands), True requires it, False never uses it.

    Raises `CommandError` when the command cannot start; everything the command
    itself does (failing, hanging, flooding) is reported in the result.
    """
    argv = to_argv(command)
    cwd = Path(cwd).resolve()
    mode = _mode(sandbox)
    scratch = Path(tempfile.mkdtemp(prefix="osqr-cmd-")).resolve()
    try:
        full, env = _prepared(mode, argv, cwd, scratch)
        return await _supervise(argv, full, cwd, env, timeout, limit, mode)
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, ignore_errors=True)


def _prepared(mode: SandboxMode, argv: list[str], cwd: Path, scratch: Path) -> tuple[list[str], dict[str, str]]:
    """The full argv and the environment to start it with, for this mode."""
    extra = extra_environment()
    if mode == "bwrap":
        kernel_path = extra.pop("PATH", None) or os.environ.get("PATH", "")
        env = safe_environment(SANDBOX_HOME, "/tmp", extra=extra,
                               path=sandbox_path(kernel_path, toolchain_dirs(cwd)))
        _check_program(argv, env, cwd)
        return bwrap_argv(cwd, argv, env, scratch, shutil.which("bwrap") or "bwrap"), {}
    (scratch / "home").mkdir()
    (scratch / "tmp").mkdir()
    env = safe_environment(str(scratch / "home"), str(scratch / "tmp"), extra=extra)
    _check_program(argv, env, cwd)
    if mode == "seatbelt":
        return seatbelt_argv(cwd, argv, scratch), env
    return argv, env


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
