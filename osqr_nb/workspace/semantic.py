"""Python-aware three-way merge: combine edits that touch different definitions.

git merges lines, so two agents that each append a function to one file touch
the same lines and conflict although their work is independent. Here the three
versions are parsed with libcst (which keeps every comment and blank line), the
statements of the module and of class bodies are keyed by what they define, and
the versions are merged key by key: a definition changed on one side only takes
that side, imports and literal entries (lists, dicts, sets, `__all__`) are
combined element by element, and a version number both sides raised takes the
higher (`versions.py`). Where both sides add imports, entries or definitions to
one block, the block follows the file's own order if it has one (sorted imports,
a sorted `__all__`), else each side's order, ours first (`RULES` names each rule,
and `SemanticResult.rules` says which decided). Anything ambiguous raises `Unsure`;
the caller then gets `merged=None` with the reason, so that the next resolver (a
model or a person) decides. A result is returned only if it passes the post-merge
checks (`checks.py`: it parses, keeps both sides' changes, uses no name one side
removed, defines no name twice, makes no new call for parameters the other side
changed).
"""

from __future__ import annotations

import ast
from collections import Counter
from dataclasses import dataclass, field

import libcst as cst

from .checks import check_merged
from .versions import agree_on_version

__all__ = ["PYTHON_SUFFIXES", "RULES", "SemanticResult", "check_merged", "semantic_merge"]

PYTHON_SUFFIXES = (".py", ".pyi", ".pyw")
_EMPTY = cst.Module(body=[])
_PASS_BODY = (cst.SimpleStatementLine([cst.Pass()]),)


@dataclass(frozen=True)
class SemanticResult:
    """`merged` is the combined text, or None when the merge is not sure (see `reason`)."""

    merged: str | None
    reason: str
    details: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)   # the order and layout rules that decided something

    @property
    def clean(self) -> bool:
        return self.merged is not None


class Unsure(Exception):
    """Raised wherever the merge cannot be sure; its message is the reason."""


@dataclass
class _Item:
    """One statement (or literal element) of a version, keyed by what it defines."""

    key: tuple
    node: cst.CSTNode
    text: str      # the code without comments and blank lines above it
    leading: str   # the comments and blank lines above it

    @property
    def kind(self) -> str:
        return self.key[0]

    @property
    def label(self) -> str:
        return _describe(self.key)


def semantic_merge(base: str, ours: str, theirs: str, path: str = "x.py") -> SemanticResult:
    """Merge three versions of a Python file, or say why not."""
    if not path.endswith(PYTHON_SUFFIXES):
        return SemanticResult(None, f"{path} is not a Python file")
    agreed = agree_on_version(base, ours, theirs)
    ours, theirs, noted = agreed.ours, agreed.theirs, [agreed.note] if agreed.note else []
    trivial = _trivial(base, ours, theirs)
    if trivial is not None:
        return SemanticResult(trivial.merged, "; ".join([*noted, trivial.reason]), noted) if noted else trivial
    merger = _Merger()
    merger.details.extend(noted)
    try:
        trees = [_parse(text, side) for text, side in ((base, "base"), (ours, "ours"), (theirs, "theirs"))]
        merged = merger.module(*trees).code
        problem = check_merged(base, ours, theirs, merged)
        if problem:
            raise Unsure(problem)
    except Unsure as unsure:
        return SemanticResult(None, str(unsure), merger.details)
    except (cst.CSTValidationError, RecursionError, ValueError) as error:  # a shape we did not foresee
        return SemanticResult(None, f"cannot merge this structure ({type(error).__name__}: {error})", merger.details)
    return SemanticResult(merged, "combined: " + "; ".join(merger.details), merger.details, merger.rules)


def _trivial(base: str, ours: str, theirs: str) -> SemanticResult | None:
    if ours == theirs:
        return SemanticResult(ours, "both sides are the same")
    if ours == base:
        return SemanticResult(theirs, "only theirs changed")
    if theirs == base:
        return SemanticResult(ours, "only ours changed")
    return None


def _parse(text: str, side: str) -> cst.Module:
    try:
        return cst.parse_module(text)
    except cst.ParserSyntaxError as error:
        raise Unsure(f"{side} does not parse: {str(error).splitlines()[0]}") from None


# ---------------------------------------------------------------- keys


def _code(node: cst.CSTNode) -> str:
    return _EMPTY.code_for_node(node)


def _strip_leading(node: cst.CSTNode) -> cst.CSTNode:
    return node.with_changes(leading_lines=()) if hasattr(node, "leading_lines") else node


def _statement_key(stmt: cst.CSTNode, first: bool) -> tuple:
    if isinstance(stmt, cst.FunctionDef):
        return ("def", stmt.name.value)
    if isinstance(stmt, cst.ClassDef):
        return ("class", stmt.name.value)
    if isinstance(stmt, cst.If):
        return ("if", _code(stmt.test))
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1:
        return _small_key(stmt.body[0], first)
    return ("stmt", _code(_strip_leading(stmt)))


def _small_key(small: cst.BaseSmallStatement, first: bool) -> tuple:
    if isinstance(small, cst.Assign):
        return ("name", "=".join(_code(t.target) for t in small.targets))
    if isinstance(small, cst.AnnAssign):
        return ("name", _code(small.target))
    if isinstance(small, cst.Import):
        return ("import", _code(small))
    if isinstance(small, cst.ImportFrom):
        return ("from", "." * len(small.relative) + (_code(small.module) if small.module else ""))
    if first and isinstance(small, cst.Expr) and isinstance(small.value, (cst.SimpleString, cst.ConcatenatedString)):
        return ("doc", "")
    return ("stmt", _code(small))


def _describe(key: tuple) -> str:
    kind, name = key[0], key[1]
    names = {"def": f"def {name}()", "class": f"class {name}", "if": f"the block 'if {name}:'",
             "name": name, "from": f"'from {name} import'", "doc": "the docstring",
             "import": f"'{name}'", "entry": f"entry {name}", "elem": f"element {name}"}
    return names.get(kind, f"statement '{name.strip()}'")


def _with_occurrence(keys: list[tuple]) -> list[tuple]:
    """Repeated keys (overloads, property setters) are told apart by their order."""
    seen: Counter = Counter()
    result = []
    for key in keys:
        result.append(key + (seen[key],))
        seen[key] += 1
    return result


def _statement_items(stmts) -> list[_Item]:
    keys = _with_occurrence([_statement_key(s, i == 0) for i, s in enumerate(stmts)])
    return [_Item(k, s, _code(_strip_leading(s)), _leading(s)) for k, s in zip(keys, stmts)]


def _leading(node: cst.CSTNode) -> str:
    return "".join(_code(line) for line in getattr(node, "leading_lines", ()))


def _element_items(elements) -> list[_Item]:
    keys = []
    for element in elements:
        bare = element.with_changes(comma=cst.MaybeSentinel.DEFAULT)
        if isinstance(element, cst.DictElement):
            keys.append(("entry", _code(element.key)))
        else:
            keys.append(("elem", _code(bare)))
    texts = [_code(e.with_changes(comma=cst.MaybeSentinel.DEFAULT)) for e in elements]
    return [_Item(k, e, t, "") for k, e, t in zip(_with_occurrence(keys), elements, texts)]


# ---------------------------------------------------------------- merging


class _Merger:
    """Merges three parsed versions; `details` records each decision taken."""

    def __init__(self) -> None:
        self.details: list[str] = []
        self.dropped: set[tuple] = set()   # imports that the other side's imports cover
        self.rules: list[str] = []         # order and layout rules applied, for the benchmark's counts

    def module(self, base: cst.Module, ours: cst.Module, theirs: cst.Module) -> cst.Module:
        header = _pick("the module header", *(_code_of_lines(m.header) for m in (base, ours, theirs)))
        footer = _pick("the module footer", *(_code_of_lines(m.footer) for m in (base, ours, theirs)))
        body = self.sequence(*(_statement_items(m.body) for m in (base, ours, theirs)))
        merged = ours.with_changes(header=(base, ours, theirs)[header].header,
                                   footer=(base, ours, theirs)[footer].footer, body=body)
        _verify(base.body, ours.body, theirs.body, merged.body, self.dropped)
        return merged

    def sequence(self, base: list[_Item], ours: list[_Item], theirs: list[_Item]) -> list:
        """Merge keyed items: each key resolved on its own, both sides' order kept."""
        sides = [{item.key: item for item in items} for items in (base, ours, theirs)]
        _refuse_double_replacement(*sides)
        _refuse_addition_into_removal(base, ours, theirs)
        skeleton, other = _order(base, ours, theirs)
        keys = [i.key for i in skeleton]
        known = set(keys) | set(sides[0])
        spacing = {}
        for index, item in enumerate(other):
            if item.key not in known:
                position, after_new = _anchor(keys, other, index, sides, skeleton is ours)
                keys.insert(position, item.key)
                known.add(item.key)
                if after_new:
                    spacing[item.key] = _gap_spacing(item, other[index + 1:], sides[0])
                    if spacing[item.key] is not None:
                        self.rules.append(RULES["gap"])
        spacing.update(self.follow_order(keys, sides, spacing))
        merged = [self.resolve(*(side.get(key) for side in sides)) for key in keys]
        merged = [_respace(node, spacing.get(key)) for node, key in zip(merged, keys)]
        _keep_gaps(base, keys, merged)
        _docstring_gap((base, ours, theirs), merged)
        for key in set().union(*sides) - set(keys):
            if self.resolve(*(side.get(key) for side in sides)) is not None:  # removed on one side
                raise Unsure(f"internal check failed: {_describe(key)} has no place")
        for key in _covered_imports(dict(zip(keys, merged)), sides):
            merged[keys.index(key)] = None
            self.dropped.add(key)
            self.details.append(f"{_describe(key)}: dropped, the other side's import covers it")
        return [node for node in merged if node is not None]

    def follow_order(self, keys: list[tuple], sides: list[dict], spacing: dict) -> dict[tuple, object]:
        """Where both sides add imports, entries or definitions to one block, the block follows the
        file's own order if it has one (isort's, `sorted()`'s); else each side's order is kept,
        ours first where they meet (the stable rule). Reorders `keys` in place; returns the blank
        lines that move with the first place of a reordered block."""
        moved: dict[tuple, object] = {}
        for start, end in _blocks_both_add(keys, sides, spacing):
            block = keys[start:end]
            order = _file_order(block, sides)
            self.rules.append(order[0] if order else RULES["stable"])
            if order is None or sorted(block, key=order[1]) == block:
                continue
            keys[start:end] = sorted(block, key=order[1])
            if keys[start] != block[0]:
                first = spacing.get(block[0])
                moved[keys[start]] = _item(block[0], sides).node.leading_lines if first is None else first
                moved[block[0]] = ()
            self.details.append(f"the block from {_describe(keys[start])} on: both sides add to it; {order[0]}")
        return moved

    def resolve(self, base: _Item | None, ours: _Item | None, theirs: _Item | None) -> cst.CSTNode | None:
        label = (ours or theirs or base).label
        if _same(ours, theirs):
            chosen = ours
        elif _same(ours, base):
            chosen = theirs
            self.details.append(f"{label}: {_verb(base, theirs)} by theirs")
        elif _same(theirs, base):
            chosen = ours
            self.details.append(f"{label}: {_verb(base, ours)} by ours")
        elif ours is None or theirs is None:
            deleter, changer = ("ours", "theirs") if ours is None else ("theirs", "ours")
            raise Unsure(f"{deleter} removes {label}, which {changer} changes")
        elif base is None and ours.kind == "from":
            combined = self.import_names((None, ours.node, theirs.node), label)
            self.details.append(f"{label}: added by both sides, names combined")
            return combined
        elif base is None:
            raise Unsure(f"both sides add {label} with different content")
        else:
            combined = self.combine(base, ours, theirs)
            self.details.append(f"{label}: changes of both sides combined")
            return _with_leading(combined, base, ours, theirs, label)
        if chosen is None:
            return None
        return _with_leading(chosen.node, base, ours, theirs, label)

    def combine(self, base: _Item, ours: _Item, theirs: _Item) -> cst.CSTNode:
        """Both sides changed one statement: merge inside it, if it is a kind we can."""
        nodes = (base.node, ours.node, theirs.node)
        if base.kind in ("class", "if") and all(_has_block(n) for n in nodes):
            return self.block_statement(nodes, base.label)
        if base.kind == "from":
            return self.import_names(nodes, base.label)
        if base.kind == "name" and _literal_assignments(nodes):
            return self.literal_entries(nodes, base.label)
        raise Unsure(f"both sides change {base.label}")

    def block_statement(self, nodes, label: str) -> cst.CSTNode:
        heads = [_code(_strip_leading(n.with_changes(body=n.body.with_changes(body=_PASS_BODY)))) for n in nodes]
        head = nodes[_pick(f"the header of {label}", *heads)]
        body = self.sequence(*(_statement_items(n.body.body) for n in nodes))
        return head.with_changes(body=head.body.with_changes(body=body))

    def import_names(self, nodes, label: str) -> cst.CSTNode:
        imports = [n.body[0] if n else None for n in nodes]
        if any(i and isinstance(i.names, cst.ImportStar) for i in imports):
            raise Unsure(f"both sides change {label}, a star import")
        heads = [_import_head(n) if n else None for n in nodes]
        if heads[0] is None and heads[1] != heads[2]:
            raise Unsure(f"both sides add {label}, written differently")
        if _pick(f"the statement {label}", heads[0] or heads[1], heads[1], heads[2]) != 1:
            raise Unsure(f"both sides change {label}, one of them its form")   # ours is the frame
        names, close = self.elements(imports, lambda i: i.names, lambda i: i.rpar.whitespace_before if i.rpar else None)
        merged = imports[1].with_changes(names=names)
        if imports[1].rpar:
            merged = merged.with_changes(rpar=imports[1].rpar.with_changes(whitespace_before=close))
        return nodes[1].with_changes(body=[merged])

    def literal_entries(self, nodes, label: str) -> cst.CSTNode:
        statements = [n.body[0] for n in nodes]
        values = [s.value for s in statements]
        if len({type(v) for v in values}) != 1:
            raise Unsure(f"both sides change {label}")
        if ("\n" in _code(values[1])) != ("\n" in _code(values[2])):
            raise Unsure(f"both sides change {label}, formatted differently")
        empty = [_code(s.with_changes(value=cst.Name("_"))) for s in statements]
        if _pick(f"the statement {label}", *empty) != 1:
            raise Unsure(f"both sides change {label}, one of them its form")   # ours is the frame
        elements, close = self.elements(values, lambda v: v.elements, _close_ws)
        if isinstance(values[1], cst.Tuple):
            elements = _tuple_commas(elements, values[1])
        value = _set_close_ws(values[1].with_changes(elements=elements), close)
        return nodes[1].with_changes(body=[statements[1].with_changes(value=value)])

    def elements(self, containers, get_elements, get_close) -> tuple[list, object]:
        """Merge the elements of three bracketed sequences; returns them with the closing whitespace."""
        lists = [list(get_elements(c)) if c else [] for c in containers]
        closes = [get_close(c) if c else None for c in containers]
        merged = self.sequence(*(_element_items(elements) for elements in lists))
        return _rejoin(merged, lists, closes)


def _import_head(line: cst.SimpleStatementLine) -> str:
    """A `from x import ...` line without its names: its comment, and whether it has parentheses."""
    imported = line.body[0]
    bare = imported.with_changes(names=[cst.ImportAlias(cst.Name("_"))], lpar=None, rpar=None)
    return _code(line.with_changes(body=[bare])) + str(imported.lpar is not None)


def _code_of_lines(lines) -> str:
    return "".join(_code(line) for line in lines)


def _pick(label: str, base: str, ours: str, theirs: str) -> int:
    """Index (0 base, 1 ours, 2 theirs) of the version to take for one piece of text."""
    if ours == theirs or theirs == base:
        return 1
    if ours == base:
        return 2
    raise Unsure(f"both sides change {label}")


def _same(a: _Item | None, b: _Item | None) -> bool:
    return (a.text if a else None) == (b.text if b else None)


def _verb(base: _Item | None, side: _Item | None) -> str:
    return "added" if base is None else "removed" if side is None else "changed"


def _with_leading(node, base, ours, theirs, label: str) -> cst.CSTNode:
    """Comments above a statement merge on their own, so that a blank line never blocks a merge."""
    if not hasattr(node, "leading_lines") or None in (base, ours, theirs):
        return node
    texts = (base.leading, ours.leading, theirs.leading)
    try:
        source = (base, ours, theirs)[_pick("", *texts)]
    except Unsure:
        if any("#" in text for text in texts[1:]):
            raise Unsure(f"both sides change the comments above {label}") from None
        source = ours
    return node.with_changes(leading_lines=source.node.leading_lines)


def _has_block(node: cst.CSTNode) -> bool:
    return isinstance(node.body, cst.IndentedBlock) and getattr(node, "orelse", None) is None


def _literal_assignments(nodes) -> bool:
    literals = (cst.List, cst.Set, cst.Dict, cst.Tuple)
    for node in nodes:
        small = node.body[0] if isinstance(node, cst.SimpleStatementLine) else None
        if not isinstance(small, (cst.Assign, cst.AnnAssign)) or not isinstance(small.value, literals):
            return False
        if isinstance(small.value, cst.Tuple) and not small.value.rpar:
            return False
    return True


def _tuple_commas(elements: list, frame: cst.Tuple) -> list:
    """`(a,)` needs its comma; `(a, b)` written on one line does not."""
    last = elements[-1]
    if len(elements) == 1 and last.comma == cst.MaybeSentinel.DEFAULT:
        return [last.with_changes(comma=cst.Comma())]
    if len(elements) > 1 and len(frame.elements) == 1 and "\n" not in _code(frame):
        return [*elements[:-1], last.with_changes(comma=cst.MaybeSentinel.DEFAULT)]
    return elements


def _close_ws(value):
    if isinstance(value, cst.List):
        return value.rbracket.whitespace_before
    if isinstance(value, (cst.Set, cst.Dict)):
        return value.rbrace.whitespace_before
    return value.rpar[-1].whitespace_before


def _set_close_ws(value, ws):
    if isinstance(value, cst.List):
        return value.with_changes(rbracket=value.rbracket.with_changes(whitespace_before=ws))
    if isinstance(value, (cst.Set, cst.Dict)):
        return value.with_changes(rbrace=value.rbrace.with_changes(whitespace_before=ws))
    rpar = [*value.rpar[:-1], value.rpar[-1].with_changes(whitespace_before=ws)]
    return value.with_changes(rpar=rpar)


# ---------------------------------------------------------------- imports


def _covered_imports(merged: dict, sides: list[dict]) -> list[tuple]:
    """New import statements that an import added or changed by the other side already
    covers (`import packaging` next to `import packaging.version`): dropped, not doubled.
    Both sides binding one name to different things is a conflict."""
    base = sides[0]
    changes = [{k: _bindings(merged[k]) for k, item in side.items() if k[0] in ("import", "from")
                and merged.get(k) is not None and (k not in base or base[k].text != item.text)}
               for side in sides[1:]]
    dropped: list[tuple] = []
    for own, other in ((changes[0], changes[1]), (changes[1], changes[0])):
        for key, names in own.items():
            if key in base or key in other or not names:
                continue
            others = [bound for k, bound in other.items() if k not in dropped]
            for name, source in names.items():
                if any(name in bound and not _covers(bound[name], source) and not _covers(source, bound[name])
                       for bound in others):
                    raise Unsure(f"both sides import {name!r}, from different places")
            if all(any(_covers(bound.get(n), source) for bound in others) for n, source in names.items()):
                dropped.append(key)
    return dropped


def _bindings(node: cst.CSTNode) -> dict[str, tuple]:
    """Name bound -> what it is bound to, for one import statement."""
    bound: dict[str, tuple] = {}
    for stmt in ast.parse(_code(_strip_leading(node))).body:
        for alias in getattr(stmt, "names", []):
            if isinstance(stmt, ast.ImportFrom):
                module = "." * stmt.level + (stmt.module or "")
                bound[alias.asname or alias.name] = ("from", module, alias.name)
            elif alias.asname:
                bound[alias.asname] = ("as", alias.name)
            else:
                bound[alias.name.split(".")[0]] = ("module", alias.name)
    bound.pop("*", None)
    return bound


def _covers(wider: tuple | None, narrower: tuple) -> bool:
    """Does binding `wider` give everything `narrower` does? (`import a.b` covers `import a`.)"""
    if wider is None:
        return False
    if wider[0] == narrower[0] == "module":
        return wider[1] == narrower[1] or wider[1].startswith(narrower[1] + ".")
    return wider == narrower


# ---------------------------------------------------------------- order


def _order(base, ours, theirs) -> tuple[list[_Item], list[_Item]]:
    """The side whose order is the frame, and the other, whose new items are placed into it."""
    common = {i.key for i in base} & {i.key for i in ours} & {i.key for i in theirs}
    orders = [[i.key for i in items if i.key in common] for items in (base, ours, theirs)]
    if orders[1] != orders[0] and orders[2] != orders[0] and orders[1] != orders[2]:
        raise Unsure("both sides move statements around")
    return (theirs, ours) if orders[2] != orders[0] else (ours, theirs)


def _anchor(keys: list[tuple], other: list[_Item], index: int, sides, ours_first: bool) -> tuple[int, bool]:
    """Where a new item of `other` goes: after its predecessor there; where both sides added
    things at one place, ours come first (as in git's conflict markers). Also whether it
    follows such an item of ours."""
    base = sides[0]
    other_keys = {i.key for i in other}
    position = 0
    for previous in reversed(other[:index]):
        if previous.key in keys:
            position = keys.index(previous.key) + 1
            break
    start = position
    while ours_first and position < len(keys) and keys[position] not in base and keys[position] not in other_keys:
        position += 1
    return position, position > start


RULES = {
    "imports": "order: imports both sides add, sorted as the file sorts them (isort)",
    "imports by module": "order: imports both sides add, sorted by module as the file sorts them",
    "entries": "order: entries both sides add, sorted as the file keeps them",
    "entries, case ignored": "order: entries both sides add, sorted case-insensitively as the file keeps them",
    "names by type": "order: imported names both sides add, constants, classes, functions (isort)",
    "definitions": "order: definitions both sides add, sorted by name as the file keeps them",
    "stable": "order: both sides add to one block with no order: each side's order, ours first",
    "gap": "layout: blank lines of the place, not of the statement that used to stand there",
}
_FAMILIES = {"import": "imports", "from": "imports", "elem": "elem", "entry": "entry", "def": "def", "class": "def"}


def _item(key: tuple, sides: list[dict]) -> _Item:
    return sides[1].get(key) or sides[2].get(key) or sides[0][key]


def _blocks_both_add(keys: list[tuple], sides: list[dict], spacing: dict) -> list[tuple[int, int]]:
    """(start, end) of each run of one family (imports, literal entries, definitions) to which both
    sides add something; imports split at blank lines and comments, definitions at comments."""
    blocks, start = [], 0
    for index in range(1, len(keys) + 1):
        if index < len(keys) and _continues(keys[index - 1], keys[index], sides, spacing):
            continue
        block = keys[start:index]
        added = [{k for k in block if k in sides[side] and k not in sides[0] and k not in sides[3 - side]}
                 for side in (1, 2)]
        if all(added):
            blocks.append((start, index))
        start = index
    return blocks


def _continues(previous: tuple, key: tuple, sides: list[dict], spacing: dict) -> bool:
    family = _FAMILIES.get(key[0])
    if family is None or family != _FAMILIES.get(previous[0]):
        return False
    leading = _leading_in_place(key, sides, spacing)
    if family == "imports":
        return leading == ""
    return "#" not in leading and (family != "def" or leading == _leading_in_place(previous, sides, spacing))


def _leading_in_place(key: tuple, sides: list[dict], spacing: dict) -> str:
    """The blank lines and comments an item will have above it: its own, unless given others."""
    given = spacing.get(key)
    return _item(key, sides).leading if given is None else "".join(_code(line) for line in given)


def _file_order(block: list[tuple], sides: list[dict]) -> tuple[str, object] | None:
    """The first order that the block keeps in the base, ours and theirs alike, with the base holding
    at least two of its items (four definitions) and the block at least four: less is no evidence."""
    in_base = [key for key in sides[0] if key in block]
    if len(in_base) < (4 if _FAMILIES[block[0][0]] == "def" else 2) or len(block) < 4:
        return None   # definitions are seldom sorted: four in the base, not by chance
    for rule, sort_key in _orders(block[0][0]):
        versions = [[key for key in side if key in block] for side in sides]
        if all(version == sorted(version, key=sort_key) for version in versions):
            return RULES[rule], sort_key
    return None


def _orders(kind: str) -> list[tuple[str, object]]:
    family = _FAMILIES[kind]
    if family == "imports":
        return [("imports", lambda k: (k[0] == "from", _module(k).lower())),
                ("imports by module", lambda k: (_module(k).lower(), k[0] == "from"))]
    if family == "def":
        return [("definitions", lambda k: k[1])]
    text = lambda k: _unquoted(k[1])   # noqa: E731
    return [("entries", text), ("entries, case ignored", lambda k: text(k).lower()),
            ("names by type", lambda k: (_name_type(text(k)), text(k).lower()))]


def _module(key: tuple) -> str:
    return key[1].removeprefix("import ").split(" as ")[0] if key[0] == "import" else key[1]


def _unquoted(code: str) -> str:
    return code.strip("'\"") if code[:1] in "'\"" else code


def _name_type(name: str) -> int:
    """isort's order of imported names: CONSTANTS, then Classes, then functions."""
    return 0 if name.isupper() and len(name) > 1 else 1 if name[:1].isupper() else 2


def _gap_spacing(item: _Item, following: list[_Item], base: dict) -> object:
    """Blank lines for a new item placed after the frame's new items in the same gap. If it took
    over the blank lines above the next old statement (an import inserted after a docstring),
    it gives them back and takes what its side left there."""
    successor = next((i for i in following if i.key in base), None)
    if successor is None or "#" in item.leading or "#" in successor.leading:
        return None
    if item.leading != base[successor.key].leading or successor.leading == item.leading:
        return None
    return successor.node.leading_lines


def _keep_gaps(base: list[_Item], keys: list[tuple], merged: list) -> None:
    """Blank lines above statements that the merge removes stay, as they do when lines are
    deleted: when ours removes `import warnings` and theirs `import typing` just above it,
    the blank line above both is kept above the next statement."""
    at = {key: index for index, key in enumerate(keys)}
    removed: _Item | None = None
    kept: tuple | None = None           # the base statement above the removed ones, if kept
    for item in base:
        index = at.get(item.key)
        if index is None or merged[index] is None:
            removed = removed or item
            continue
        node = merged[index]
        previous = next((keys[i] for i in range(index - 1, -1, -1) if merged[i] is not None), None)
        if (removed and removed.leading.strip() == "" and removed.leading and hasattr(node, "leading_lines")
                and not node.leading_lines and previous == kept):    # not moved by a side
            merged[index] = node.with_changes(leading_lines=removed.node.leading_lines)
        removed, kept = None, item.key


def _docstring_gap(versions, merged: list) -> None:
    """Blank lines under a docstring belong to the place, not to the statement below it: when
    ours removes them and theirs reorders the imports under the docstring, they stay removed."""
    if any(len(items) < 2 or items[0].kind != "doc" for items in versions) or merged[0] is None:
        return
    gaps = [items[1] for items in versions]
    if any(gap.leading.strip() for gap in gaps):
        return                                  # comments: they go with their statement
    index = next((i for i, node in enumerate(merged[1:], 1) if node is not None), None)
    if index is None or not hasattr(merged[index], "leading_lines"):
        return
    try:
        source = gaps[_pick("", *(gap.leading for gap in gaps))]
    except Unsure:
        return
    merged[index] = merged[index].with_changes(leading_lines=source.node.leading_lines)


def _respace(node, leading_lines):
    if node is None or leading_lines is None or not hasattr(node, "leading_lines"):
        return node
    return node.with_changes(leading_lines=leading_lines)


def _refuse_double_replacement(base: dict, ours: dict, theirs: dict) -> None:
    """A statement known only by its text, removed by both sides while both add text, was
    probably changed by both: the two new versions must not both be kept."""
    for kind in ("stmt", "elem"):
        gone = {k for k in base if k[0] == kind and k not in ours and k not in theirs}
        added_ours = any(k[0] == kind and k not in base for k in ours)
        added_theirs = any(k[0] == kind and k not in base for k in theirs)
        if gone and (added_ours or added_theirs):
            raise Unsure(f"both sides change or remove {_describe(min(gone))}")


_ORDER_FREE = frozenset({"import", "from", "elem", "entry"})   # kinds whose neighbours do not matter


def _refuse_addition_into_removal(base: list[_Item], ours: list[_Item], theirs: list[_Item]) -> None:
    """New code that one side puts where the other side removed code was probably written to
    replace or extend what is gone (a maintenance branch adds a deprecation shim where the main
    branch deleted the deprecated code): keeping it is not a safe guess. Imports and literal
    entries are exempt, as their neighbours do not matter."""
    position = {item.key: index for index, item in enumerate(base)}
    for side, other, adder, remover in ((ours, theirs, "ours", "theirs"), (theirs, ours, "theirs", "ours")):
        kept = {item.key for item in other}
        before = None
        for index, item in enumerate(side):
            if item.key in position:
                before = position[item.key]
                continue
            if item.kind in _ORDER_FREE:
                continue
            after = next((position[i.key] for i in side[index + 1:] if i.key in position), len(base) - 1)
            removed = [old for old in base[before or 0: after + 1] if old.key not in kept and old.kind not in _ORDER_FREE]
            if removed:
                raise Unsure(f"{adder} adds {item.label} where {remover} removes {removed[0].label}")


def _verify(base, ours, theirs, merged, dropped: set[tuple]) -> None:
    """Every top-level change of either side is in the result (a guard against our own bugs)."""
    texts = [{i.key: i.text for i in _statement_items(body)} for body in (base, ours, theirs, merged)]
    for key in set().union(*texts[:3]) - dropped:
        b, o, t, m = (version.get(key) for version in texts)
        if (o == b and m != t) or (t == b and m != o) or (o != b and t != b and o != t and m is None):
            raise Unsure(f"internal check failed: the result loses a change to {_describe(key)}")


# ---------------------------------------------------------------- commas


def _tails(lists, closes) -> dict[int, tuple[bool, object, object]]:
    """For each element: was it last in its list, its comma, and the whitespace closing that list."""
    tails = {}
    for elements, close in zip(lists, closes):
        for index, element in enumerate(elements):
            tails[id(element)] = (index == len(elements) - 1, element.comma, close)
    return tails


def _comment(ws) -> cst.Comment | None:
    return ws.first_line.comment if isinstance(ws, cst.ParenthesizedWhitespace) else None


def _element_comment(tail) -> cst.Comment | None:
    last, comma, close = tail
    own = _comment(comma.whitespace_after) if isinstance(comma, cst.Comma) else None
    return own or (_comment(close) if last else None)


def _put_comment(ws, comment):
    if not isinstance(ws, cst.ParenthesizedWhitespace):
        return ws
    space = ws.first_line.whitespace if comment and ws.first_line.comment else cst.SimpleWhitespace("  " if comment else "")
    return ws.with_changes(first_line=ws.first_line.with_changes(comment=comment, whitespace=space))


def _rejoin(merged: list, lists: list[list], closes: list) -> tuple[list, object]:
    """Give each merged element the comma its new position needs, keeping trailing comments."""
    if not merged:
        return [], closes[1]
    tails = _tails(lists, closes)
    middle = next((e.comma for elements in (lists[1], lists[2], lists[0]) for e in elements[:-1]),
                  cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
    frame = next(i for i in (1, 2, 0) if lists[i])
    last_comma, close = lists[frame][-1].comma, closes[frame]
    result = []
    for index, element in enumerate(merged):
        tail = tails[id(element)]
        comment = _element_comment(tail)
        if index < len(merged) - 1:
            comma = element.comma if not tail[0] else middle.with_changes(
                whitespace_after=_put_comment(middle.whitespace_after, comment))
            result.append(element.with_changes(comma=comma))
            continue
        comma = last_comma
        if isinstance(comma, cst.Comma) and isinstance(comma.whitespace_after, cst.ParenthesizedWhitespace):
            comma = comma.with_changes(whitespace_after=_put_comment(comma.whitespace_after, comment))
        else:
            close = _put_comment(close, comment)
        result.append(element.with_changes(comma=comma))
    return result, close
