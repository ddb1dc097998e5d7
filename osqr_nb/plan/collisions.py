"""Tier-1 conflict prevention: find the files two parallel tasks may both write, before they start.

For every pair of tasks that the plan does not order (neither waits for the
other; a partial dependency does not order, since both may run at once), a
task's footprint is the files it may write:

1. the plan's `writes` (paths, or globs expanded against `git ls-files`): when
   a task declares them, they are its footprint and nothing is guessed for it
   (a plan line `writes: shop/pricing.py` is not overruled by the task
   mentioning "shop", the folder's name);
2. otherwise, guesses from the repository: files that define, or are named
   like, what the task's title and description mention (Python files are read
   with `ast` for their top-level definitions and imports; other files match by
   name or folder, plurals folded: "exporter" finds `exporters/`);
3. a shared module: a local module that files of both footprints import
   (only for two tasks that declared nothing, and only when 1 and 2 found
   nothing for the pair, being the noisiest).

This is a heuristic and says so: each predicted file carries its evidence, and
`score_predictions` measures precision and recall against what tasks really
changed, so it can be tuned. Each collision offers three choices, which change
the plan as promised: serialize (add the edge), split (each task gets its own
new file and is told so) and parallel (mark the pair for merge review).
"""

from __future__ import annotations

import ast
import fnmatch
import itertools
import keyword
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Literal

import networkx as nx

from .repo_summary import tracked_files
from .task import Plan, PlanError, Task, TaskKind

MAX_PY_FILES = 3000
MAX_PY_BYTES = 300_000
MAX_FOLDER_FILES = 25
NOTE_MARK = "Collision note:"
GLOB_CHARS = re.compile(r"[*?\[]")
DOC_SUFFIXES = {".md", ".rst", ".txt", ".adoc", ".ipynb"}
CODE_KINDS = {TaskKind.CODE, TaskKind.REFACTOR, TaskKind.ARCHITECTURE, TaskKind.QUICK_FIX}
STOP_WORDS = set("""
a an the and or of to in on for with from into by at as is are be it its this that these those then
than all any each every some our my your their we you they use using used make build create add
write update fix refactor rename move change improve implement support new module modules file files
code function functions class classes method methods package folder test tests docs doc readme api
when after before via so not no do does done also more less same other
""".split())


# --- the repository -------------------------------------------------------------------------------

def _dotted(path: str) -> str:
    parts = list(PurePosixPath(path).with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


_STRINGS = re.compile(                      # strings (triple-quoted first) and comments
    r'[rRbBuUfF]{0,2}("""|' + "'''" + r')(?:\\.|(?!\1).)*?\1'
    r'|#[^\n]*'
    r'|"(?:\\.|[^"\\\n])*"'
    r"|'(?:\\.|[^'\\\n])*'", re.S)
_TOP_DEF = re.compile(r"^(?:async[ \t]+)?(?:def|class)[ \t]+([A-Za-z_]\w*)", re.M)
_TOP_ASSIGN = re.compile(r"^((?:[A-Za-z_]\w*[ \t]*=[ \t]*)+)(?!=)", re.M)
_TOP_ANNOTATED = re.compile(r"^([A-Za-z_]\w*)[ \t]*:(?!=)", re.M)
_IMPORT = re.compile(r"^[ \t]*import[ \t]+((?:[^\n;\\]|\\\n)+)", re.M)
_FROM = re.compile(r"^[ \t]*from[ \t]+(\.*)[ \t]*([\w.]*)[ \t]+import[ \t]*(\([^)]*\)|(?:[^\n;\\]|\\\n)+)", re.M)
_NAME = re.compile(r"[A-Za-z_]\w*")
_KEYWORDS = frozenset(keyword.kwlist)


def _python_facts(source: str) -> tuple[set[str], list[tuple[str, list[str], int]]]:
    """Top-level names a module defines, and its imports as (module, names, relative level).

    Read by patterns over the source with its strings and comments blanked, not by
    `ast`: parsing costs ~2 ms for a 15 KB module, and the index reads every module
    of the repository before a run starts (2,000 modules: 4 s against 0.2 s).
    """
    code = _STRINGS.sub(lambda m: '""' if m.group(0)[:1] != "#" else "", source)
    defined = set(_TOP_DEF.findall(code))
    for chain in _TOP_ASSIGN.findall(code):
        defined |= {n for n in _NAME.findall(chain) if n not in _KEYWORDS}
    defined |= {n for n in _TOP_ANNOTATED.findall(code) if n not in _KEYWORDS}
    imports: list[tuple[str, list[str], int]] = []
    for match in _IMPORT.finditer(code):
        for part in match.group(1).replace("\\\n", " ").split(","):
            module = part.split(" as ")[0].strip()
            if module:
                imports.append((module, [], 0))
    for match in _FROM.finditer(code):
        dots, module, names = match.groups()
        names = names.strip().strip("()").replace("\\\n", " ")
        taken = [n.split(" as ")[0].strip() for n in names.replace("\n", " ").split(",")]
        imports.append((module, [n for n in taken if n], len(dots)))
    return defined, imports


_facts_cache: dict[tuple[str, int, int], tuple[set[str], list[tuple[str, list[str], int]]]] = {}


def _facts_of(file: Path) -> tuple[set[str], list[tuple[str, list[str], int]]]:
    """A module's facts, read once per version of the file in this process (a kernel runs
    many runs on one repository: the second reads only what changed)."""
    stat = file.stat()
    key = (str(file), stat.st_size, stat.st_mtime_ns)
    if key not in _facts_cache:
        if len(_facts_cache) > 50_000:
            _facts_cache.clear()
        text = file.read_text(encoding="utf-8") if stat.st_size <= MAX_PY_BYTES * 4 else ""
        _facts_cache[key] = _python_facts(text) if len(text) <= MAX_PY_BYTES else (set(), [])
    return _facts_cache[key]


def _python_facts_by_ast(source: str) -> tuple[set[str], list[tuple[str, list[str], int]]]:
    """The same facts by `ast` (the reference the pattern reading is tested against)."""
    tree = ast.parse(source)
    defined: set[str] = set()
    imports: list[tuple[str, list[str], int]] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined |= {t.id for t in targets if isinstance(t, ast.Name)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports += [(alias.name, [], 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            imports.append((node.module or "", [a.name for a in node.names], node.level))
    return defined, imports


@dataclass
class RepoIndex:
    """What the repository's files define, import and are called; built once per prediction."""

    files: list[str]
    defines: dict[str, set[str]] = field(default_factory=dict)         # name -> files defining it
    users: dict[str, set[str]] = field(default_factory=dict)           # name -> files importing it
    imports: dict[str, set[str]] = field(default_factory=dict)         # file -> local files it imports
    modules: dict[str, str] = field(default_factory=dict)              # dotted name -> file
    stems: dict[str, set[str]] = field(default_factory=dict)           # lowercased stem/name -> files
    folders: dict[str, list[str]] = field(default_factory=dict)        # lowercased folder name -> files

    @classmethod
    def build(cls, root: str | Path, files: list[str] | None = None) -> "RepoIndex":
        root = Path(root)
        index = cls(sorted(files if files is not None else tracked_files(root)))
        index._names()
        facts = {}
        for path in [f for f in index.files if f.endswith(".py")][:MAX_PY_FILES]:
            try:
                facts[path] = _facts_of(root / path)
            except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
                continue
            time.sleep(0)    # hand the GIL over: built in a thread, this must not starve the kernel's loop
        for path, (defined, _) in facts.items():
            for name in defined:
                index.defines.setdefault(name, set()).add(path)
        for path, (_, imports) in facts.items():
            index._link(path, imports)
        return index

    def _names(self) -> None:
        for path in self.files:
            pure = PurePosixPath(path)
            for key in {pure.name.lower(), pure.stem.lower()}:
                self.stems.setdefault(key, set()).add(path)
            for folder in pure.parts[:-1]:
                self.folders.setdefault(folder.lower(), []).append(path)
            if path.endswith(".py"):
                dotted = _dotted(path)
                self.modules.setdefault(dotted, path)
                if dotted.startswith("src."):
                    self.modules.setdefault(dotted[4:], path)

    def resolve(self, module: str) -> str | None:
        """The local file of a dotted module name (the most specific one that exists), if any."""
        parts = module.split(".")
        for end in range(len(parts), 0, -1):
            found = self.modules.get(".".join(parts[:end]))
            if found:
                return found
        return None

    def _link(self, path: str, imports: list[tuple[str, list[str], int]]) -> None:
        """Record which local files `path` imports and which names it takes from them."""
        package = _dotted(path).split(".")
        if not path.endswith("__init__.py"):
            package = package[:-1]
        for module, names, level in imports:
            base = ".".join(package[: len(package) - level + 1]) if level else ""
            full = ".".join(p for p in (base, module) if p)
            targets = [self.resolve(f"{full}.{n}") if full else self.resolve(n) for n in names]
            targets = [t for t in targets + [self.resolve(full) if full else None] if t and t != path]
            self.imports.setdefault(path, set()).update(targets)
            for name in names if targets else []:   # names taken from local modules only
                self.users.setdefault(name, set()).add(path)


# --- one task's footprint -------------------------------------------------------------------------

def is_glob(path: str) -> bool:
    return bool(GLOB_CHARS.search(path))


def expand(pattern: str, files: list[str]) -> list[str]:
    """Tracked files a `writes` entry covers; a new file, or a glob matching nothing, stands for itself."""
    pattern = pattern.strip().removeprefix("./")
    if not is_glob(pattern):
        folder = pattern.rstrip("/") + "/"
        inside = [f for f in files if f.startswith(folder)]
        return [pattern] if pattern in files or not inside else inside
    matched = [f for f in files if fnmatch.fnmatchcase(f, pattern)
               or (pattern.startswith("**/") and fnmatch.fnmatchcase(f, pattern[3:]))]
    return matched or [pattern]


def may_write(kind: TaskKind, path: str) -> bool:
    """Whether a task of this kind would edit a file found only by the repository scan.

    Docs tasks write documentation, tests tasks write tests, reviews write
    nothing; what they mention elsewhere they only read.
    """
    pure = PurePosixPath(path)
    if kind is TaskKind.REVIEW:
        return False
    if kind is TaskKind.DOCS:
        return pure.suffix.lower() in DOC_SUFFIXES or "docs" in pure.parts or pure.stem.upper() == "README"
    if kind is TaskKind.TESTS:
        return "tests" in pure.parts or "test" in pure.parts or pure.name.startswith("test_") \
            or pure.name == "conftest.py"
    return True


PATH_TOKEN = re.compile(r"[\w.-]*/[\w./*-]*|[\w-]+\.[A-Za-z]\w{0,5}\b")


def mentions(text: str) -> tuple[set[str], set[str]]:
    """(identifiers and file-like tokens as written, lowercased words and joined word pairs).

    The words leave out file paths: naming shop/pricing.py is not a mention of every file in shop/."""
    tokens = {t.strip(".") for t in re.findall(r"[\w./-]+", text)} - {""}
    words = re.findall(r"[A-Za-z][A-Za-z0-9]*", PATH_TOKEN.sub(" ", text))
    lower = [w.lower() for w in words]
    phrases = {f"{a}_{b}" for a, b in itertools.pairwise(lower)} | {a + b for a, b in itertools.pairwise(lower)}
    return tokens, ({w for w in lower if len(w) >= 3 and w not in STOP_WORDS} | phrases)


def without_notes(description: str) -> str:
    """The description without the collision notes `split` added (they name the other task's files)."""
    return "\n\n".join(p for p in description.split("\n\n") if not p.startswith(NOTE_MARK))


def footprint(task: Task, index: RepoIndex) -> dict[str, list[str]]:
    """Files the task may write, each with the reasons it was predicted."""
    found: dict[str, list[str]] = {}

    def add(paths: Any, reason: str, check: bool = True) -> None:
        for path in paths:
            if not check or may_write(task.kind, path):
                found.setdefault(path, []).append(reason)

    for pattern in task.writes:
        add(expand(pattern, index.files), f"{task.title} writes {pattern}", check=False)
    if task.writes:            # the plan said what it writes: that, not a guess, is its footprint
        return found
    tokens, words = mentions(f"{task.title}\n{without_notes(task.description)}")
    for token in sorted(tokens):
        named = {f for f in index.files if f == token or f.endswith("/" + token)} if "." in token else set()
        add(sorted(named), f"{task.title} names {token}")
        add(sorted(index.defines.get(token, ())), f"{task.title} names {token}, defined here")
        if task.kind is TaskKind.REFACTOR:
            add(sorted(index.users.get(token, ())), f"{task.title} refactors {token}, imported here")
    for word in sorted(words):
        for form in _forms(word):
            add(sorted(index.stems.get(form, ())), f"{task.title} mentions {word!r}, the file's name")
            inside = index.folders.get(form, [])
            if len(inside) <= MAX_FOLDER_FILES:
                add(inside, f"{task.title} mentions {word!r}, the folder's name")
    return found


def _forms(word: str) -> list[str]:
    """The word and its other number: 'exporter' also finds exporters/, 'queries' query.py."""
    if "_" in word or len(word) < 4:
        return [word]
    if word.endswith("ies"):
        return [word, word[:-3] + "y"]
    if word.endswith("s") and not word.endswith("ss"):
        return [word, word[:-1]]
    return [word, word[:-1] + "ies" if word.endswith("y") else word + "s"]


def _shared_imports(a: Task, b: Task, prints: dict[str, dict[str, list[str]]],
                    index: RepoIndex) -> dict[str, list[str]]:
    """Local modules that files of both footprints import (and both tasks may edit).

    A task that declared its writes reaches only what it declared: a module its
    files import is shared only if it is one of them."""
    if a.kind not in CODE_KINDS or b.kind not in CODE_KINDS or (a.writes and b.writes):
        return {}
    of_a, of_b = _reach(a, prints, index), _reach(b, prints, index)
    return {module: of_a[module] + of_b[module] for module in sorted(set(of_a) & set(of_b))}


def _reach(task: Task, prints: dict[str, dict[str, list[str]]], index: RepoIndex) -> dict[str, list[str]]:
    """The local modules a task's files import, each with why (its own declared files if it declared)."""
    if task.writes:
        return prints[task.id]
    if task.kind not in CODE_KINDS:
        return {}
    via = {module: source for source in sorted(prints[task.id])
           for module in sorted(index.imports.get(source, ()))}
    return {module: prints[task.id].get(module) or [f"{task.title}'s {source} imports it"]
            for module, source in via.items()}


# --- collisions and the three choices -------------------------------------------------------------

Action = Literal["serialize", "split", "parallel"]


@dataclass(frozen=True)
class Choice:
    """What to do about a collision; `first` says which task goes first when serializing."""

    action: Action
    first: str | None = None

    def __str__(self) -> str:
        return f"serialize ({self.first} first)" if self.action == "serialize" else self.action


@dataclass
class Effect:
    """What a choice did (or would do) to the plan."""

    choice: Choice
    summary: str
    critical_path_before: float
    critical_path_after: float
    path_before: list[str]
    path_after: list[str]
    changes: list[str] = field(default_factory=list)

    @property
    def growth(self) -> float:
        """How much longer the critical path got, as a share of its length before (0.5 = +50%)."""
        before, after = self.critical_path_before, self.critical_path_after
        return (after - before) / before if before else (0.0 if after == before else float("inf"))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "choice": str(self.choice), "growth": self.growth}


@dataclass
class Option:
    """One button of the collision card: its label, the choice, and its previewed effect."""

    label: str
    choice: Choice
    effect: Effect


def _unit(plan: Plan) -> str:
    return "hours" if any(t.estimate_hours is not None for t in plan.tasks) else "tasks"


AREA_FILLER = {"module", "modules", "page", "code", "feature", "support", "new", "the", "a", "an", "add", "fix",
               "use", "build", "create", "update", "refactor", "make", "write", "implement", "improve", "move",
               "rename", "split", "remove", "review", "design", "test", "tests", "docs", "for", "in", "of",
               "to", "and", "with", "on"}


def area(title: str, task_id: str, stem: str = "", taken: set[str] = frozenset()) -> str:
    """A short name for what a task is about, for a file of its own: 'API Helpers' -> 'api'.

    The title's first telling word, not the file's own name (no cart_cart.py), not one the other
    task took; the task id when the title has none."""
    for word in re.findall(r"[A-Za-z][A-Za-z0-9]*", title):
        word = word.lower()
        if word not in AREA_FILLER and word != stem.lower() and word not in taken and len(word) > 1:
            return word
    own = re.sub(r"[^a-z0-9]+", "_", task_id.lower()).strip("_") or "task"
    return own if own not in taken else f"{own}_2"


def split_name(path: str, own: str) -> str:
    """A new file (or folder, for a glob) named for its task next to `path`: utils.py -> auth_utils.py."""
    if is_glob(path):
        folder = GLOB_CHARS.split(path, maxsplit=1)[0].rstrip("/")
        return f"{folder}/{own}/" if folder else f"{own}/"
    pure = PurePosixPath(path)
    return str(pure.with_name(f"{own}_{pure.stem}{pure.suffix}"))


@dataclass
class Collision:
    """Two tasks that may run at the same time and may both modify `files`."""

    task_a: str
    task_b: str
    files: list[str]
    evidence: dict[str, list[str]]             # file -> why it was predicted, for each task
    titles: tuple[str, str] = ("", "")

    @property
    def pair(self) -> frozenset[str]:
        return frozenset((self.task_a, self.task_b))

    @property
    def message(self) -> str:
        """The card's headline: 'Warning: Auth Module and API Helpers may both modify utils.py'."""
        shown = ", ".join(self.files[:3]) + (f" and {len(self.files) - 3} more" if len(self.files) > 3 else "")
        a, b = self.titles if all(self.titles) else (self.task_a, self.task_b)
        return f"Warning: {a} and {b} may both modify {shown}"

    def to_dict(self) -> dict[str, Any]:
        return {"task_a": self.task_a, "task_b": self.task_b, "files": list(self.files),
                "evidence": {f: list(r) for f, r in self.evidence.items()}, "titles": list(self.titles),
                "message": self.message}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Collision":
        return cls(data["task_a"], data["task_b"], list(data["files"]),
                   {f: list(r) for f, r in data.get("evidence", {}).items()},
                   tuple(data.get("titles") or ("", "")))   # type: ignore[arg-type]

    # the choices

    def options(self, plan: Plan) -> list[Option]:
        """The card's buttons with their effects, previewed on copies (the plan is not changed)."""
        a, b = self.titles if all(self.titles) else (self.task_a, self.task_b)
        candidates = [(f"Serialize: {a} first", Choice("serialize", self.task_a)),
                      (f"Serialize: {b} first", Choice("serialize", self.task_b)),
                      ("Split the file" if len(self.files) == 1 else "Split the files", Choice("split")),
                      ("Proceed in parallel, review merge", Choice("parallel"))]
        options = []
        for label, choice in candidates:
            try:
                options.append(Option(label, choice, self.apply(plan.copy(), choice)))
            except PlanError:   # e.g. serializing against a partial dependency would make a cycle
                continue
        return options

    def apply(self, plan: Plan, choice: Choice) -> Effect:
        if choice.action == "serialize":
            return self.serialize(plan, choice.first)
        if choice.action == "split":
            return self.split(plan)
        if choice.action == "parallel":
            return self.parallel(plan)
        raise PlanError(f"unknown choice {choice.action!r}; use serialize, split or parallel")

    def _effect(self, plan: Plan, choice: Choice, before: tuple[float, list[str]], summary: str,
                changes: list[str]) -> Effect:
        plan.resolutions.append({"tasks": [self.task_a, self.task_b], "files": list(self.files),
                                 "choice": choice.action, **({"first": choice.first} if choice.first else {})})
        return Effect(choice, summary, before[0], plan.critical_path_length(), before[1],
                      plan.critical_path(), changes)

    def serialize(self, plan: Plan, first: str | None = None) -> Effect:
        """Make one task wait for the other (the edge `first -> second`); reports the critical path."""
        first = first or self.task_a
        if first not in (self.task_a, self.task_b):
            raise PlanError(f"{first!r} is not one of this collision's tasks ({self.task_a}, {self.task_b})")
        second = self.task_b if first == self.task_a else self.task_a
        before = (plan.critical_path_length(), plan.critical_path())
        plan.add_dependency(second, first)
        after = plan.critical_path_length()
        unit = _unit(plan)
        summary = (f"{plan[second].title} now waits for {plan[first].title}; critical path "
                   f"{before[0]:g} -> {after:g} {unit}")
        return self._effect(plan, Choice("serialize", first), before, summary,
                            [f"{second} depends on {first}"])

    def split(self, plan: Plan) -> Effect:
        """Give each task its own new file for each shared one, and tell both tasks so."""
        before = (plan.critical_path_length(), plan.critical_path())
        own = self._own_files(plan)
        changes = []
        for task_id, other in ((self.task_a, self.task_b), (self.task_b, self.task_a)):
            task = plan[task_id]
            task.description = task.description.rstrip() + "\n\n" + self._split_note(plan, task_id, other, own)
            task.writes = [w for w in task.writes if w not in self.files] + list(own[task_id].values())
            changes += [f"{task_id} writes {new} instead of {old}" for old, new in own[task_id].items()]
        return self._effect(plan, Choice("split"), before,
                            f"{plan[self.task_a].title} and {plan[self.task_b].title} each get their own "
                            f"file(s): {', '.join(changes)}", changes)

    def _own_files(self, plan: Plan) -> dict[str, dict[str, str]]:
        """For each task, each shared file's own replacement; the two tasks never get the same name."""
        own: dict[str, dict[str, str]] = {self.task_a: {}, self.task_b: {}}
        titles = {t: plan[t].title if t in plan else "" for t in own}
        for path in self.files:
            stem = PurePosixPath(GLOB_CHARS.split(path, maxsplit=1)[0].rstrip("/") if is_glob(path) else path).stem
            first = area(titles[self.task_a], self.task_a, stem)
            second = area(titles[self.task_b], self.task_b, stem, {first})
            own[self.task_a][path] = split_name(path, first)
            own[self.task_b][path] = split_name(path, second)
        return own

    def _split_note(self, plan: Plan, task_id: str, other: str, own: dict[str, dict[str, str]]) -> str:
        lines = [f"{NOTE_MARK} {plan[other].title} runs at the same time and may change the same "
                 "files. Leave them unchanged and put your work in your own new files instead:"]
        lines += [f"- instead of editing {old}, write {new} (create it); {plan[other].title} uses "
                  f"{own[other][old]}" for old, new in own[task_id].items()]
        return "\n".join(lines)

    def parallel(self, plan: Plan) -> Effect:
        """Let both run at once and mark the pair so that their merge is reviewed."""
        before = (plan.critical_path_length(), plan.critical_path())
        return self._effect(plan, Choice("parallel"), before,
                            f"{plan[self.task_a].title} and {plan[self.task_b].title} run in parallel; "
                            f"their merge of {', '.join(self.files)} will be reviewed",
                            [f"merge review: {self.task_a} + {self.task_b}"])


def merge_reviews(plan: Plan) -> list[dict[str, Any]]:
    """The pairs marked 'parallel': the integrator should have their merges reviewed."""
    return [r for r in plan.resolutions if r.get("choice") == "parallel"]


def choose_by_policy(collision: Collision, plan: Plan,
                     max_critical_path_growth: float = 0.25) -> tuple[Choice, str]:
    """Tiers 3-4: serialize when that lengthens the critical path by less than the share, else parallel.

    Of the two orders, the one that lengthens the critical path less is tried.
    """
    effects = [o.effect for o in collision.options(plan) if o.choice.action == "serialize"]
    best = min(effects, key=lambda e: e.growth, default=None)
    limit = f"{max_critical_path_growth:.0%}"
    if best is not None and best.growth < max_critical_path_growth:
        return best.choice, (f"serialized: {best.summary} (+{best.growth:.0%}, under the {limit} limit)")
    if best is None:
        return Choice("parallel"), "parallel: neither order can be serialized without a cycle"
    return Choice("parallel"), (f"parallel with merge review: serializing would lengthen the critical "
                                f"path by {best.growth:.0%} ({best.summary}), over the {limit} limit")


# --- prediction -----------------------------------------------------------------------------------

def unordered_pairs(plan: Plan, candidates: Iterable[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """Pairs of tasks that may run at the same time: neither reaches the other by full dependencies.

    `candidates`: only these pairs are tried (those sharing a file, found through an
    index), so a plan of thousands of tasks costs what its shared files cost, not n².
    """
    full = nx.DiGraph([(u, v) for u, v, p in plan.graph.edges(data="partial") if not p])
    full.add_nodes_from(plan.graph)
    position = {t.id: i for i, t in enumerate(plan.tasks)}
    if candidates is None:
        pairs: Iterable[tuple[str, str]] = itertools.combinations(position, 2)
    else:
        pairs = sorted({tuple(sorted(p, key=position.__getitem__)) for p in candidates if p[0] != p[1]},
                       key=lambda p: (position[p[0]], position[p[1]]))
    below: dict[str, set[str]] = {}

    def reaches(a: str, b: str) -> bool:
        if a not in below:
            below[a] = nx.descendants(full, a)
        return b in below[a]

    return [(a, b) for a, b in pairs if not reaches(a, b) and not reaches(b, a)]


def pairs_sharing(keys_by_task: dict[str, Iterable[str]]) -> set[tuple[str, str]]:
    """Pairs of tasks with a key (a file, a module) in common, through an index of key -> tasks."""
    holders: dict[str, list[str]] = {}
    for task, keys in keys_by_task.items():
        for key in set(keys):
            holders.setdefault(key, []).append(task)
    return {pair for tasks in holders.values() for pair in itertools.combinations(tasks, 2)}


def _resolved_files(plan: Plan, a: str, b: str) -> set[str]:
    """Files already decided about for this pair (split or parallel): not predicted again."""
    return {f for r in plan.resolutions if set(r.get("tasks", [])) == {a, b} for f in r.get("files", [])}


def predict_collisions(plan: Plan, repo_root: str | Path | None,
                       index: RepoIndex | None = None) -> list[Collision]:
    """Every predicted collision between tasks the plan lets run at the same time."""
    if index is None:
        has_repo = repo_root is not None and Path(repo_root).is_dir()
        index = RepoIndex.build(repo_root, None) if has_repo else RepoIndex([])
    prints = {t.id: footprint(t, index) for t in plan.tasks}
    reach = {t.id: set(prints[t.id]) | set(_reach(t, prints, index)) for t in plan.tasks}
    collisions = []
    for a, b in unordered_pairs(plan, pairs_sharing(reach)):
        ta, tb = plan[a], plan[b]
        evidence = {f: prints[a][f] + prints[b][f] for f in prints[a] if f in prints[b]}
        if not evidence:   # weaker evidence only when there is no stronger: it is the noisiest
            evidence = _shared_imports(ta, tb, prints, index)
        for done in _resolved_files(plan, a, b):
            evidence.pop(done, None)
        if evidence:
            files = sorted(evidence)
            collisions.append(Collision(a, b, files, {f: evidence[f] for f in files}, (ta.title, tb.title)))
    return collisions


# --- measuring --------------------------------------------------------------------------------------

def _covers(predicted: str, actual: str) -> bool:
    return predicted == actual or (is_glob(predicted) and fnmatch.fnmatchcase(actual, predicted)) \
        or (predicted.endswith("/") and actual.startswith(predicted))


def _by_pair(rows: set[tuple[frozenset[str], str]]) -> dict[frozenset[str], list[str]]:
    grouped: dict[frozenset[str], list[str]] = {}
    for pair, file in rows:
        grouped.setdefault(pair, []).append(file)
    return grouped


def score_predictions(predicted: list[Collision], actual_changed_files_by_task: dict[str, list[str] | set[str]],
                      plan: Plan | None = None) -> tuple[float, float, list[dict[str, Any]]]:
    """Precision and recall of predicted (pair, file) collisions against the files both tasks changed.

    A real collision is a file that both tasks of a pair changed. With `plan`
    (as it was when predicting, before any choice), only pairs it let run at
    the same time count; without it, every pair does. A predicted glob counts
    for the real files it matches. With nothing predicted precision is 1.0;
    with nothing real, recall is 1.0. `details` has one row per (pair, file),
    ready for a pandas DataFrame.
    """
    changed = {t: set(files) for t, files in actual_changed_files_by_task.items()}
    sharing = pairs_sharing(changed)
    pairs = unordered_pairs(plan, sharing) if plan is not None else sharing
    actual = {(frozenset((a, b)), f) for a, b in pairs for f in changed.get(a, set()) & changed.get(b, set())}
    guesses = {(c.pair, f) for c in predicted for f in c.files}
    real_by_pair, guessed_by_pair = _by_pair(actual), _by_pair(guesses)
    hit = {g for g in guesses if any(_covers(g[1], f) for f in real_by_pair.get(g[0], ()))}
    found = {r for r in actual if any(_covers(f, r[1]) for f in guessed_by_pair.get(r[0], ()))}
    details = [{"task_a": min(p), "task_b": max(p), "file": f, "predicted": True, "actual": (p, f) in hit}
               for p, f in sorted(guesses, key=lambda g: (sorted(g[0]), g[1]))]
    details += [{"task_a": min(p), "task_b": max(p), "file": f, "predicted": False, "actual": True}
                for p, f in sorted(actual - found, key=lambda g: (sorted(g[0]), g[1]))]
    precision = len(hit) / len(guesses) if guesses else 1.0
    recall = len(found) / len(actual) if actual else 1.0
    return precision, recall, details
