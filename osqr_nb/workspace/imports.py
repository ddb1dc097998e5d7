"""Imports across files: a clean merge must not leave an import pointing at a name that is gone.

git merges one file at a time, so a task that renames `helper` in utils.py and a task
that adds `from utils import helper` to api.py merge without a conflict, and the
result fails at import. After each merge the Integrator reads the imports of the
Python files either side changed; an import that resolved in the side that wrote it
(the module is in the repository and defines the name, or has it as a submodule)
but does not in the merged tree is a problem. Modules outside the repository, star
imports and modules with a `__getattr__` cannot be judged and are left alone.

Calls across files are checked the same way: a call that one side added to a function
it imports from another file of the repository, written for the positional parameters
that the other side changed there (`format_response(data, 201)` against the other
side's `format_response(request_id, data, status=200)`), is a problem too, even when it
still fits the parameters by count.
"""

from __future__ import annotations

import ast
import symtable
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import PurePosixPath

from .checks import moved_arguments, positional_parameters

__all__ = ["BrokenCall", "BrokenImport", "Version", "broken_imports", "wanted_by", "wanted_paths"]

Version = dict[str, "str | None"]   # path -> text in one version of the tree (None: no such file)
ROOTS = ("", "src/")                # where absolute imports are looked up (flat and src layouts)


@dataclass(frozen=True)
class BrokenImport:
    file: str
    line: int
    module: str
    name: str
    gone: str   # what is missing: the name, or the whole module

    def describe(self) -> str:
        return f"{self.file} line {self.line} imports {self.name!r} from {self.module}, but {self.gone}"


@dataclass(frozen=True)
class BrokenCall:
    file: str
    line: int
    call: str
    module_file: str
    before: tuple[str, ...]   # the parameters the call was written for
    after: tuple[str, ...]    # the parameters it meets in the merged tree

    def describe(self) -> str:
        return (f"{self.file} line {self.line} calls {self.call}, written for the parameters "
                f"({', '.join(self.before)}), but the other side changed them in {self.module_file} "
                f"to ({', '.join(self.after)})")


@dataclass(frozen=True)
class _Import:
    line: int = field(compare=False)
    module: str                      # as written, with its leading dots
    name: str
    candidates: tuple[str, ...]      # files that may hold the module, most likely first


def wanted_paths(path: str, text: str | None) -> set[str]:
    """The files needed to judge the imports of one file: the modules and submodules it may name."""
    wanted: set[str] = set()
    for imported in _imports(path, text):
        wanted.update(imported.candidates)
        wanted.update(_submodule_paths(imported))
    return wanted


def wanted_by(files: list[str], versions: list[Version]) -> set[str]:
    """`wanted_paths` of each of `files` in each version: what to read to judge their imports."""
    return {path for version in versions for name in files for path in wanted_paths(name, version.get(name))}


def broken_imports(files: list[str], merged: Version, sides: list[Version]) -> list[BrokenImport | BrokenCall]:
    """Imports in `files` that resolve in the merged tree no longer, though they did in every side
    that wrote them (a side's own broken import is not the merge's doing); then calls that one
    side added to an imported function whose positional parameters the other side changed."""
    broken: list[BrokenImport | BrokenCall] = []
    for path in files:
        written = [set(_imports(path, side.get(path))) for side in sides]
        for imported in _imports(path, merged.get(path)):
            found = [_resolves(imported, side) for side, has in zip(sides, written) if imported in has]
            if True in found and False not in found and _resolves(imported, merged, gone_is_false=True) is False:
                broken.append(_broken(path, imported, merged))
    if len(sides) == 2:
        broken += [call for path in files for call in _calls_for_old_parameters(path, merged, sides)]
    return broken


def _calls_for_old_parameters(path: str, merged: Version, sides: list[Version]) -> list[BrokenCall]:
    """Calls in the merged `path` that one side has and the other has not (so one side wrote them),
    to a function of another file whose positional parameters differ between the sides, where the
    merged tree has the other side's parameters and the call's arguments land elsewhere in them."""
    found = []
    for adder, other in (sides, sides[::-1]):
        written_here = Counter(code for _, code, _ in _imported_calls(path, adder.get(path)))
        written_there = Counter(code for _, code, _ in _imported_calls(path, other.get(path)))
        for imported, code, call in _imported_calls(path, merged.get(path)):
            if written_here[code] <= written_there[code]:
                continue
            module = _module_file(imported, merged)
            if module is None or module == path or any(_module_file(imported, v) != module for v in sides):
                continue
            targets = [_function(version.get(module), imported.name) for version in (adder, other, merged)]
            if None in targets:
                continue
            written, changed, now = (positional_parameters(*target) for target in targets)
            if written != changed and now == changed and moved_arguments(call, written, now):
                found.append(BrokenCall(path, call.lineno, code, module, written, now))
    return found


@lru_cache(maxsize=8)
def _tree(text: str | None) -> ast.Module | None:
    """A file's syntax tree, parsed once for every question asked of it here (a parse of a
    large module holds the GIL, and so the kernel's loop, for milliseconds; the same text
    was parsed four times). Nothing here changes a tree."""
    if text is None:
        return None
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError):
        return None


@lru_cache(maxsize=1024)
def _imported_calls(path: str, text: str | None) -> tuple[tuple[_Import, str, ast.Call], ...]:
    """(import, call as code, call) for each call of a name the file imports with `from ... import`."""
    tree = _tree(text) if path.endswith((".py", ".pyi")) else None
    if tree is None:
        return ()
    bound = {}
    for node in _statements(tree.body, into_functions=False):
        if isinstance(node, ast.ImportFrom):
            candidates = _module_paths(path, node.level, node.module)
            dots = "." * node.level + (node.module or "")
            for alias in node.names:
                bound[alias.asname or alias.name] = _Import(node.lineno, dots, alias.name, candidates)
    return tuple((bound[node.func.id], ast.unparse(node), node) for node in ast.walk(tree)
                 if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in bound)


@lru_cache(maxsize=256)
def _function(text: str | None, name: str) -> tuple[ast.AST, bool] | None:
    """The one module-level function `name` of a file (a class: its `__init__`, whose first
    parameter the call does not fill), or None."""
    tree = _tree(text)
    if tree is None:
        return None
    found = [s for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
             and s.name == name]
    if len(found) != 1:
        return None
    if not isinstance(found[0], ast.ClassDef):
        return found[0], False
    inits = [s for s in found[0].body if isinstance(s, ast.FunctionDef) and s.name == "__init__"]
    return (inits[0], True) if len(inits) == 1 else None


def _broken(path: str, imported: _Import, merged: Version) -> BrokenImport:
    module_file = _module_file(imported, merged)
    gone = f"{module_file} no longer defines it" if module_file else f"{imported.module} no longer exists"
    return BrokenImport(path, imported.line, imported.module, imported.name, gone)


def _module_file(imported: _Import, version: Version) -> str | None:
    return next((c for c in imported.candidates if version.get(c) is not None), None)


def _resolves(imported: _Import, version: Version, gone_is_false: bool = False) -> bool | None:
    """True, False, or None where it cannot be known (no such module in the tree: an installed
    package, unless `gone_is_false`, for a tree that a side's module was removed from)."""
    module_file = _module_file(imported, version)
    if module_file is None:
        return False if gone_is_false else None
    if any(version.get(p) is not None for p in _submodule_paths(imported)):
        return True
    return _defines(version[module_file], imported.name)


def _defines(text: str, name: str) -> bool | None:
    names = _module_names(text)
    return None if names is None else name in names


@lru_cache(maxsize=256)
def _module_names(text: str) -> frozenset[str] | None:
    """The names a module binds at module level, or None where that cannot be known."""
    tree = _tree(text)
    if tree is None:
        return None
    try:
        table = symtable.symtable(text, "<module>", "exec")
    except (SyntaxError, ValueError):
        return None
    for stmt in _statements(tree.body, into_functions=False):
        if isinstance(stmt, ast.ImportFrom) and any(alias.name == "*" for alias in stmt.names):
            return None
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == "__getattr__":
            return None
    return frozenset(s.get_name() for s in table.get_symbols()
                     if s.is_assigned() or s.is_imported() or s.is_namespace())


@lru_cache(maxsize=1024)
def _imports(path: str, text: str | None) -> tuple[_Import, ...]:
    tree = _tree(text) if path.endswith((".py", ".pyi")) else None
    if tree is None:
        return ()
    found = []
    for node in _statements(tree.body, into_functions=True, guarded=False):
        if isinstance(node, ast.ImportFrom):
            candidates = _module_paths(path, node.level, node.module)
            dots = "." * node.level + (node.module or "")
            found += [_Import(node.lineno, dots, alias.name, candidates) for alias in node.names if alias.name != "*"]
    return tuple(found)


def _statements(body: list, into_functions: bool, guarded: bool = True):
    """Every statement in a body and the blocks inside it (expressions are not walked: imports
    are statements). Without `into_functions`, only what runs at module level; without
    `guarded`, not the body of a `try` that catches ImportError (an import allowed to fail)."""
    for stmt in body:
        yield stmt
        if not into_functions and isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            block = getattr(stmt, name, None)
            if name == "body" and not guarded and _catches_import_error(stmt):
                continue
            if isinstance(block, list):
                yield from _statements([s for s in block if isinstance(s, (ast.stmt, ast.excepthandler, ast.match_case))],
                                       into_functions, guarded)


_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


def _catches_import_error(stmt) -> bool:
    if not isinstance(stmt, (ast.Try, getattr(ast, "TryStar", ast.Try))):
        return False
    for handler in stmt.handlers:
        caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if handler.type is None or any(getattr(c, "id", getattr(c, "attr", None)) in _IMPORT_ERRORS for c in caught):
            return True
    return False


def _module_paths(path: str, level: int, module: str | None) -> tuple[str, ...]:
    parts = module.split(".") if module else []
    if level:
        folder = PurePosixPath(path).parent
        for _ in range(level - 1):
            folder = folder.parent
        prefixes = [f"{folder}/" if str(folder) != "." else ""]
    else:
        prefixes = list(ROOTS)
    stems = [prefix + "/".join(parts) for prefix in prefixes]
    return tuple(p for stem in stems for p in ((f"{stem}.py", f"{stem}/__init__.py") if parts
                                                 else (f"{stem}__init__.py",)))


def _submodule_paths(imported: _Import) -> list[str]:
    folders = [c[: -len("__init__.py")] for c in imported.candidates if c.endswith("__init__.py")]
    return [p for folder in folders for p in (f"{folder}{imported.name}.py", f"{folder}{imported.name}/__init__.py")]
