"""Score the offline planner, and collision prediction, on hand-written plans for 50+ requests.

    python benchmarks/planner_corpus.py            # today's planner next to the committed one (git HEAD)
    python benchmarks/planner_corpus.py --show     # also each request's plan and what differs

The corpus (benchmarks/planner_corpus.md) holds requests with the plan a
careful engineer would write. Predicted tasks are matched to expected ones by
title words and kind; then the benchmark counts

- tasks: requests split into the right number of tasks;
- kinds: expected tasks whose matched task has the right kind;
- titles: word overlap (F1 of content words, plurals folded) with the expected title;
- order: precision and recall of "A before B" (the plan's transitive closure);
- writes: precision and recall of (task, file) in `writes`;
- whole plan: the right tasks, kinds, order and writes at once.

Collision prediction is scored twice on the corpus repository (REPO below):
on the planner's own plans (what a user without a model key gets) and on the
corpus's careful plans (which declare `writes:` where the request names files),
both against the files each task really changes (`changes:` in the corpus).

The baseline is the code before issue 17 (commit BASELINE): `git show
BASELINE:osqr_nb/plan/decompose.py` (and collisions.py), loaded at run time, so
both columns come from one run; `--baseline HEAD` compares with the last commit.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
import tempfile
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from osqr_nb.plan import collisions as collisions_now  # noqa: E402
from osqr_nb.plan import decompose as decompose_now  # noqa: E402
from osqr_nb.plan.task import Plan, Task  # noqa: E402

CORPUS = Path(__file__).with_name("planner_corpus.md")
BASELINE = "5d4abaf"      # the planner and collision prediction that issue 17 describes

REPO: dict[str, str] = {
    "README.md": "# shop\n\nA small web shop.\n",
    "CHANGELOG.md": "# Changelog\n",
    "pyproject.toml": "[project]\nname = 'shop'\ndependencies = ['requests==2.31', 'django==4.2']\n",
    "docs/api.md": "# API\n",
    "docs/install.md": "# Install\n",
    "shop/__init__.py": "from .cart import Cart\n",
    "shop/cart.py": "from .pricing import price_of\n\n\nclass Cart:\n    def add_item(self, item):\n"
                    "        pass\n\n    def total(self):\n        return 0\n",
    "shop/pricing.py": "def price_of(item):\n    return 0\n\n\ndef apply_tax(amount):\n    return amount\n",
    "shop/checkout.py": "from .cart import Cart\nfrom .pricing import apply_tax\n\n\ndef checkout(cart):\n"
                        "    return apply_tax(cart.total())\n",
    "models.py": "class User:\n    pass\n\n\nclass Order:\n    pass\n\n\ndef get_user(user_id):\n"
                 "    return User()\n",
    "views.py": "from models import Order, User, get_user\n\n\ndef user_detail(request):\n    pass\n\n\n"
                "def order_list(request):\n    pass\n\n\ndef paginate(items, page):\n    return items\n",
    "api/__init__.py": "",
    "api/routes.py": "from views import order_list, user_detail\n\n\ndef register_routes(app):\n    pass\n",
    "api/middleware.py": "def request_logger(request):\n    pass\n",
    "auth/__init__.py": "",
    "auth/login.py": "from utils import slugify\n\n\ndef login(request):\n    pass\n\n\n"
                     "def logout(request):\n    pass\n",
    "auth/tokens.py": "def issue_token(user):\n    pass\n\n\ndef verify_token(token):\n    pass\n",
    "utils.py": "def slugify(text):\n    return text\n\n\ndef format_date(d):\n    return str(d)\n",
    "exporters/__init__.py": "EXPORTERS = {}\n",
    "exporters/csv.py": "from . import EXPORTERS\n\n\ndef export_csv(rows):\n    pass\n",
    "cli.py": "from exporters import EXPORTERS\n\n\ndef main():\n    pass\n",
    "config.py": "SETTINGS = {}\n",
    "db/schema.sql": "CREATE TABLE users (id INTEGER PRIMARY KEY);\n",
    "migrations/0001_initial.py": "OPERATIONS = []\n",
    "parser.py": "from lexer import tokenize\n\n\ndef parse(text):\n    return tokenize(text)\n",
    "lexer.py": "def tokenize(text):\n    return text.split()\n",
    "search.py": "from models import Order\n\n\ndef search_orders(query):\n    return []\n",
    "scheduler.py": "def schedule(jobs):\n    return jobs\n",
    "notifications/__init__.py": "",
    "notifications/email.py": "from config import SETTINGS\n\n\ndef send_email(to, body):\n    pass\n",
    "tests/test_cart.py": "def test_cart():\n    pass\n",
    "tests/test_pricing.py": "def test_price():\n    pass\n",
    "tests/test_views.py": "def test_views():\n    pass\n",
    "tests/test_parser.py": "def test_parse():\n    pass\n",
}

STOP = {"a", "an", "the", "and", "or", "of", "in", "on", "for", "to", "with", "by", "at", "from", "into", "as"}


# --- the corpus -----------------------------------------------------------------------------------

@dataclass
class Entry:
    name: str
    request: str
    plan: Plan
    changes: dict[str, list[str]] = field(default_factory=dict)   # task id -> files it really changes


_TASK = re.compile(r"^- \[(?P<id>[^\]]+)\] (?P<title>.+?) \((?P<kind>\w+)\)(?: after (?P<after>.+))?$")


def _paths(value: str) -> list[str]:
    return [p.strip() for p in value.split(",") if p.strip()]


def _entry(name: str, lines: list[str]) -> Entry:
    request = "\n".join(line[2:] for line in lines if line.startswith(">"))
    tasks: list[Task] = []
    changes: dict[str, list[str]] = {}
    for line in lines:
        found = _TASK.match(line)
        if found:
            tasks.append(Task(found["id"], found["title"], found["kind"],
                              depends_on=_paths(found["after"] or "")))
        elif line.strip().startswith(("writes:", "changes:")):
            key, _, value = line.strip().partition(":")
            if key == "writes":
                tasks[-1].writes = _paths(value)
            else:
                changes[tasks[-1].id] = _paths(value)
    for task in tasks:
        changes.setdefault(task.id, [w for w in task.writes if "*" not in w])
    return Entry(name, request, Plan(tasks, request=request), changes)


def load_corpus(path: Path = CORPUS) -> list[Entry]:
    """The entries of the corpus file, each with its expected plan."""
    entries, name, lines = [], None, []
    for line in path.read_text(encoding="utf-8").splitlines() + ["## end"]:
        if line.startswith("## "):
            if name:
                entries.append(_entry(name, lines))
            name, lines = line[3:].strip(), []
        elif name:
            lines.append(line)
    return entries


def committed_module(relative: str, name: str, ref: str = BASELINE) -> types.ModuleType:
    """A module of osqr_nb as committed at `ref`, importable beside today's one."""
    source = subprocess.run(["git", "show", f"{ref}:{relative}"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout
    spec = importlib.util.spec_from_loader(f"osqr_nb.plan.{name}", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "osqr_nb.plan"
    sys.modules[module.__name__] = module
    exec(compile(source, f"HEAD:{relative}", "exec"), module.__dict__)
    return module


# --- matching and scoring -------------------------------------------------------------------------

def _words(title: str) -> set[str]:
    words = set()
    for word in re.findall(r"[\w.()/-]+", title.lower()):
        word = word.strip("()")
        if word in STOP or not word:
            continue
        words.add(word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word)
    return words


def title_f1(a: str, b: str) -> float:
    x, y = _words(a), _words(b)
    common = len(x & y)
    return 2 * common / (len(x) + len(y)) if common else 0.0


def match(expected: Plan, predicted: Plan) -> dict[str, str]:
    """Expected task id -> predicted task id: the best pairs by title words (and kind), greedily."""
    pairs = sorted(((title_f1(e.title, p.title) + (0.3 if e.kind == p.kind else 0.0), e.id, p.id)
                    for e in expected.tasks for p in predicted.tasks), reverse=True)
    matched: dict[str, str] = {}
    for score, e, p in pairs:
        if score > 0 and e not in matched and p not in matched.values():
            matched[e] = p
    if len(expected) == len(predicted) == 1 and not matched:
        matched[expected.tasks[0].id] = predicted.tasks[0].id
    return matched


def _closure(plan: Plan) -> set[tuple[str, str]]:
    return set(nx.transitive_closure_dag(plan.graph).edges)


@dataclass
class Tally:
    """Counts over the corpus, turned into the figures the benchmark prints."""

    requests: int = 0
    right_count: int = 0
    expected: int = 0
    predicted: int = 0
    matched: int = 0
    kinds: int = 0
    title: float = 0.0
    order_hit: int = 0
    order_pred: int = 0
    order_true: int = 0
    writes_hit: int = 0
    writes_pred: int = 0
    writes_true: int = 0
    whole: int = 0

    def add(self, entry: Entry, predicted: Plan) -> list[str]:
        """Count one request; returns what differed (for --show)."""
        expected, m = entry.plan, match(entry.plan, predicted)
        back = {p: e for e, p in m.items()}
        self.requests += 1
        self.right_count += len(expected) == len(predicted)
        self.expected += len(expected)
        self.predicted += len(predicted)
        self.matched += len(m)
        notes = [] if len(expected) == len(predicted) else [f"{len(predicted)} tasks, not {len(expected)}"]
        kinds_ok = writes_ok = True
        for task in expected.tasks:
            other = predicted[m[task.id]] if task.id in m else None
            if other is not None and other.kind == task.kind:
                self.kinds += 1
            elif other is not None:
                kinds_ok = False
                notes.append(f"{task.id}: kind {other.kind.value}, not {task.kind.value}")
            self.title += title_f1(task.title, other.title) if other else 0.0
            want, got = set(task.writes), set(other.writes) if other else set()
            self.writes_true += len(want)
            self.writes_pred += len(got)
            self.writes_hit += len(want & got)
            if want != got:
                writes_ok = False
                notes.append(f"{task.id}: writes {sorted(got)}, not {sorted(want)}")
        true = _closure(expected)
        guessed = {(back[a], back[b]) for a, b in _closure(predicted) if a in back and b in back}
        guessed |= {(a, b) for a, b in _closure(predicted) if a not in back or b not in back}
        self.order_true += len(true)
        self.order_pred += len(guessed)
        self.order_hit += len(true & guessed)
        if true != guessed:
            notes.append(f"order {sorted(guessed)}, not {sorted(true)}")
        self.whole += len(m) == len(expected) == len(predicted) and kinds_ok and writes_ok and true == guessed
        return notes

    def figures(self) -> dict[str, str]:
        def share(a: float, b: float) -> str:
            return f"{a / b:.0%} ({a:g}/{b:g})" if b else "-"
        return {
            "right number of tasks": share(self.right_count, self.requests),
            "tasks matched (of expected)": share(self.matched, self.expected),
            "kinds right (of expected)": share(self.kinds, self.expected),
            "title words (mean F1)": f"{self.title / self.expected:.2f}",
            "order: precision": share(self.order_hit, self.order_pred),
            "order: recall": share(self.order_hit, self.order_true),
            "writes: precision": share(self.writes_hit, self.writes_pred),
            "writes: recall": share(self.writes_hit, self.writes_true),
            "whole plan right": share(self.whole, self.requests),
        }


def score_planner(entries: list[Entry], planner: Any, repo: Path | None = None,
                  show: bool = False) -> Tally:
    tally = Tally()
    for entry in entries:
        predicted = planner.plan(entry.request, str(repo) if repo else None)
        notes = tally.add(entry, predicted)
        if show:
            print(f"\n## {entry.name}: {entry.request!r}")
            for task in predicted.tasks:
                after = f" after {', '.join(task.depends_on)}" if task.depends_on else ""
                print(f"  - [{task.id}] {task.title} ({task.kind.value}){after}  writes: {task.writes}")
            for note in notes:
                print(f"    ! {note}")
    return tally


# --- collisions -----------------------------------------------------------------------------------

def make_repo(root: Path) -> Path:
    for name, text in REPO.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    env = {"GIT_AUTHOR_NAME": "c", "GIT_AUTHOR_EMAIL": "c@x", "GIT_COMMITTER_NAME": "c",
           "GIT_COMMITTER_EMAIL": "c@x", "PATH": "/usr/bin:/bin:/usr/local/bin"}
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "corpus"]):
        subprocess.run(["git", *args], cwd=root, check=True, env=env, capture_output=True)
    return root


@dataclass
class CollisionTally:
    hit: int = 0
    guesses: int = 0
    found: int = 0
    real: int = 0
    warnings: int = 0

    def add(self, predicted: list[Any], changed: dict[str, list[str]], plan: Plan, score: Callable) -> None:
        precision, recall, details = score(predicted, changed, plan)
        guesses = [d for d in details if d["predicted"]]
        real = [d for d in details if d["actual"]]
        self.guesses += len(guesses)
        self.hit += sum(d["actual"] for d in guesses)
        self.real += len(real)
        self.found += sum(d["predicted"] for d in real)
        self.warnings += len(predicted)

    def figures(self) -> dict[str, str]:
        def share(a: int, b: int) -> str:
            return f"{a / b:.0%} ({a}/{b})" if b else "- (0/0)"
        return {"precision": share(self.hit, self.guesses), "recall": share(self.found, self.real),
                "warnings shown": str(self.warnings)}


def score_collisions(entries: list[Entry], planner: Any, module: types.ModuleType, repo: Path) -> dict:
    """Collision prediction on the planner's plans (None: the corpus's own) against `changes`."""
    index = module.RepoIndex.build(repo)
    tally = CollisionTally()
    for entry in entries:
        plan = entry.plan if planner is None else planner.plan(entry.request, str(repo))
        m = {e: e for e in entry.changes} if planner is None else match(entry.plan, plan)
        changed = {m[e]: files for e, files in entry.changes.items() if e in m}
        predicted = module.predict_collisions(plan, repo, index=index)
        tally.add(predicted, changed, plan, module.score_predictions)
    return tally.figures()


def table(title: str, before: dict[str, str], after: dict[str, str], ref: str = BASELINE) -> str:
    width = max(len(k) for k in before) + 2
    lines = [title, f"{'':{width}}{'before (' + ref + ')':>22}{'now':>22}"]
    lines += [f"{key:{width}}{before[key]:>22}{after[key]:>22}" for key in before]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--show", action="store_true", help="print each plan and what differs")
    parser.add_argument("--baseline", default=BASELINE, help=f"git commit to compare with (default {BASELINE})")
    args = parser.parse_args()
    entries = load_corpus()
    old_plan = committed_module("osqr_nb/plan/decompose.py", "_decompose_head", args.baseline)
    old_coll = committed_module("osqr_nb/plan/collisions.py", "_collisions_head", args.baseline)
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(Path(tmp))
        before = score_planner(entries, old_plan.OfflinePlanner(), repo).figures()
        after = score_planner(entries, decompose_now.OfflinePlanner(), repo, show=args.show).figures()
        tasks = sum(len(e.plan) for e in entries)
        ref = args.baseline
        print(table(f"Offline planner on {len(entries)} requests ({tasks} expected tasks)", before, after, ref))
        print()
        print(table("Collisions on the planner's own plans (old planner + old prediction vs now)",
                    score_collisions(entries, old_plan.OfflinePlanner(), old_coll, repo),
                    score_collisions(entries, decompose_now.OfflinePlanner(), collisions_now, repo), ref))
        print()
        print(table("Collisions on the corpus's careful plans (same plans, old prediction vs now)",
                    score_collisions(entries, None, old_coll, repo),
                    score_collisions(entries, None, collisions_now, repo), ref))


if __name__ == "__main__":
    main()
