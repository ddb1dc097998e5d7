"""Reading a request as a careful engineer would, for the offline planner.

A request is split into sentences, then into clauses ("..., write tests for
them, and document them in the README"), and a clause whose object is a list of
things to build ("a JSON exporter and a YAML exporter") into one clause per
thing. Each clause is read for its verb, its object, the files and symbols it
names, and what a pronoun in it ("them") points back to. The planner builds
tasks and their order from these readings; nothing here calls a model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .task import TaskKind

# --- words ----------------------------------------------------------------------------------------

VERB_KINDS: dict[str, TaskKind] = {
    **dict.fromkeys(("document", "describe", "explain", "mention"), TaskKind.DOCS),
    **dict.fromkeys(("test", "cover", "unit-test"), TaskKind.TESTS),
    **dict.fromkeys(("fix", "bump", "correct", "patch", "tweak"), TaskKind.QUICK_FIX),
    **dict.fromkeys(("migrate", "rename", "move", "refactor", "restructure", "reorganize", "reorganise",
                     "extract", "split", "simplify", "clean", "consolidate", "deduplicate", "inline",
                     "remove", "delete", "drop", "deprecate", "convert", "port", "modernize", "replace"),
                    TaskKind.REFACTOR),
    **dict.fromkeys(("design", "choose", "pick", "decide", "evaluate", "propose", "plan", "architect",
                     "sketch"), TaskKind.ARCHITECTURE),
    **dict.fromkeys(("review", "audit", "inspect"), TaskKind.REVIEW),
}
BUILD_VERBS = {"add", "build", "create", "implement", "write", "make", "introduce", "develop", "provide",
               "set", "setup", "support", "extend", "include", "ship", "generate"}
OTHER_VERBS = {"update", "improve", "enable", "allow", "integrate", "wire", "expose", "validate", "handle",
               "upgrade", "optimize", "optimise", "speed", "harden", "secure", "protect",
               "rewrite", "ensure", "change", "adapt", "teach", "let", "log", "cache", "use", "translate",
               "localize", "paginate", "limit", "throttle", "store", "persist", "track", "send",
               "show", "display", "hook", "parallelize", "reduce", "raise", "return", "accept", "check"}
VERBS = set(VERB_KINDS) | BUILD_VERBS | OTHER_VERBS
# Words that are verbs only when an object follows them ("update the docs", not "a docs update").
AMBIGUOUS = {"test", "cover", "review", "design", "document", "support", "plan", "set", "use", "log",
             "cache", "store", "track", "change", "check", "limit", "patch", "split", "port", "drop",
             "show", "display", "hook", "return", "raise", "accept", "sketch", "move", "let", "include",
             "send", "correct", "clean", "tweak", "inline", "propose", "provide", "extend", "ship"}
# Verbs whose object alone makes a good title ("Build the auth module" -> "Auth Module").
QUIET_VERBS = BUILD_VERBS | {"update", "refactor", "improve", "rewrite", "document", "describe", "explain",
                             "test", "cover", "unit-test", "enable", "allow", "handle", "wire", "expose"}
PARTICLES = {"up", "out", "off", "down"}
DETERMINERS = {"a", "an", "the", "our", "my", "its", "their", "your", "this", "that", "these", "those",
               "some", "every", "each", "all", "any", "new", "another"}
PRONOUNS = {"it", "them", "they", "this", "these", "those", "that", "everything", "both"}
PREPOSITIONS = {"to", "in", "into", "for", "on", "with", "from", "at", "by", "so", "via", "using", "across",
                "under", "inside", "within", "per", "without", "behind", "through", "when", "where",
                "which", "that", "because", "before", "after", "instead", "as"}
MINOR = {"a", "an", "the", "and", "or", "of", "in", "on", "for", "to", "with", "by", "at", "from", "into",
         "as", "via", "per", "vs"}
ABBREVIATIONS = {"database": "DB", "db": "DB", "api": "API", "apis": "APIs", "ui": "UI", "cli": "CLI",
                 "jwt": "JWT", "sql": "SQL", "http": "HTTP", "https": "HTTPS", "css": "CSS", "json": "JSON",
                 "yaml": "YAML", "csv": "CSV", "uuid": "UUID", "url": "URL", "urls": "URLs", "ci": "CI",
                 "html": "HTML", "xml": "XML", "id": "ID", "ids": "IDs", "oauth": "OAuth", "sso": "SSO",
                 "rest": "REST", "graphql": "GraphQL", "pdf": "PDF", "smtp": "SMTP", "tls": "TLS",
                 "readme": "README", "changelog": "CHANGELOG", "cors": "CORS", "csrf": "CSRF", "2fa": "2FA",
                 "orm": "ORM", "s3": "S3", "sdk": "SDK", "dto": "DTO", "io": "IO"}
DOC_WORDS = {"doc", "docs", "documentation", "readme", "changelog", "docstring", "docstrings", "guide",
             "tutorial", "manual", "howto", "faq", "contributing", "usage", "runbook", "wiki"}
TEST_WORDS = {"test", "tests", "testing", "coverage", "spec", "specs", "unittest", "unittests",
              "fixtures", "fixture", "pytest"}
DATA_WORDS = {"schema", "schemas", "migration", "migrations", "table", "tables", "column", "columns",
              "database", "db", "index", "indexes", "sql", "orm", "model"}
FOUNDATION_VERBS = {"migrate", "upgrade"}     # what later work in the same request is built on
RELATIVE = {"that", "which", "who", "so", "because", "when", "where", "while", "if", "unless"}
GENERIC = {"module", "modules", "code", "feature", "features", "thing", "things", "part", "logic", "support",
           "function", "functions", "method", "methods", "class", "classes", "file", "files", "app",
           "application", "project", "repo", "everything", "change", "changes", "work", "new", "existing",
           "way", "case", "cases", "edge", "test", "tests", "unit", "docs", "doc", "documentation", "every",
           "all", "each", "readme", "section", "page", "pages"}
DOC_FILES = {"readme": "README.md", "changelog": "CHANGELOG.md", "contributing": "CONTRIBUTING.md",
             "license": "LICENSE", "authors": "AUTHORS.md"}
CODE_SUFFIXES = {"py", "pyi", "js", "ts", "tsx", "jsx", "go", "rs", "java", "kt", "rb", "php", "c", "h",
                 "cc", "cpp", "hpp", "cs", "swift", "scala", "sh", "sql", "html", "css", "scss", "vue",
                 "svelte", "toml", "cfg", "ini", "yaml", "yml", "json", "lock", "txt", "md", "rst", "ipynb",
                 "proto", "graphql", "env", "xml", "mk", "tf"}

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'`(\[])")
_ABBREV = re.compile(r"\b(e\.g|i\.e|etc|vs|cf)\.", re.IGNORECASE)
_LEAD = re.compile(r"^(?:(?:and|also|then|please|finally|next|first|second|third|lastly|afterwards|"
                   r"after that|additionally|plus|so|now|once that(?:'s| is) done|as well)\b[,:]?\s*|"
                   r"(?:i|we)(?:'d| would)? (?:want|need|like)(?: you)? to\s+|(?:you )?(?:should|must|need to)\s+|"
                   r"let's\s+|(?:can|could) you\s+|make sure (?:to|you)\s+|"
                   r"(?:i|we) want\s+)+", re.IGNORECASE)
_THEN = re.compile(r"^(?:then|afterwards|after that|once that(?:'s| is) done|finally)\b", re.IGNORECASE)
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(?:\[[ xX]\]\s+)?")
_WORD = re.compile(r"[A-Za-z0-9][\w./()'-]*[\w)]|[A-Za-z0-9]")
_PATH = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)+(?:[\w*.-]*)|[\w-]+(?:\.[\w-]+)*\.([A-Za-z]\w{0,5}))(?![\w/])")
_SYMBOL = re.compile(r"`([^`\s]{2,60})`|\b([A-Za-z_]\w*\(\))|\b([a-z][a-z0-9]*(?:_[a-z0-9]+)+)\b|"
                     r"\b([A-Z][a-z0-9]+(?:[A-Z][a-z0-9]+)+)\b")


# --- sentences and clauses ------------------------------------------------------------------------

def _protect(text: str) -> str:
    """Dots that end no sentence ("e.g.", "etc.") become a private mark until the split is done."""
    return _ABBREV.sub(lambda m: m.group(1) + "\x00", text)


def sentences(request: str) -> list[str]:
    """List items and lines, then sentences: 'Create a page. Also add X.' is two."""
    lines = [_LIST_ITEM.sub("", line).strip() for line in request.strip().splitlines()]
    found = []
    for line in filter(None, lines):
        found += [s.replace("\x00", ".") for s in _SENTENCE.split(_protect(line))]
    return [s.strip() for s in found if s.strip(" .!?")]


def _is_verb_at(words: list[str], i: int) -> bool:
    """Whether words[i] starts a new clause: a verb, and for ambiguous ones an object after it."""
    word = words[i].lower()
    if word not in VERBS:
        return False
    if word not in AMBIGUOUS:
        return True
    following = words[i + 1].lower() if i + 1 < len(words) else ""
    return following in DETERMINERS | PRONOUNS | PARTICLES | {"for"} or bool(_PATH.fullmatch(following)) \
        or bool(_SYMBOL.fullmatch(words[i + 1] if i + 1 < len(words) else ""))


def _clause_starts(sentence: str) -> list[int]:
    """Character offsets where a clause begins: after ';', ', then', 'and then', and before a verb
    that follows ',' or 'and' (', and write tests', ' and update every query')."""
    starts = [0]
    tokens = list(re.finditer(r"\S+", sentence))
    words = [t.group().strip(",;:") for t in tokens]
    for i in range(1, len(tokens)):
        before = tokens[i - 1].group()
        word = words[i].lower()
        joined = before.endswith((",", ";")) or before.lower() in ("and", "then", "or")
        if before.endswith(";") or (word == "then" and (before.endswith(",") or before.lower() == "and")):
            starts.append(tokens[i].start())
        elif word == "then" and i + 1 < len(words) and _is_verb_at(words, i + 1):
            starts.append(tokens[i].start())
        elif joined and before.lower() != "or" and _is_verb_at(words, i):
            prev = tokens[i - 2].group().lower() if i >= 2 else ""
            if before.lower() == "and" and prev.endswith(","):
                starts.append(tokens[i - 1].start())
            elif before.lower() in ("and", "then") or before.endswith((",", ";")):
                starts.append(tokens[i - 1].start() if before.lower() in ("and", "then") else tokens[i].start())
    return sorted(set(starts))


def split_sentence(sentence: str) -> list[str]:
    cuts = _clause_starts(sentence) + [len(sentence)]
    parts = [sentence[a:b] for a, b in zip(cuts, cuts[1:])]
    return [p.strip().strip(",;").strip() for p in parts if p.strip(" ,;.")]


def clauses_with_order(request: str) -> list[tuple[str, bool]]:
    """Each clause, and whether 'then' (or 'after that') put it after the clause before it."""
    clauses = []
    for sentence in sentences(request):
        for part in split_sentence(sentence):
            part = part.strip()
            then = bool(_THEN.match(re.sub(r"^and\s+", "", part, flags=re.IGNORECASE)))
            part = _LEAD.sub("", part).strip(" .!?,;")
            if part:
                clauses.append((part, then))
    return clauses


def split_clauses(request: str) -> list[str]:
    """The request's clauses, without leading 'and', 'then', 'also' and trailing dots."""
    return [text for text, _ in clauses_with_order(request)]


# --- one clause -----------------------------------------------------------------------------------

@dataclass
class Clause:
    """One thing to do, as read from the request."""

    text: str                         # the clause as written (without 'and', 'then', 'also')
    verb: str = ""                    # lowercased base verb, '' when the clause has none
    particle: str = ""                # 'up' in 'set up'
    obj: list[str] = field(default_factory=list)   # the object phrase's words, as written
    obj_text: str = ""                # the object phrase as written, with its commas
    siblings: int = 0                 # clauses split from one list of things share this number (0: none)
    kind: TaskKind = TaskKind.CODE
    then: bool = False                # introduced by 'then': comes after the clause before it
    files: list[str] = field(default_factory=list)
    symbols: set[str] = field(default_factory=set)
    pronoun: bool = False             # the object is, or is about, 'it' / 'them': the clause before

    @property
    def core(self) -> list[str]:
        """The object up to its first preposition: 'discount codes' of 'discount codes to the cart'."""
        words = _drop_determiners(self.obj)
        for i, word in enumerate(words[1:], 1):
            if word.lower() in PREPOSITIONS:
                return words[:i]
        return words

    @property
    def topic(self) -> set[str]:
        """Content words of the object, normalised, for telling which tasks one describes."""
        return {norm_word(w) for w in self.obj if is_content_word(w) and not _PATH.fullmatch(w)}

    @property
    def foundation(self) -> bool:
        """A schema or data change, or a design: what other code is built on, so it goes first."""
        if self.kind is TaskKind.ARCHITECTURE:
            return True
        if self.kind not in (TaskKind.CODE, TaskKind.REFACTOR):
            return False
        words = {w.lower().strip("()") for w in self.obj if not _PATH.fullmatch(w)}
        return self.verb in FOUNDATION_VERBS or bool(words & DATA_WORDS)


def _words(text: str) -> list[str]:
    return [w.rstrip(".,;:!?") for w in _WORD.findall(text) if w.rstrip(".,;:!?")]


def _drop_determiners(words: list[str]) -> list[str]:
    i = 0
    while i < len(words) - 1 and words[i].lower() in DETERMINERS:
        i += 1
    return words[i:]


def norm_word(word: str) -> str:
    """'Queries' -> 'query', 'codes' -> 'code': enough stemming to match a task to its tests."""
    w = word.lower().strip("()`'")
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        return w[:-1]
    return w


def is_content_word(word: str) -> bool:
    w = word.lower()
    return w not in MINOR and w not in DETERMINERS and w not in PRONOUNS and w not in GENERIC \
        and w not in PREPOSITIONS and len(w) > 1


def read_clause(text: str) -> Clause:
    """Verb, object, kind, files and symbols of one clause."""
    words = _words(text)
    clause = Clause(text)
    start = 0
    if words and words[0].lower() in VERBS:
        clause.verb, start = words[0].lower(), 1
        if start < len(words) and words[start].lower() in PARTICLES:
            clause.particle, start = words[start].lower(), start + 1
    clause.obj = words[start:]
    skip = re.match(r"\s*\S+" * start, text)
    clause.obj_text = text[skip.end():].strip() if skip and start else text.strip()
    clause.files = named_files(text)
    clause.symbols = named_symbols(text)
    first = clause.obj[0].lower() if clause.obj else ""
    clause.pronoun = first in PRONOUNS or any(w.lower() in ("it", "them", "they") for w in clause.obj)
    clause.kind = kind_of(clause)
    return clause


def kind_of(clause: Clause) -> TaskKind:
    """The verb decides (document -> docs, fix -> quick_fix, ...); after a generic verb ('add',
    'update', 'write') the object does (tests -> tests, the README -> docs); else code."""
    if clause.verb in VERB_KINDS:
        return VERB_KINDS[clause.verb]
    words = {w.lower() for w in (clause.obj if clause.verb else _words(clause.text))}
    core = {w.lower() for w in clause.core} if clause.verb else words
    if core & TEST_WORDS:
        return TaskKind.TESTS
    if words & DOC_WORDS or any(is_doc_file(f) for f in clause.files):
        return TaskKind.DOCS
    if not clause.verb:
        return _kind_by_keyword(words)
    return TaskKind.CODE


_KEYWORDS: list[tuple[TaskKind, set[str]]] = [
    (TaskKind.REVIEW, {"review", "audit"}),
    (TaskKind.REFACTOR, {"refactor", "cleanup", "rename", "migration", "restructure"}),
    (TaskKind.QUICK_FIX, {"fix", "typo", "bump", "hotfix", "bugfix"}),
    (TaskKind.ARCHITECTURE, {"design", "architecture", "adr"}),
]


def _kind_by_keyword(words: set[str]) -> TaskKind:
    """For text with no verb (a title such as 'Cleanup Old Code'): its telling words."""
    for kind, keys in _KEYWORDS:
        if words & keys:
            return kind
    return TaskKind.CODE


def is_doc_file(path: str) -> bool:
    return path.lower().endswith((".md", ".rst", ".adoc")) or path.startswith("docs/")


def named_files(text: str) -> list[str]:
    """Files and folders a clause names: 'models.py', 'docs/api.md', 'shop/', and 'the README'."""
    found = []
    for match in _PATH.finditer(text):
        path, suffix = match.group(1).rstrip("."), (match.group(2) or "").lower()
        if "/" not in path and suffix not in CODE_SUFFIXES:
            continue                                   # 'e.g', 'v1.2', 'Node.js'
        if re.fullmatch(r"[\d.]+", path) or "://" in text[max(0, match.start() - 3):match.start() + 1]:
            continue
        found.append(path + "**" if path.endswith("/") else path)
    for word in re.findall(r"\b([A-Za-z]+)\b(?!\.\w)", text):
        if word.lower() in DOC_FILES and (word.isupper() or word.lower() in ("readme", "changelog")):
            if not any(f.lower().startswith(word.lower()) or f"/{word.lower()}" in f.lower() for f in found):
                found.append(DOC_FILES[word.lower()])
    return list(dict.fromkeys(found))


def named_symbols(text: str) -> set[str]:
    """Code names a clause mentions: `backticked`, call(), snake_case, CamelCase."""
    names = set()
    for groups in _SYMBOL.findall(text):
        name = next(g for g in groups if g).removesuffix("()")
        if not _PATH.fullmatch(name) or "." not in name:
            names.add(name)
    return names


# --- lists of things to build ---------------------------------------------------------------------

def split_objects(clause: Clause) -> list[Clause]:
    """'Add a JSON exporter and a YAML exporter' -> one clause per exporter, when every item is a
    thing of its own (each with its article) and the verb builds things; a shared tail ('to the
    report module') goes with each."""
    if clause.verb not in BUILD_VERBS or clause.kind not in (TaskKind.CODE, TaskKind.DOCS) \
            or len(clause.obj) < 5:
        return [clause]
    parts = [p for p in re.split(r"\s*,\s*(?:and\s+)?|\s+and\s+", clause.obj_text.strip(" .")) if p]
    articled = [p.split()[0].lower() in ("a", "an", "the", "another") for p in parts]
    if len(parts) < 2 or not all(articled[1:]) or (not articled[0] and len(parts[0].split()) < 2):
        return [clause]
    last = parts[-1].split()
    tail_at = next((i for i, w in enumerate(last[1:], 1) if w.lower() in PREPOSITIONS), None)
    tail = " ".join(last[tail_at:]) if tail_at else ""
    if tail:
        parts[-1] = " ".join(last[:tail_at])
    verb = " ".join(w for w in (clause.verb, clause.particle) if w)
    verb = verb[:1].upper() + verb[1:]
    split = [read_clause(" ".join(x for x in (verb, part, tail) if x)) for part in parts]
    for one in split:
        one.siblings = id(clause)
    return split


# --- titles ---------------------------------------------------------------------------------------

def _cap(word: str, first: bool) -> str:
    low = word.lower()
    if low in ABBREVIATIONS:
        return ABBREVIATIONS[low]
    if not word.isalpha() or any(c.isupper() for c in word[1:]) or word.isupper() and len(word) > 1:
        return word                                    # files, symbols, acronyms as written
    if low in MINOR and not first:
        return low
    return word[:1].upper() + word[1:]


def headline(words: list[str], max_words: int = 7, max_chars: int = 50) -> str:
    """Title case that keeps files, symbols and acronyms as written; cut at a word, never on 'the'."""
    kept: list[str] = []
    for word in words:
        if kept and word.lower() in RELATIVE:
            break
        if len(kept) >= max_words or len(" ".join(kept + [word])) > max_chars:
            break
        kept.append(word)
    while len(kept) > 1 and kept[-1].lower() in MINOR | PREPOSITIONS | DETERMINERS:
        kept.pop()
    return " ".join(_cap(w, i == 0) for i, w in enumerate(kept))


def title_words(clause: Clause, antecedent: Clause | None = None) -> list[str]:
    """The object phrase without filler; 'them' becomes what it stands for; 'add X to Y' reads
    'X in Y'; tests and docs say so ('Tests for Discount Codes')."""
    words = _drop_determiners(list(clause.obj))
    if antecedent is not None:
        words = _replace_pronouns(words, antecedent.core)
    if clause.verb in ("add", "integrate", "wire") and "to" in [w.lower() for w in words[1:]]:
        at = [w.lower() for w in words].index("to", 1)
        words = words[:at] + ["in"] + words[at + 1:]
    lowered = [w.lower() for w in words]
    if clause.kind is TaskKind.TESTS and not set(lowered) & TEST_WORDS:
        words = ["Tests", "for"] + words
    elif clause.kind is TaskKind.DOCS and clause.verb in ("document", "describe", "explain") \
            and not set(lowered) & DOC_WORDS:
        words = ["Docs", "for"] + words
    elif clause.verb and clause.verb not in QUIET_VERBS:
        words = [clause.verb] + ([clause.particle] if clause.particle else []) + words
    return words or _words(clause.text)


def _replace_pronouns(words: list[str], core: list[str]) -> list[str]:
    out: list[str] = []
    for word in words:
        if word.lower() in ("it", "them", "they", "these", "those") or (word.lower() in ("this", "that")
                                                                      and not out):
            out += core
        else:
            out.append(word)
    return out
