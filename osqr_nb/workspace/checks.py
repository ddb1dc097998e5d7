"""Is a clean merge (git's or the semantic merge's) a good merge of one Python file?

A text merge that applies cleanly can still be wrong: it can use a name that one side
renamed, call a function the old way after the other side changed its parameters, or
keep two definitions of one name that the two sides each added (the later one silently
wins). These checks use the standard library's C parser and symbol tables, not libcst:
they run on every clean merge, and libcst's scope analysis is far slower on files of a
thousand lines. Inputs that are not valid Python cannot be judged and pass.
"""

from __future__ import annotations

import ast
import builtins
import symtable
from collections import Counter
from dataclasses import dataclass

__all__ = ["check_merged", "moved_arguments", "positional_parameters"]

# decorators under which one name is rightly defined several times in one body
_REDEFINING = frozenset({"setter", "getter", "deleter", "register", "overload"})

_KNOWN = set(dir(builtins)) | {"__file__", "__path__", "__builtins__", "__annotations__"}


def check_merged(base: str, ours: str, theirs: str, merged: str) -> str | None:
    """Why a merged text is not a safe merge of the three versions, or None if it is.

    The result must parse; no name it uses may have been renamed or removed by one side
    (ours renames `helper`, theirs adds a call to `helper`); no module- or class-level name
    may be defined twice where neither side defines it twice (both add `helper`, at
    different places); and no call that one side added may target a function whose
    positional parameters the other side changed, even where the call still fits them.
    """
    try:
        b, o, t = (_Facts.of(text) for text in (base, ours, theirs))
    except SyntaxError:
        return None
    try:
        m = _Facts.of(merged)
    except SyntaxError as error:
        return f"the result is not valid Python: {error.msg} (line {error.lineno})"
    return (_lost_names(o, t, m) or _lost_members(b, o, t, m) or _doubled_definitions(o, t, m)
            or _broken_calls(b, o, t, m) or _calls_for_old_parameters(b, o, t, m))


@dataclass
class _Facts:
    """What the checks need to know about one version."""

    unresolved: set[str]                 # names used but bound nowhere
    defined: set[str]                    # names bound at module level
    members: set[tuple[str, str]]        # (class, member) pairs
    attributes: Counter                  # `self.name`, `cls.name`, `SomeClass.name` uses
    bad_calls: set[tuple[str, str]]      # (function, call) for calls that do not fit its parameters
    signatures: dict[str, str]           # qualified function name -> its parameters
    definitions: dict[tuple[str, str], list[ast.stmt]]   # (class or "", name) -> its definitions
    functions: dict[str, list]           # qualified function name -> its definitions
    calls: Counter                       # (function, call as code) for calls of this module's functions
    call_nodes: dict[tuple[str, str], tuple[ast.Call, bool]]   # the same -> (the call, on self/cls)

    @classmethod
    def of(cls, text: str) -> _Facts:
        try:
            tree = ast.parse(text)
            table = symtable.symtable(text, "<merge>", "exec")
        except ValueError as error:   # e.g. a NUL byte
            raise SyntaxError(str(error)) from None
        unresolved, defined = _scopes(table)
        unresolved |= _all_entries(tree) - defined
        walker = _Walker({node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)})
        walker.visit(tree)
        signatures = {name: ast.dump(defs[0].args) for name, defs in walker.defs.items()}
        calls = walker.own_calls()
        return cls(unresolved, defined, walker.members, walker.attributes, walker.bad_calls(), signatures,
                   _definitions(tree), walker.defs, Counter(key for key, _ in calls), dict(calls))


def _scopes(module: symtable.SymbolTable) -> tuple[set[str], set[str]]:
    defined = {s.get_name() for s in module.get_symbols() if s.is_assigned() or s.is_imported() or s.is_namespace()}
    referenced, tables = set(), [module]
    while tables:
        table = tables.pop()
        for symbol in table.get_symbols():
            at_module = table is module or symbol.is_global()
            if symbol.is_referenced() and at_module:
                referenced.add(symbol.get_name())
            if symbol.is_declared_global() and symbol.is_assigned():
                defined.add(symbol.get_name())
        tables.extend(table.get_children())
    return referenced - defined - _KNOWN, defined


def _all_entries(tree: ast.Module) -> set[str]:
    entries: set[str] = set()
    for stmt in tree.body:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            value = getattr(stmt, "value", None)
            if isinstance(value, (ast.List, ast.Tuple, ast.Set)):
                entries |= {e.value for e in value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    return entries


class _Walker(ast.NodeVisitor):
    """Class members and their uses, functions and the calls of them. Members count only
    through `self`, `cls`, `super()` or a class of the module, so that `runner.invoke(...)`
    is not taken for a use of this module's `Tests.invoke`."""

    def __init__(self, classes: set[str]) -> None:
        self.receivers = classes | {"self", "cls"}
        self.members: set[tuple[str, str]] = set()
        self.attributes: Counter = Counter()
        self.defs: dict[str, list] = {}
        self.calls: list[tuple[str, ast.Call, bool]] = []   # (function, call, called on self/cls)
        self.path: list[str] = []
        self.classes: list[str] = []

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        qualified = ".".join([*self.path, node.name])
        for stmt in node.body:
            for name in _bound_names(stmt):
                self.members.add((qualified, name))
        self.classes.append(qualified)
        self._inside(node)
        self.classes.pop()

    def visit_FunctionDef(self, node) -> None:
        self.defs.setdefault(".".join([*self.path, node.name]), []).append(node)
        self._inside(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def _inside(self, node) -> None:
        self.path.append(node.name)
        self.generic_visit(node)
        self.path.pop()

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if self._own(node.value):
            self.attributes[node.attr] += 1
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name):
            self.calls.append((func.id, node, False))
        elif self.classes and isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
                and func.value.id in ("self", "cls"):
            self.calls.append((f"{self.classes[-1]}.{func.attr}", node, True))
        self.generic_visit(node)

    def _own(self, receiver: ast.expr) -> bool:
        if isinstance(receiver, ast.Call):   # super().name
            return isinstance(receiver.func, ast.Name) and receiver.func.id == "super"
        return isinstance(receiver, ast.Name) and receiver.id in self.receivers

    def own_calls(self) -> list[tuple[tuple[str, str], tuple[ast.Call, bool]]]:
        """((function, call as code), (call, on self)) for each call of a function of this module."""
        return [((name, ast.unparse(call)), (call, on_self)) for name, call, on_self in self.calls
                if _target(self.defs, name, on_self) is not None]

    def bad_calls(self) -> set[tuple[str, str]]:
        """Calls of a function defined once in this module that cannot bind to its parameters."""
        bad = set()
        for name, call, on_self in self.calls:
            defs = self.defs.get(name, [])
            if len(defs) == 1 and not _fits(call, defs[0], on_self):
                bad.add((name, ast.unparse(call)))
        return bad


def _bound_names(stmt: ast.stmt) -> list[str]:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [stmt.name]
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [getattr(stmt, "target", None)]
    return [t.id for t in targets if isinstance(t, ast.Name)]


def _fits(call: ast.Call, function, on_self: bool) -> bool:
    """Could this call bind to the function's parameters? (Unknown, e.g. with *args: yes.)"""
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return True
    args = function.args
    decorators = {getattr(d, "id", None) for d in function.decorator_list}
    positional = [a.arg for a in (*args.posonlyargs, *args.args)]
    required = len(positional) - len(args.defaults)
    if on_self and "staticmethod" not in decorators and positional:
        positional, required = positional[1:], required - 1
    if len(call.args) > len(positional) and not args.vararg:
        return False
    given = set(positional[: len(call.args)])
    by_keyword = {k.arg for k in call.keywords}
    named = (set(positional) - {a.arg for a in args.posonlyargs}) | {a.arg for a in args.kwonlyargs}
    if given & by_keyword or (not args.kwarg and by_keyword - named):
        return False
    missing = [p for p in positional[:max(required, 0)] if p not in given and p not in by_keyword]
    missing += [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is None and a.arg not in by_keyword]
    return not missing


def _lost_names(o: _Facts, t: _Facts, m: _Facts) -> str | None:
    lost = sorted(m.unresolved - o.unresolved - t.unresolved)
    if not lost:
        return None
    name = lost[0]
    remover = "ours" if name not in o.defined else "theirs" if name not in t.defined else "one side"
    return f"the result uses {name!r}, which {remover} renames or removes"


def _lost_members(b: _Facts, o: _Facts, t: _Facts, m: _Facts) -> str | None:
    """A method or class attribute one side removed, still used as `.name` by new code."""
    merged_members = {name for _, name in m.members}
    for side, label in ((o, "ours"), (t, "theirs")):
        for cls, name in sorted(b.members - side.members):
            if name not in merged_members and m.attributes[name] > side.attributes[name]:
                return f"{label} renames or removes {cls}.{name}, which the result still uses"
    return None


def _broken_calls(b: _Facts, o: _Facts, t: _Facts, m: _Facts) -> str | None:
    """A call that fits neither side's version but fails in the result: one side changed the
    parameters of a function that the other side's new code calls the old way."""
    broken = sorted(m.bad_calls - o.bad_calls - t.bad_calls)
    if not broken:
        return None
    name, call = broken[0]
    changer = next((label for side, label in ((o, "ours"), (t, "theirs"))
                    if side.signatures.get(name) != b.signatures.get(name)), "one side")
    return f"{changer} changes the parameters of {name}(), and the result calls it as {call}"


def _definitions(tree: ast.Module) -> dict[tuple[str, str], list[ast.stmt]]:
    """Each function and class defined directly in the module or a class body, by scope and
    name. Properties' setters, overloads and `register`ed implementations rightly repeat a
    name and are left out."""
    found: dict[tuple[str, str], list[ast.stmt]] = {}
    bodies = [("", tree.body)]
    while bodies:
        scope, body = bodies.pop()
        for stmt in body:
            if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or _redefines(stmt):
                continue
            found.setdefault((scope, stmt.name), []).append(stmt)
            if isinstance(stmt, ast.ClassDef):
                bodies.append((f"{scope}.{stmt.name}".lstrip("."), stmt.body))
    return found


def _redefines(stmt) -> bool:
    for decorator in stmt.decorator_list:
        name = decorator.func if isinstance(decorator, ast.Call) else decorator
        if getattr(name, "attr", getattr(name, "id", None)) in _REDEFINING:
            return True
    return False


def _doubled_definitions(o: _Facts, t: _Facts, m: _Facts) -> str | None:
    """Both sides add one name at different places: git keeps both, and the later one
    silently replaces the earlier (or, with the same body, the file says it twice)."""
    for (scope, name), nodes in sorted(m.definitions.items()):
        sides = max(len(o.definitions.get((scope, name), ())), len(t.definitions.get((scope, name), ())))
        if len(nodes) > max(sides, 1):
            label = f"{scope}.{name}" if scope else name
            if len({ast.dump(node) for node in nodes}) == 1:   # the same code, layout aside
                return f"the result defines {label} twice, the same code both sides added (one copy is enough)"
            return f"the result defines {label} twice, with the different code each side added, and the later one wins"
    return None


def _target(defs: dict[str, list], name: str, on_self: bool) -> tuple[object, bool] | None:
    """The one definition a call of `name` runs (a class: its `__init__`) and whether the
    first parameter is bound by the call's receiver; None if unknown or defined twice."""
    if len(defs.get(name, ())) == 1:
        return defs[name][0], on_self
    if not on_self and len(defs.get(f"{name}.__init__", ())) == 1:
        return defs[f"{name}.__init__"][0], True
    return None


def positional_parameters(function, bound: bool) -> tuple[str, ...]:
    """The names a positional argument can land on, in order (`*args` as `*`); without the first
    when the receiver fills it (`self.m(...)`, a class's `__init__`), unless a staticmethod."""
    args = function.args
    names = [a.arg for a in (*args.posonlyargs, *args.args)]
    static = any(getattr(d, "id", None) == "staticmethod" for d in function.decorator_list)
    if bound and not static and names:
        names = names[1:]
    return (*names, "*") if args.vararg else tuple(names)


def moved_arguments(call: ast.Call, before: tuple[str, ...], after: tuple[str, ...]) -> bool:
    """Do this call's positional arguments land on other parameters under `after`?"""
    if not call.args:
        return False
    if any(isinstance(a, ast.Starred) for a in call.args):
        return before != after
    return before[:len(call.args)] != after[:len(call.args)]


def _calls_for_old_parameters(b: _Facts, o: _Facts, t: _Facts, m: _Facts) -> str | None:
    """A call one side added, written for the parameters the other side changed. A count that
    no longer fits is caught by `_broken_calls`; this catches the call that still fits but
    means something else: `format_response(data, 201)` against `(request_id, data, status=200)`."""
    for adder, other, added_by, changed_by in ((o, t, "ours", "theirs"), (t, o, "theirs", "ours")):
        for key in sorted(k for k, n in adder.calls.items() if n > b.calls[k] and n > other.calls[k] and m.calls[k]):
            name, code = key
            call, on_self = m.call_nodes[key]
            found = [_target(facts.functions, name, on_self) for facts in (b, adder, other, m)]
            if None in found:
                continue
            old, written, changed, now = (positional_parameters(f, bound) for f, bound in found)
            if written == old and changed != old and moved_arguments(call, old, now):
                return (f"{changed_by} changes the parameters of {name}() from ({', '.join(old)}) to "
                        f"({', '.join(now)}), and {added_by} adds the call {code}, written for the old ones")
    return None
