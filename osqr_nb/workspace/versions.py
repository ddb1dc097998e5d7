"""Version numbers that both sides raised: the merged code is newer than either, so it takes the higher.

Merging a maintenance branch forward (`2.0.1` into `2.1.0.dev0`) changes one line on
both sides, and a line merge can only call it a conflict; the person nearly always
keeps the higher number. Both sides are given that number before they are merged,
so the version line no longer stands in the way of the rest. Only the plainest form
is touched: each of the three versions holds exactly one version literal
(`__version__ = "..."`, `VERSION = "..."`, or `version="..."` in a call such as
`setup()`), all three are PEP 440 versions, and both sides raised it. Anything else
(a side that lowers it, a computed version, `0.6 (dev)`) is left to the merge.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

__all__ = ["VersionAgreement", "agree_on_version"]

VERSION_NAMES = frozenset({"__version__", "VERSION", "version"})
_PLAIN_STRING = re.compile(r"""^[uU]?(['"])([^'"\\\n]*)\1$""")


@dataclass(frozen=True)
class VersionAgreement:
    """Ours and theirs with one version number; `note` says what was chosen (None: nothing)."""

    ours: str
    theirs: str
    note: str | None = None


@dataclass(frozen=True)
class _Literal:
    start: int   # character offsets of the string's content
    end: int
    value: str


def agree_on_version(base: str, ours: str, theirs: str) -> VersionAgreement:
    """Give both sides the higher version where both raised it; otherwise change nothing."""
    unchanged = VersionAgreement(ours, theirs)
    literals = [_version_literal(text) for text in (base, ours, theirs)]
    if None in literals:
        return unchanged
    b, o, t = literals
    try:
        old, mine, yours = (Version(literal.value) for literal in literals)
    except InvalidVersion:
        return unchanged
    if o.value == t.value or not (mine > old and yours > old) or mine == yours:
        return unchanged
    chosen = o.value if mine > yours else t.value
    note = (f"both sides raise the version from {b.value}: {o.value} (ours), {t.value} (theirs); "
            f"the merge keeps the higher, {chosen}")
    return VersionAgreement(_put(ours, o, chosen), _put(theirs, t, chosen), note)


def _put(text: str, literal: _Literal, value: str) -> str:
    return text[:literal.start] + value + text[literal.end:]


def _version_literal(text: str) -> _Literal | None:
    """The one plain version string of a file, or None if it has none, several, or no parse."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    nodes = [node for node in ast.walk(tree) if _is_version_string(node)]
    found = [_literal(text, node.value) for node in nodes]
    return found[0] if len(found) == 1 and found[0] is not None else None


def _is_version_string(node: ast.AST) -> bool:
    if isinstance(node, ast.Assign):
        named = len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) and node.targets[0].id in VERSION_NAMES
    elif isinstance(node, ast.keyword):
        named = node.arg == "version"
    else:
        return False
    return named and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _literal(text: str, node: ast.Constant) -> _Literal | None:
    if node.lineno != node.end_lineno:
        return None
    line_start = _line_starts(text)[node.lineno - 1]
    line_end = text.find("\n", line_start)
    line = text[line_start:line_end if line_end >= 0 else len(text)]
    encoded = line.encode()
    start = len(encoded[:node.col_offset].decode())      # ast counts columns in UTF-8 bytes
    end = len(encoded[:node.end_col_offset].decode())
    match = _PLAIN_STRING.match(line[start:end])
    if not match:
        return None
    content = line_start + start + match.start(2)
    return _Literal(content, content + len(match.group(2)), match.group(2))


def _line_starts(text: str) -> list[int]:
    starts = [0]
    for line in text.split("\n"):
        starts.append(starts[-1] + len(line) + 1)
    return starts
