"""Where osqr-gpkv keeps the aggregates: SQLAlchemy Core over any database URL.

SQLite by default (`sqlite:///gpkv.db`); PostgreSQL or anything SQLAlchemy speaks
for production (`postgresql+psycopg://USER@HOST/gpkv`, with its driver installed).

Each upload is one row of `contributions` plus its rows of `decision_counts` and
`route_outcomes`, written in one transaction: plain inserts, no dialect-specific
upserts, so every database behaves the same. `upload_id` is unique, which makes a
retried upload a no-op. A contribution's `contributor` is the authenticated owner
of the token that sent it (never the id a client writes in its payload: a client
could invent any number of those). Priors are sums grouped over contributions,
published only for groups that at least k distinct owners reported, with the
moments that say how much they differ (sum over owners of accepted^2 / n and of
n^2, for `osqr_nb.learning.priors_from`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool

from .payload import BINS, SCHEMA_VERSION, Payload, bin_edges

Outcome = Literal["stored", "duplicate", "conflict"]
NAME = sa.String(64)

metadata = sa.MetaData()

contributions = sa.Table(
    "contributions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("upload_id", sa.String(36), nullable=False, unique=True),
    sa.Column("contributor", sa.String(36), nullable=False, index=True),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
)

decision_counts = sa.Table(
    "decision_counts", metadata,
    sa.Column("contribution_id", sa.Integer, sa.ForeignKey("contributions.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("category", NAME, primary_key=True),
    sa.Column("task_kind", NAME, primary_key=True),
    sa.Column("model", NAME, primary_key=True),
    sa.Column("bin", sa.SmallInteger, primary_key=True),
    sa.Column("accepted", sa.BigInteger, nullable=False),
    sa.Column("overridden", sa.BigInteger, nullable=False),
    sa.Index("decision_counts_group", "category", "task_kind", "model", "bin"),
)

route_outcomes = sa.Table(
    "route_outcomes", metadata,
    sa.Column("contribution_id", sa.Integer, sa.ForeignKey("contributions.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("task_kind", NAME, primary_key=True),
    sa.Column("model", NAME, primary_key=True),
    sa.Column("successes", sa.BigInteger, nullable=False),
    sa.Column("failures", sa.BigInteger, nullable=False),
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.Column("cost_usd_sum", sa.Float, nullable=False),
    sa.Column("seconds_sum", sa.Float, nullable=False),
    sa.Index("route_outcomes_group", "task_kind", "model"),
)


def make_engine(url: str) -> sa.Engine:
    """An engine; an in-memory SQLite database is shared by the server's threads."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        return sa.create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_wal)
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def _sqlite_wal(connection: Any, record: Any) -> None:
    """WAL: readers of priors never wait for an upload, and a commit costs one fsync less."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Store:
    """The aggregates of every contribution; tables are created when it opens."""

    def __init__(self, url: str = "sqlite:///gpkv.db") -> None:
        self.engine = make_engine(url)
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))

    def add(self, payload: Payload, owner: str, received_at: dt.datetime | None = None) -> Outcome:
        """Store one upload of the token owner `owner`, whole or not at all; a known upload_id stores nothing."""
        known = self._contributor_of(payload.upload_id)
        if known is not None:
            return "duplicate" if known == owner else "conflict"
        try:
            with self.engine.begin() as connection:
                self._insert(connection, payload, owner, received_at or dt.datetime.now(dt.timezone.utc))
        except IntegrityError:      # the same upload_id arrived twice at once: the other one won
            known = self._contributor_of(payload.upload_id)
            if known is None:
                raise
            return "duplicate" if known == owner else "conflict"
        return "stored"

    def _contributor_of(self, upload_id: str) -> str | None:
        query = sa.select(contributions.c.contributor).where(contributions.c.upload_id == upload_id)
        with self.engine.connect() as connection:
            return connection.execute(query).scalar_one_or_none()

    @staticmethod
    def _insert(connection: sa.Connection, payload: Payload, owner: str, received_at: dt.datetime) -> None:
        result = connection.execute(contributions.insert().values(
            upload_id=payload.upload_id, contributor=owner, received_at=received_at))
        contribution_id = result.inserted_primary_key[0]
        if payload.decisions:
            connection.execute(decision_counts.insert(), [
                {"contribution_id": contribution_id, **vars(d)} for d in payload.decisions])
        if payload.routes:
            connection.execute(route_outcomes.insert(), [
                {"contribution_id": contribution_id, **vars(r)} for r in payload.routes])

    def totals(self) -> dict[str, int]:
        """How many contributions and rows are stored (for health checks and tests)."""
        with self.engine.connect() as connection:
            return {table.name: connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                    for table in (contributions, decision_counts, route_outcomes)}

    def priors(self, k: int) -> dict[str, Any]:
        """Summed counts of the groups that at least k distinct contributors reported."""
        with self.engine.connect() as connection:
            decisions = [dict(row._mapping) for row in connection.execute(_with_spread(k))]
            routes = [dict(row._mapping) for row in connection.execute(_grouped(
                route_outcomes, ("task_kind", "model"),
                ("successes", "failures", "n", "cost_usd_sum", "seconds_sum"), k))]
        return {"schema": SCHEMA_VERSION, "k": k, "bins": [list(bin_edges(i)) for i in range(BINS)],
                "decisions": [_numbers(row) for row in decisions], "routes": [_numbers(row) for row in routes]}


def _grouped(table: sa.Table, keys: tuple[str, ...], sums: tuple[str, ...], k: int) -> sa.Select:
    contributors = sa.func.count(sa.distinct(contributions.c.contributor))
    columns = [table.c[key] for key in keys]
    return (sa.select(*columns, *(sa.func.sum(table.c[s]).label(s) for s in sums),
                      contributors.label("contributors"))
            .select_from(table.join(contributions, table.c.contribution_id == contributions.c.id))
            .group_by(*columns).having(contributors >= k).order_by(*columns))


def _with_spread(k: int) -> sa.Select:
    """Decision groups of >= k owners: sums, and per-owner moments (sum a^2/n, sum n^2) for the spread."""
    keys = ("category", "task_kind", "model", "bin")
    per_owner = (sa.select(*(decision_counts.c[key] for key in keys), contributions.c.contributor,
                           sa.func.sum(decision_counts.c.accepted).label("a"),
                           sa.func.sum(decision_counts.c.overridden).label("o"))
                 .select_from(decision_counts.join(contributions,
                                                   decision_counts.c.contribution_id == contributions.c.id))
                 .group_by(*(decision_counts.c[key] for key in keys), contributions.c.contributor)).subquery()
    columns = [per_owner.c[key] for key in keys]
    n = sa.cast(per_owner.c.a + per_owner.c.o, sa.Float)
    return (sa.select(*columns, sa.func.sum(per_owner.c.a).label("accepted"),
                      sa.func.sum(per_owner.c.o).label("overridden"), sa.func.count().label("contributors"),
                      sa.func.sum(sa.cast(per_owner.c.a, sa.Float) * per_owner.c.a / n).label("sum_a2_over_n"),
                      sa.func.sum(n * n).label("sum_n2"))
            .group_by(*columns).having(sa.func.count() >= k).order_by(*columns))


def _numbers(row: dict[str, Any]) -> dict[str, Any]:
    """Sums as JSON numbers: counts stay integers; dollars, seconds and moments become floats."""
    floats = ("cost_usd_sum", "seconds_sum", "sum_a2_over_n", "sum_n2")
    return {key: value if isinstance(value, str) else float(value) if key in floats else int(value)
            for key, value in row.items()}
