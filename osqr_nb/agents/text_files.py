"""Reading and writing a worktree's text files within bounds: a file opened never blocks (a
FIFO swapped in for it), lines are counted a chunk at a time (one line may be a gigabyte),
a long line is cut and says so, and a file is replaced whole or not at all, never through a
hard link that leads out of the worktree. Each limit's error tells the model what to do
instead.
"""

from __future__ import annotations

import codecs
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from .tool_calls import MAX_RESULT, ToolError, bounded

MAX_LINE_BYTES = 2**20       # read_file reads at most this much of one line
MAX_SKIP_BYTES = 16 * 2**20  # read_file counts lines this far into a file, no further
CHUNK = 2**20               # bytes read at a time when counting lines


def _open_regular(path: Path) -> Any:
    """A regular file opened for binary reading; never blocks on a FIFO swapped in for it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(0, "not a regular file", str(path))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _encoded(content: str, argument: str = "content") -> bytes:
    """The UTF-8 bytes to write, encoded before the file is touched (so a bad character leaves no
    half-written file)."""
    try:
        return content.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ToolError(f"{argument} holds {exc.object[exc.start:exc.end]!r} at character {exc.start}, "
                        "a lone surrogate (half of a UTF-16 pair) that cannot be written as UTF-8; "
                        "remove it") from None


def _replace(target: Path, data: bytes) -> None:
    """Write a new file exclusively, an existing one through a temporary file and a rename.

    Either way a hard link to a file outside the worktree is never written through.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        with open(target, "xb") as handle:
            handle.write(data)
        return
    mode = target.stat().st_mode & 0o7777
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name[:200]}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _skip_lines(handle: Any, count: int, path: str) -> int:
    """Move past `count` lines, a chunk at a time (one line may be a gigabyte); returns how many
    lines were passed, fewer than `count` at the end of the file."""
    passed = 0
    last = b""
    while passed < count:
        start = handle.tell()
        if start > MAX_SKIP_BYTES:
            raise ToolError(f"line {count + 1} of {path!r} lies beyond the first {MAX_SKIP_BYTES // 2**20} MiB, "
                            "as far as read_file counts lines; find what you need with search, or print the "
                            f"lines with run_command (e.g. sed -n '{count + 1},+99p' {path})")
        chunk = handle.read(CHUNK)
        if not chunk:
            return passed + (1 if last and last != b"\n" else 0)
        last = chunk[-1:]
        newlines = chunk.count(b"\n")
        if newlines < count - passed:
            passed += newlines
            continue
        handle.seek(start + _after_newline(chunk, count - passed))
        return count
    return passed


def _after_newline(chunk: bytes, n: int) -> int:
    """The index just past the n-th newline of chunk, by bisection: counting is C-fast, splitting
    a chunk of a million empty lines is not."""
    low, high = 0, len(chunk)
    while low < high:
        middle = (low + high) // 2
        if chunk.count(b"\n", 0, middle) >= n:
            high = middle
        else:
            low = middle + 1
    return low


def _decoded(raw: bytes, path: str, number: int) -> str:
    if b"\0" in raw:
        raise ToolError(f"{path!r} is not a text file (line {number} holds NUL bytes)")
    whole = raw.endswith(b"\n") or len(raw) < MAX_LINE_BYTES
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(raw, final=whole)
    except UnicodeDecodeError:
        raise ToolError(f"{path!r} is not a text file (line {number} is not UTF-8)") from None
    return text[:-2] + "\n" if text.endswith("\r\n") else text


def _line_window(handle: Any, path: str, offset: int, limit: int | None) -> str:
    """Lines from `offset` while they fit in MAX_RESULT; a marker names the next offset."""
    shown: list[str] = []
    size = 0
    number = offset
    while limit is None or number < offset + limit:
        start = handle.tell()
        raw = handle.readline(MAX_LINE_BYTES)
        if not raw:
            break
        if b"\0" in raw and shown:         # binary from here on: show the text before it
            handle.seek(start)
            break
        text = _decoded(raw, path, number)
        if size + len(text) > MAX_RESULT:
            if not shown:                  # one line longer than a whole result
                return _long_line(text, raw, number)
            handle.seek(start)
            break
        shown.append(text)
        size += len(text)
        number += 1
    text = "".join(shown)
    if handle.peek(1):
        text += ("" if text.endswith("\n") else "\n") + _read_on(handle, number)
    return text


def _long_line(text: str, raw: bytes, number: int) -> str:
    if raw.endswith(b"\n") or len(raw) < MAX_LINE_BYTES:
        head = bounded(text)
    else:
        head = text[:MAX_RESULT] + f"\n[... cut: the line goes on for more than {MAX_LINE_BYTES:,} bytes]"
    return head + f"\n[... line {number} cut; read on with offset={number + 1}]"


def _read_on(handle: Any, number: int) -> str:
    """The marker after a window: which lines follow, counted when that is cheap."""
    size = os.fstat(handle.fileno()).st_size
    if size - handle.tell() > MAX_SKIP_BYTES:
        return (f"[... lines from {number} on not shown (the file has {size:,} bytes); "
                f"read on with offset={number}]")
    last = number - 1 + _lines_left(handle)
    return f"[... lines {number}-{last} of {last} not shown; read on with offset={number}]"


def _lines_left(handle: Any) -> int:
    count = 0
    last = b""
    while chunk := handle.read(CHUNK):
        count += chunk.count(b"\n")
        last = chunk[-1:]
    return count + (1 if last and last != b"\n" else 0)


def _near_miss(text: str, old: str) -> str:
    stripped = old.strip()
    if stripped and stripped != old and stripped in text:
        return " (it occurs when leading and trailing whitespace is ignored)"
    if old.lower() in text.lower():
        return " (it occurs with different upper and lower case)"
    return ""
