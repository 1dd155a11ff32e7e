"""The event table (SQLAlchemy Core) shared by the SQLite and PostgreSQL event stores, and
the query builder that turns an EventQuery into SQL for either dialect."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from portfolio_core.adapters._shared.event_store.where import Condition, check_where
from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.ports.event_store import EventQuery, WhereOp

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,47}$")

COLUMNS = (
    "tenant, position, stream, version, event_id, type, data, metadata, "
    "correlation_id, causation_id, recorded_at"
)


def check_name(name: str, what: str) -> str:
    if not NAME.match(name):
        raise InvalidInputError(
            f"{what} must match {NAME.pattern} (letters, digits, underscore)", field=what
        )
    return name


#: the optional indexes a SQL event store may be configured with (``indexes:``)
OPTIONAL_INDEXES = ("type", "correlation", "time", "data", "metadata")
#: what each store builds unless configured otherwise: only what costs an append nothing
#: (the correlation index is partial: events without a correlation id write no entry)
DEFAULT_INDEXES = ("correlation",)


def check_indexes(indexes: Sequence[str], *, postgres: bool) -> tuple[str, ...]:
    """``indexes`` if every name is an optional index this database supports, else
    InvalidInputError naming the first that is not."""
    supported = OPTIONAL_INDEXES if postgres else ("type", "correlation")
    for index in indexes:
        if index not in supported:
            raise InvalidInputError(
                f"unknown index {index!r}: this store supports {', '.join(supported)}"
                + (
                    ""
                    if postgres
                    else " (SQLite turns time ranges into position ranges without an index;"
                    " index a data field with indexed_fields)"
                ),
                field="indexes",
            )
    return tuple(dict.fromkeys(indexes))


def event_table(
    name: str,
    *,
    postgres: bool,
    schema: str | None = None,
    indexes: Sequence[str] = ("type", "correlation", "time", "data", "metadata"),
) -> Table:
    """The events table: one row per event, partitioned by ``tenant`` ('' when unscoped).

    ``indexes`` names the optional indexes to declare (the primary key, the stream/version
    and the event-id unique indexes are always there); ``time``, ``data`` and ``metadata``
    exist on PostgreSQL only."""
    json_type: Any = postgresql.JSONB() if postgres else Text()
    md = MetaData(schema=schema)
    kwargs: dict[str, Any] = {} if postgres else {"sqlite_with_rowid": False}
    table = Table(
        name,
        md,
        Column("tenant", Text, nullable=False),
        Column("position", BigInteger, nullable=False),
        Column("stream", Text, nullable=False),
        Column("version", Integer, nullable=False),
        Column("event_id", Text, nullable=False),
        Column("type", Text, nullable=False),
        Column("data", json_type, nullable=False),
        Column("metadata", json_type, nullable=False),
        Column("correlation_id", Text),
        Column("causation_id", Text),
        Column("recorded_at", BigInteger, nullable=False),
        PrimaryKeyConstraint("tenant", "position", name=f"{name}_pk"),
        UniqueConstraint("tenant", "stream", "version", name=f"{name}_stream_version"),
        UniqueConstraint("tenant", "event_id", name=f"{name}_event_id"),
        **kwargs,
    )
    if "type" in indexes:
        Index(f"{name}_type", table.c.tenant, table.c.type, table.c.position)
    if "correlation" in indexes:
        Index(  # partial: events without a correlation id cost no index write
            f"{name}_correlation",
            table.c.tenant,
            table.c.correlation_id,
            table.c.position,
            sqlite_where=table.c.correlation_id.isnot(None),
            postgresql_where=table.c.correlation_id.isnot(None),
        )
    if postgres:
        # SQLite needs no time index: recorded_at never decreases along positions, so the
        # SQLite store turns a time range into a position range by binary search on the
        # primary key (decision 0014), and saves an index write per event.
        if "time" in indexes:
            Index(f"{name}_time", table.c.tenant, table.c.recorded_at)
        if "data" in indexes:
            Index(
                f"{name}_data",
                table.c.data,
                postgresql_using="gin",
                postgresql_ops={"data": "jsonb_path_ops"},
            )
        if "metadata" in indexes:
            Index(
                f"{name}_metadata",
                table.c.metadata,
                postgresql_using="gin",
                postgresql_ops={"metadata": "jsonb_path_ops"},
            )
    return table


def ddl(table: Table, dialect: Dialect, indexed_fields: Sequence[str] = ()) -> list[str]:
    """CREATE statements (idempotent) for ``table`` and its indexes."""
    out = [str(CreateTable(table, if_not_exists=True).compile(dialect=dialect))]
    for index in sorted(table.indexes, key=lambda i: str(i.name)):
        out.append(str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect)))
    for field in indexed_fields:
        check_name(field, "indexed_fields")
        expr = f"json_extract(data, '$.{field}')"
        out.append(
            f"CREATE INDEX IF NOT EXISTS {table.name}_data_{field} "
            f"ON {table.name} (tenant, {expr}, position)"
        )
    return out


SQLITE = sqlite.dialect()
POSTGRES = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]
_ = text  # re-exported for callers composing statements


def micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def build_query(
    qualified: str,
    tenant: str,
    query: EventQuery,
    *,
    postgres: bool,
    positions: tuple[int, int | None] | None = None,
) -> tuple[str, list[Any], bool]:
    """SQL selecting candidate rows for ``query`` in position order.

    ``positions``, when given, is a range ``[first, stop)`` (``stop`` None: unbounded)
    known to hold every match, e.g. from a time range; it narrows the primary-key scan.
    Returns ``(sql, params, exact)``: when ``exact`` is false the caller must re-check each
    row with the reference matcher (JSON equality the SQL prefilter cannot express exactly)
    and apply ``limit`` itself.
    """
    ph = "%s" if postgres else "?"
    where = [f"tenant = {ph}", f"position >= {ph}"]
    first = query.from_position if positions is None else max(query.from_position, positions[0])
    params: list[Any] = [tenant, first]
    if positions is not None and positions[1] is not None:
        where.append(f"position < {ph}")
        params.append(positions[1])
    exact = True
    if query.types:
        where.append(f"type IN ({', '.join(ph for _ in query.types)})")
        params.extend(sorted(query.types))
    if query.streams:
        where.append(f"stream IN ({', '.join(ph for _ in query.streams)})")
        params.extend(sorted(query.streams))
    if query.correlation_id is not None:
        where.append(f"correlation_id = {ph}")
        params.append(query.correlation_id)
    if query.since is not None:
        where.append(f"recorded_at >= {ph}")
        params.append(micros(query.since))
    if query.until is not None:
        where.append(f"recorded_at < {ph}")
        params.append(micros(query.until))
    for column, fields in (("data", query.data), ("metadata", query.metadata)):
        for key, value in fields.items():
            exact = False  # numbers vs booleans, containment: always re-checked
            if postgres:
                where.append(f"{column} @> %s::jsonb")
                params.append(json.dumps({key: value}))
            else:
                path = "$." + json.dumps(key)
                if isinstance(value, bool | dict | list):
                    where.append(f"json_type({column}, ?) IS NOT NULL")
                    params.append(path)
                elif value is None:
                    where.append(f"json_type({column}, ?) = 'null'")
                    params.append(path)
                else:
                    where.append(f"json_extract({column}, ?) = ?")
                    params.extend([path, value])
    if query.where:
        clauses, values = where_sql(check_where(query.where), postgres=postgres)
        where.extend(clauses)
        params.extend(values)
    if query.ids:
        where.append(f"event_id IN ({', '.join(ph for _ in query.ids)})")
        params.extend(sorted(query.ids))
    if query.before_position is not None:
        where.append(f"position < {ph}")
        params.append(query.before_position)
    order = "position DESC" if query.backwards else "position"
    sql = f"SELECT {COLUMNS} FROM {qualified} WHERE {' AND '.join(where)} ORDER BY {order}"
    if exact and query.limit is not None:
        sql += f" LIMIT {int(query.limit)}"
    return sql, params, exact


_SQLITE_KIND = {
    "null": "json_type({c}, ?) = 'null'",
    "number": "json_type({c}, ?) IN ('integer', 'real')",
    "str": "json_type({c}, ?) = 'text'",
}
_PG_KIND = {"number": "jsonb_typeof({c}) = 'number'", "str": "jsonb_typeof({c}) = 'string'"}
_SQL_OPS = {WhereOp.LT: "<", WhereOp.LE: "<=", WhereOp.GT: ">", WhereOp.GE: ">="}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, (int, float)) else "str"


def _sqlite_equal(column: str, path: str, value: Any) -> tuple[str, list[Any]]:
    kind = _kind(value)
    if kind == "bool":
        return f"json_type({column}, ?) = ?", [path, "true" if value else "false"]
    if kind == "null":
        return _SQLITE_KIND["null"].format(c=column), [path]
    test = _SQLITE_KIND[kind].format(c=column)
    return f"({test} AND json_extract({column}, ?) = ?)", [path, path, value]


def _pg_equal(target: str, path: list[str], value: Any) -> tuple[str, list[Any]]:
    kind = _kind(value)
    if kind in ("bool", "null"):
        return f"{target} = %s::jsonb", [path, json.dumps(value)]
    if kind == "str":
        return f"{target} = to_jsonb(%s::text)", [path, value]
    # CASE, not AND: PostgreSQL may evaluate the cast before the type test
    return (
        f"(CASE WHEN {_PG_KIND['number'].format(c=target)} "
        f"THEN ({target})::numeric = %s::numeric ELSE false END)",
        [path, path, repr(value)],
    )


def where_sql(conditions: Sequence[Condition], *, postgres: bool) -> tuple[list[str], list[Any]]:
    """SQL conditions (and their parameters, in order) evaluating ``conditions`` exactly as
    the reference matcher does: SQLite through JSON1 (``json_type``/``json_extract``),
    PostgreSQL through jsonb (``#>``, ``jsonb_typeof``; strings compared under the "C"
    collation, that is by code point)."""
    clauses: list[str] = []
    params: list[Any] = []
    for condition in conditions:
        column, op, value = condition.column, condition.op, condition.value
        if postgres:
            path: Any = list(condition.keys)
            target = f"({column} #> %s::text[])"
            if op is WhereOp.EXISTS:
                clause, args = f"{target} IS NOT NULL", [path]
            elif op is WhereOp.EQ:
                clause, args = _pg_equal(target, path, value)
            elif op is WhereOp.NE:
                equal, eargs = _pg_equal(target, path, value)
                clause, args = f"({target} IS NOT NULL AND NOT ({equal}))", [path, *eargs]
            elif op is WhereOp.IN:
                parts = [_pg_equal(target, path, v) for v in value]
                clause = "(" + " OR ".join(p for p, _ in parts) + ")"
                args = [a for _, part_args in parts for a in part_args]
            elif _kind(value) == "number":
                test = _PG_KIND["number"].format(c=target)
                clause = (
                    f"(CASE WHEN {test} THEN ({target})::numeric {_SQL_OPS[op]} %s::numeric "
                    "ELSE false END)"
                )
                args = [path, path, repr(value)]
            else:
                text = f"({column} #>> %s::text[])"
                test = _PG_KIND["str"].format(c=target)
                clause = (
                    f'(CASE WHEN {test} THEN {text} COLLATE "C" {_SQL_OPS[op]} %s COLLATE "C" '
                    "ELSE false END)"
                )
                args = [path, path, value]
        else:
            path = "$." + ".".join(condition.keys)
            if op is WhereOp.EXISTS:
                clause, args = f"json_type({column}, ?) IS NOT NULL", [path]
            elif op is WhereOp.EQ:
                clause, args = _sqlite_equal(column, path, value)
            elif op is WhereOp.NE:
                equal, eargs = _sqlite_equal(column, path, value)
                clause = f"(json_type({column}, ?) IS NOT NULL AND NOT ({equal}))"
                args = [path, *eargs]
            elif op is WhereOp.IN:
                parts = [_sqlite_equal(column, path, v) for v in value]
                clause = "(" + " OR ".join(p for p, _ in parts) + ")"
                args = [a for _, part_args in parts for a in part_args]
            else:
                test = _SQLITE_KIND[_kind(value)].format(c=column)
                clause = f"({test} AND json_extract({column}, ?) {_SQL_OPS[op]} ?)"
                args = [path, path, value]
        clauses.append(clause)
        params.extend(args)
    return clauses, params
