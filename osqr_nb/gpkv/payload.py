"""The aggregate payload osqr-nb users may share with osqr-gpkv, and its validation.

One module, shared by the client and the server, so that what the client checks
before sending is exactly what the server accepts. It uses the standard library
only: a server needs neither pandas nor kernel code to validate an upload.

Only counts and sums ever leave the machine. No code, text, file names, repo
names, run or task ids: the schema has no place for them, and the server
refuses any field it does not know (nothing is stored from a refused upload).

The payload, schema version 1 (JSON, UTF-8, at most `MAX_BODY_BYTES`):

    {
      "schema": 1,
      "contributor": "<UUID4>",   # random per installation, derived from nothing
      "upload_id": "<UUID4>",     # random per upload; a repeated one is ignored
      "decisions": [              # at most MAX_DECISION_ROWS, each group once
        {"category": "auth", "task_kind": "code", "model": "claude-sonnet-4-5",
         "bin": 7,                # confidence bin: 7 is [0.7, 0.8)
         "accepted": 12,          # the person kept the agent's choice
         "overridden": 3}         # the person chose something else
      ],
      "routes": [                 # at most MAX_ROUTE_ROWS, each (task_kind, model) once
        {"task_kind": "code", "model": "claude-sonnet-4-5",
         "successes": 9, "failures": 1, "n": 10,
         "cost_usd_sum": 1.25, "seconds_sum": 310.5}
      ]
    }

Every field is required. Names come from the product's vocabulary, so that no
free text can ride along: task_kind is one of `TASK_KINDS`, category one of
`CATEGORIES`, model a public model family and version (`MODEL_PATTERN`: e.g.
claude-sonnet-4-5, gpt-4o-mini, ft:gpt-4o-mini, never a fine-tune's organisation
or suffix), and any of them may be "other" or "unknown". `shared_name` and
`shared_model` map what a client has onto these names.
Confidence bins are the integers 0-9: bin i holds confidences in [i/10, (i+1)/10),
and bin 9 holds [0.9, 1.0]. Counts are integers in [0, MAX_COUNT]; a decision row
has at least one decision and a route row at least one outcome
(successes + failures <= n); sums are finite numbers in [0, MAX_SUM]. Each upload
carries increments: the server adds them to what the contributor sent before.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

SCHEMA_VERSION = 1
BINS = 10
NAME_PATTERN = r"[a-z0-9_.:-]{1,64}"
MAX_BODY_BYTES = 256 * 1024
MAX_DECISION_ROWS = 2000
MAX_ROUTE_ROWS = 500
MAX_COUNT = 1_000_000           # per row and upload: more than any person decides between uploads
MAX_SUM = 1e9                   # dollars or seconds per row and upload

_NAME = re.compile(NAME_PATTERN)
UNNAMED = frozenset({"other", "unknown"})
TASK_KINDS = frozenset({"code", "architecture", "docs", "quick_fix", "review", "refactor", "tests"})
CATEGORIES = frozenset({
    "general", "file_change", "errors", "provider", "command", "collision", "merge", "budget", "check",
    "auth", "data_model", "api", "security", "performance", "dependencies", "naming", "style",
    "error_handling", "config", "database", "testing", "tests", "docs", "ui", "architecture", "refactor",
    "logging", "deployment",
})
MODEL_FAMILIES = ("claude", "gpt", "o1", "o3", "o4", "codex", "gemini", "llama", "mistral", "mixtral", "qwen",
                  "deepseek", "grok")
_VERSION = r"[0-9]+(\.[0-9]+)*[a-z]?b?|[0-9]+x[0-9]+b|[0-9]{4}-[0-9]{2}-[0-9]{2}"
_WORD = (r"opus|sonnet|haiku|mini|nano|turbo|pro|flash|lite|preview|latest|instruct|chat|coder|codex|large|"
         r"medium|small|max|plus|vision|reasoner|exp|thinking|high|low|v[0-9]+(\.[0-9]+)*")
MODEL_PATTERN = rf"(ft:)?({'|'.join(MODEL_FAMILIES)})-?({_VERSION})?(-({_VERSION}|{_WORD}))*"
_MODEL = re.compile(MODEL_PATTERN)
TOP_FIELDS = ("schema", "contributor", "upload_id", "decisions", "routes")
DECISION_FIELDS = ("category", "task_kind", "model", "bin", "accepted", "overridden")
ROUTE_FIELDS = ("task_kind", "model", "successes", "failures", "n", "cost_usd_sum", "seconds_sum")


class PayloadError(ValueError):
    """An upload the server would refuse; `status` is the HTTP status it answers with."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class DecisionCount:
    """Accepted and overridden decisions of one (category, task_kind, model, bin) group."""

    category: str
    task_kind: str
    model: str
    bin: int
    accepted: int
    overridden: int

    @property
    def group(self) -> tuple[str, str, str, int]:
        return self.category, self.task_kind, self.model, self.bin


@dataclass(frozen=True)
class RouteOutcome:
    """How one (task_kind, model) route went: outcomes, dollars and seconds, summed."""

    task_kind: str
    model: str
    successes: int
    failures: int
    n: int
    cost_usd_sum: float
    seconds_sum: float

    @property
    def group(self) -> tuple[str, str]:
        return self.task_kind, self.model


@dataclass(frozen=True)
class Payload:
    """One upload: a contributor's new counts since its last upload."""

    contributor: str
    upload_id: str
    decisions: tuple[DecisionCount, ...] = ()
    routes: tuple[RouteOutcome, ...] = ()
    schema: int = field(default=SCHEMA_VERSION)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema, "contributor": self.contributor, "upload_id": self.upload_id,
                "decisions": [asdict(d) for d in self.decisions], "routes": [asdict(r) for r in self.routes]}

    def to_json(self, indent: int | None = None) -> str:
        """The body as sent (compact) or as previewed (indented): the same JSON value."""
        separators = (",", ": ") if indent else (",", ":")
        return json.dumps(self.to_dict(), indent=indent, separators=separators, allow_nan=False)


def new_id() -> str:
    """A random UUID4: the only kind of id the payload carries (uuid1 would embed a MAC address)."""
    return str(uuid.uuid4())


def bin_of(confidence: float) -> int:
    """The bin of a confidence in [0, 1]; 1.0 belongs to the last bin."""
    if not isinstance(confidence, (int, float)) or not 0.0 <= confidence <= 1.0:
        raise PayloadError(f"a confidence must be a number in [0, 1], not {confidence!r}")
    return min(int(confidence * BINS + 1e-9), BINS - 1)


def bin_edges(index: int) -> tuple[float, float]:
    return round(index / BINS, 10), round((index + 1) / BINS, 10)


# --- decoding ---------------------------------------------------------------------------------

def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise PayloadError(f"the JSON repeats the key(s) {', '.join(map(repr, repeated))}", 400)
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise PayloadError(f"the JSON contains {name}, which is not a number", 400)


def parse_json(body: bytes) -> Any:
    """Strict JSON: UTF-8, no repeated keys, no NaN or Infinity."""
    try:
        text = body.decode("utf-8")
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise PayloadError("the body is not UTF-8 text", 400) from None
    except (ValueError, RecursionError) as error:
        if isinstance(error, PayloadError):
            raise
        raise PayloadError(f"the body is not valid JSON ({error})", 400) from None


def decode(body: bytes) -> Payload:
    """A request body as a valid payload, or a PayloadError that says what is wrong."""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadError(f"the body is larger than {MAX_BODY_BYTES} bytes; send fewer rows per upload", 413)
    return validate(parse_json(body))


# --- validation -------------------------------------------------------------------------------

def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _object(value: Any, fields: tuple[str, ...], where: str) -> dict[str, Any]:
    """A JSON object with exactly these fields: an unknown one could carry anything."""
    if not isinstance(value, dict):
        raise PayloadError(f"{where} must be a JSON object")
    unexpected = [k for k in value if k not in fields]
    if unexpected:
        raise PayloadError(f"{where} has unexpected field(s) {', '.join(map(repr, unexpected))}; "
                           f"allowed: {', '.join(fields)}")
    missing = [k for k in fields if k not in value]
    if missing:
        raise PayloadError(f"{where} lacks the field(s) {', '.join(missing)}")
    return value


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise PayloadError(f"{where} must match {NAME_PATTERN} (lowercase letters, digits, _ . : -), "
                           f"not {_show(value)}")
    return value


def _known(value: Any, where: str, vocabulary: frozenset[str]) -> str:
    """A name from the product's vocabulary: anything else could carry a secret (a project's name)."""
    name = _name(value, where)
    if name not in vocabulary and name not in UNNAMED:
        raise PayloadError(f"{where} {_show(value)} is not in the vocabulary osqr-nb shares; send it as "
                           f"\"other\" (shared_name does)")
    return name


def _model(value: Any, where: str) -> str:
    name = _name(value, where)
    if name not in UNNAMED and not _MODEL.fullmatch(name):
        raise PayloadError(f"{where} {_show(value)} is not a public model family and version; send it as "
                           f"\"other\" (shared_model does)")
    return name


def shared_name(value: Any, allowed: Iterable[str] | None) -> str:
    """A category or kind as shared: lowercased, and "other" unless it is allowed and fits."""
    name = value.strip().lower().replace(" ", "_") if isinstance(value, str) else ""
    if not name:
        return "unknown"
    if not _NAME.fullmatch(name) or (allowed is not None and name not in allowed):
        return "other"
    return name


def shared_model(value: Any, families: Iterable[str] | None = MODEL_FAMILIES) -> str:
    """A model as shared: its public family and version, never a fine-tune's organisation or suffix."""
    name = value.strip().lower() if isinstance(value, str) else ""
    if not name:
        return "unknown"
    name = name.rsplit("/", 1)[-1]                  # provider/model -> model
    if name.startswith("ft:"):                       # ft:base:org:suffix:id -> ft:base
        name = "ft:" + name.split(":")[1]
    if families is None:
        return shared_name(name, None)
    return name if _MODEL.fullmatch(name) and name.removeprefix("ft:").startswith(tuple(families)) else "other"


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise PayloadError(f"{where} must be an integer from 0 to {MAX_COUNT}, not {_show(value)}")
    return value


def _amount(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and 0 <= value <= MAX_SUM):
        raise PayloadError(f"{where} must be a number from 0 to {MAX_SUM:g}, not {_show(value)}")
    return float(value)


def _bin(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < BINS:
        raise PayloadError(f"{where} must be a confidence bin, an integer from 0 to {BINS - 1}, "
                           f"not {_show(value)}")
    return value


def _uuid4(value: Any, where: str) -> str:
    """A canonical random UUID, so that ids can carry nothing else."""
    try:
        parsed = uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or str(parsed) != value or parsed.version != 4:
        raise PayloadError(f"{where} must be a random UUID (version 4, lowercase, with hyphens), "
                           f"not {_show(value)}")
    return value


def _decision(row: Any, where: str) -> DecisionCount:
    row = _object(row, DECISION_FIELDS, where)
    decision = DecisionCount(_known(row["category"], f"{where}.category", CATEGORIES),
                             _known(row["task_kind"], f"{where}.task_kind", TASK_KINDS),
                             _model(row["model"], f"{where}.model"), _bin(row["bin"], f"{where}.bin"),
                             _count(row["accepted"], f"{where}.accepted"),
                             _count(row["overridden"], f"{where}.overridden"))
    if decision.accepted + decision.overridden == 0:
        raise PayloadError(f"{where} counts no decision; leave out empty groups")
    return decision


def _route(row: Any, where: str) -> RouteOutcome:
    row = _object(row, ROUTE_FIELDS, where)
    route = RouteOutcome(_known(row["task_kind"], f"{where}.task_kind", TASK_KINDS),
                         _model(row["model"], f"{where}.model"),
                         _count(row["successes"], f"{where}.successes"),
                         _count(row["failures"], f"{where}.failures"), _count(row["n"], f"{where}.n"),
                         _amount(row["cost_usd_sum"], f"{where}.cost_usd_sum"),
                         _amount(row["seconds_sum"], f"{where}.seconds_sum"))
    if route.n == 0 or route.successes + route.failures > route.n:
        raise PayloadError(f"{where} needs n >= 1 and successes + failures <= n")
    return route


def _rows(value: Any, name: str, limit: int, one) -> tuple:
    if not isinstance(value, list):
        raise PayloadError(f"{name} must be a JSON list")
    if len(value) > limit:
        raise PayloadError(f"{name} has {len(value)} rows, more than the limit of {limit}; "
                           f"split the counts over several uploads")
    rows = tuple(one(row, f"{name}[{i}]") for i, row in enumerate(value))
    _once(rows, name)
    return rows


def _once(rows: Iterable[DecisionCount | RouteOutcome], name: str) -> None:
    seen: dict[tuple, int] = {}
    for i, row in enumerate(rows):
        if row.group in seen:
            raise PayloadError(f"{name}[{i}] repeats the group of {name}[{seen[row.group]}]; "
                               f"send each group once with its counts added")
        seen[row.group] = i


def validate(data: Any) -> Payload:
    """A parsed JSON value as a payload; every problem is a PayloadError naming the field."""
    data = _object(data, TOP_FIELDS, "the payload")
    if isinstance(data["schema"], bool) or data["schema"] != SCHEMA_VERSION:
        raise PayloadError(f"schema {_show(data['schema'])} is not supported; this server speaks "
                           f"schema {SCHEMA_VERSION}")
    payload = Payload(_uuid4(data["contributor"], "contributor"), _uuid4(data["upload_id"], "upload_id"),
                      _rows(data["decisions"], "decisions", MAX_DECISION_ROWS, _decision),
                      _rows(data["routes"], "routes", MAX_ROUTE_ROWS, _route))
    if not payload.decisions and not payload.routes:
        raise PayloadError("the payload has no decisions and no routes; there is nothing to upload")
    return payload


def check(payload: Payload) -> Payload:
    """A payload built in code, checked as the server will check it (and small enough to send)."""
    try:
        body = payload.to_json()
    except (TypeError, ValueError) as error:
        raise PayloadError(f"the payload cannot be sent as JSON ({error})") from None
    if len(body.encode()) > MAX_BODY_BYTES:
        raise PayloadError(f"the payload is larger than {MAX_BODY_BYTES} bytes; split it over several "
                           f"uploads", 413)
    return validate(json.loads(body))
