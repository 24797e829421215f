"""Rows a billing run writes and reads by the ten thousand: invoices, their lines, timeline events.

`bulk_create` prepares every field of every model instance in Python, which
for a run over 100,000 services costs more than the database's work. Here the
caller hands DB-ready tuples (Decimal amounts with their currency column, aware
datetimes, dicts for JSON) and PostgreSQL receives them through one COPY, which
psycopg encodes in C. Other databases (SQLite, the embedded default) get the
same rows through `bulk_create`, so both write identical rows.
"""

from __future__ import annotations

import datetime
import json
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal
from functools import lru_cache, partial
from typing import Any, TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.db import connection, models, router
from django.db.backends.utils import CursorDebugWrapper
from django.db.models import Lookup
from django.db.models.base import ModelState
from django.utils import timezone
from djmoney.models.fields import MoneyField
from djmoney.money import Money
from djmoney.utils import get_currency_field_name

M = TypeVar("M", bound=models.Model)

# Rows per INSERT where there is no COPY: SQLite's limit of variables per statement.
SQLITE_BATCH = 500
# Up to this many rows, PostgreSQL gets an INSERT: one round trip, where a COPY takes two.
FEW_ROWS = 10

# A value that is not JSON (None is JSON's null).
_NOT_JSON = object()

# The rows `rows_together` holds back until its block ends: (model, columns, rows, defaults).
_Held = list[tuple[type[models.Model], list[str], list[list[Any]], dict[str, Any]]]
_held: ContextVar[_Held | None] = ContextVar("bulk_rows_held", default=None)


@contextmanager
def rows_together() -> Iterator[None]:
    """Write the rows that `rows_insert` and `instances_insert` get within the block
    together, when it ends: on PostgreSQL in one statement (an INSERT per table, joined
    by a writable CTE), which saves a round trip per table. A checkout writes its
    order's lines, invoice's lines, events and task row so.

    For rows nothing in the block reads back (rows asked `with_ids` are written at
    once). Foreign keys are checked at commit, so the tables' order does not matter.
    An error leaving the block drops the rows; one caught inside it would not (a
    savepoint rolled back there keeps its held rows), so the block must not catch any.
    Elsewhere (SQLite) each table's rows are written at the block's end as they would be.
    """
    if connection.vendor != "postgresql" or _held.get() is not None:
        yield  # nested: the outer block writes them
        return
    held: _Held = []
    token = _held.set(held)
    try:
        yield
    finally:
        _held.reset(token)
    _rows_insert_sql(held)


def rows_insert(
    model: type[models.Model],
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    with_ids: bool = False,
) -> list[int]:
    """Insert `rows` (a value per column of `columns`, by attname) into `model`'s table.

    Every other column gets its field's default (`auto_now_add` dates: now), as
    `bulk_create` would. With `with_ids`, the new rows' ids in `rows`' order.
    Call it inside the transaction of the change the rows belong to.
    """
    rows = list(rows)
    if not rows:
        return []
    held = _held.get()
    if (
        connection.vendor == "postgresql"
        and not with_ids
        and (held is not None or len(rows) <= FEW_ROWS)
    ):
        these = (model, list(columns), [list(row) for row in rows], _defaults(model, columns))
        if held is None:
            _rows_insert_sql([these])
        else:
            held.append(these)
        return []
    if connection.vendor != "postgresql":
        created = model._default_manager.bulk_create(
            (model(**dict(zip(columns, row, strict=True))) for row in rows),
            batch_size=SQLITE_BATCH,
        )
        return [instance.pk for instance in created]
    fields = {field.attname: field for field in model._meta.concrete_fields}
    # JSON is encoded as its field would (its encoder; None is SQL NULL, as Django stores it),
    # by one encoder per column: json.dumps(cls=...) builds an encoder per value.
    json_at = [
        (index, (field.encoder or json.JSONEncoder)().encode)
        for index, field in enumerate(fields[column] for column in columns)
        if isinstance(field, models.JSONField)
    ]
    defaults = _defaults(model, columns)
    ids: list[int] = []
    if with_ids:
        # Ids taken from the table's sequence first, so lines can point at invoices.
        ids = ids_take(model, len(rows)) or []
    with connection.cursor() as cursor:
        names = [
            *(["id"] if with_ids else []),
            *(_column(fields[column]) for column in columns),
            *defaults,
        ]
        tail = tuple(defaults.values())

        def copy_rows(sql, params, many, context):
            # A value the rows share (one object: a batch's events mostly say the same) is
            # encoded once; the rows keep every value alive, so no id is reused meanwhile.
            encoded: list[dict[int, str]] = [{} for _ in json_at]
            with cursor.cursor.copy(sql) as copy:  # psycopg's cursor: COPY is no DB-API call
                for number, row in enumerate(rows):
                    values = list(row)
                    for (index, encode), done in zip(json_at, encoded, strict=True):
                        value = values[index]
                        if value is not None:
                            text = done.get(id(value))
                            if text is None:
                                text = done[id(value)] = encode(value)
                            values[index] = text
                    copy.write_row((*([ids[number]] if with_ids else []), *values, *tail))

        # Through the connection's execute wrappers, as Django runs a query, so
        # what counts or times queries sees the COPY too; and into the query log
        # when queries are logged (CaptureQueriesContext: the query pins, the benchmark).
        execute = copy_rows
        for wrapper in reversed(connection.execute_wrappers):
            execute = partial(wrapper, execute)
        table = connection.ops.quote_name(model._meta.db_table)
        quoted = ", ".join(connection.ops.quote_name(name) for name in names)
        context = {"connection": connection, "cursor": cursor}
        sql = f"COPY {table} ({quoted}) FROM STDIN"
        if isinstance(cursor, CursorDebugWrapper):
            with cursor.debug_sql(sql):
                execute(sql, None, False, context)
        else:
            execute(sql, None, False, context)
    return ids


def ids_take(model: type[models.Model], count: int) -> list[int] | None:
    """`count` new ids of `model`'s table, from its sequence (PostgreSQL), for rows written
    later in the transaction with them; None where there is no sequence to take them from
    (SQLite gives an id as a row is written)."""
    if connection.vendor != "postgresql" or not count:
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [model._meta.db_table, count],
        )
        return [row[0] for row in cursor.fetchall()]


def _rows_insert_sql(tables: _Held) -> None:
    """Each table's rows by an INSERT, all in one statement (PostgreSQL): the first
    tables' INSERTs run in a writable CTE, the last one is the statement's own. Each
    table's rows are one JSON parameter (see _json_rows_source)."""
    if not tables:
        return
    inserts: list[str] = []
    params: list[Any] = []
    for model, columns, rows, defaults in tables:
        sql, keys, encoders = _rows_insert_plan(model, tuple(columns), tuple(defaults))
        inserts.append(sql)
        tail = list(defaults.values())
        documents = []
        for row in rows:
            values = []
            for value, encoder in zip(row, encoders, strict=True):
                if encoder is not _NOT_JSON and value is not None:
                    value = encoder(value)
                values.append(value)
            documents.append(dict(zip(keys, [*values, *tail], strict=True)))
        params.append(_json_rows(documents))
    *first, last = inserts
    sql = last
    if first:
        sql = (
            "WITH "
            + ", ".join(f"w{n} AS ({insert})" for n, insert in enumerate(first))
            + f" {last}"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


@lru_cache(maxsize=64)
def _rows_insert_plan(
    model: type[models.Model], columns: tuple[str, ...], defaults: tuple[str, ...]
) -> tuple[str, list[str], list[Any]]:
    """The INSERT of rows of `columns` (attnames) then `defaults` (column names) into
    `model`'s table, from one JSON parameter (_json_rows_source), built once per shape;
    each row's keys (column names) and each given column's JSON encoding (_NOT_JSON for
    others). A JSON column's value is its text, encoded as its field would (None is SQL
    NULL); the defaults come encoded (_defaults)."""
    quote = connection.ops.quote_name
    fields = {field.attname: field for field in model._meta.concrete_fields}
    by_column = {_column(field): field for field in model._meta.concrete_fields}
    given = [fields[column] for column in columns]
    encoders = [
        _json_encoding(field.encoder) if isinstance(field, models.JSONField) else _NOT_JSON
        for field in given
    ]
    written = [*given, *(by_column[name] for name in defaults)]
    source = _json_rows_source(written)
    names = ", ".join(quote(_column(field)) for field in written)
    sql = f"INSERT INTO {quote(model._meta.db_table)} ({names}) {source}"
    return sql, [_column(field) for field in written], encoders


# Field types whose values reach PostgreSQL through a JSON document as they do as
# parameters: JSON's numbers, strings and booleans, and the text of decimals, dates and
# uuids (_json_value), each read by its column type's input.
_JSON_SOURCE_TYPES = {
    "AutoField", "BigAutoField", "SmallAutoField", "IntegerField", "BigIntegerField",
    "SmallIntegerField", "PositiveIntegerField", "PositiveBigIntegerField",
    "PositiveSmallIntegerField", "CharField", "SlugField", "EmailField", "URLField",
    "TextField", "BooleanField", "DecimalField", "DateTimeField", "DateField", "UUIDField",
    "JSONField",
}  # fmt: skip


def _json_rows_source(fields: Sequence[models.Field], raw: dict[str, str] | None = None) -> str:
    """A SELECT giving a value for each of `fields` (a table's columns, in order) per
    object of a JSON array, the statement's one parameter (PostgreSQL's json_to_recordset):
    the objects' keys are the column names, in the order of the array.

    One parameter for all the rows of a table, where a VALUES list has one per value:
    psycopg parses a statement's placeholders and adapts each value in Python, which cost
    more client CPU than the rest of the statement (a checkout's order and services: 70
    values; its lines, events and task row: about 100). Each value is read by its column
    type's input as a parameter of that type would be, then assigned to the column as
    a parameter is (lengths checked, decimals rounded to their places).

    `raw`: SQL put in place of a column's value (by attname), the same in every row;
    a `%s` in it stands for the column's value in the row.
    """
    raw = raw or {}
    quote = connection.ops.quote_name
    values, declared = [], []
    for field in fields:
        target = field.target_field if isinstance(field, models.ForeignKey) else field
        if target.get_internal_type() not in _JSON_SOURCE_TYPES:
            raise ImproperlyConfigured(
                f"{field.model.__name__}.{field.name} is not written from JSON rows "
                "(subscriptions.bulk): its values would not reach the column as they are."
            )
        column = quote(_column(field))
        value = f"x.{column}::jsonb" if isinstance(field, models.JSONField) else f"x.{column}"
        expression = raw.get(field.attname, "%s")
        values.append(expression.replace("%s", value))
        if "%s" in expression:
            # The column's own type, without its length or places: as a parameter's type.
            kind = "text" if isinstance(field, models.JSONField) else field.db_type(connection)
            declared.append(f"{column} {re.sub(r'[(].*[)]', '', str(kind))}")
    return (
        f"SELECT {', '.join(values)} FROM json_to_recordset(%s::json) AS x({', '.join(declared)})"
    )


def _json_value(value: Any) -> str:
    """The text PostgreSQL reads a value JSON has no type for from: decimals exactly,
    dates and times in ISO 8601 (with their offset), uuids."""
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not written from JSON rows: {value!r}")


def _json_encoding(encoder: type[json.JSONEncoder] | None) -> Callable[[Any], str]:
    """`json.dumps(value, cls=encoder)`, as a JSON field encodes its value, by one encoder
    kept in a plan for every value, where json.dumps builds one per call."""
    return (encoder or json.JSONEncoder)().encode


_json_rows = json.JSONEncoder(
    default=_json_value, ensure_ascii=False, allow_nan=False, separators=(",", ":")
).encode


def instances_insert(model: type[models.Model], instances: Sequence[models.Model]) -> None:
    """Insert unsaved `instances` of `model` as rows, as `bulk_create` would, minus the ids.

    For a few rows written on a hot path (a checkout's lines and events): their
    values are read straight off the instances, where `bulk_create` prepares
    each field of each instance through the ORM. Date fields filled on insert
    (`auto_now_add`) get the time of the write; nothing reads the new rows' ids
    back, so the instances stay unsaved.
    """
    fields = [
        field
        for field in model._meta.concrete_fields
        if not field.primary_key
        and not getattr(field, "auto_now", False)
        and not getattr(field, "auto_now_add", False)
    ]
    columns = [field.attname for field in fields]
    rows = (
        [
            value.amount if isinstance(value, Money) else value
            for value in (getattr(instance, column) for column in columns)
        ]
        for instance in instances
    )
    rows_insert(model, columns, rows)


def instances_insert_returning(
    model: type[models.Model], instances: Sequence[models.Model]
) -> None:
    """Insert unsaved `instances` in one INSERT and give each its new id, as `bulk_create` does.

    For the few rows a checkout writes and points at afterwards (its order, services,
    invoice): one statement built straight from the instances' values, where
    `save()` and `bulk_create` run every field through the ORM's compiler. No
    model signals are sent, as `bulk_create` sends none; dates filled on insert
    (`auto_now_add`) are set on the instances as `save()` sets them. Database
    errors (a unique key) are raised as Django's, through its cursor.
    """
    if not instances:
        return
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(instances)
        return
    sql, params = values_insert_sql(model, instances)
    with connection.cursor() as cursor:
        cursor.execute(
            f"{sql} RETURNING {connection.ops.quote_name(_column(model._meta.pk))}", params
        )
        ids_give(instances, [pk for (pk,) in cursor.fetchall()])


def instances_insert_returning_with_parent(
    parent: models.Model,
    model: type[models.Model],
    instances: Sequence[models.Model],
    link: str,
    *,
    parent_raw: dict[str, str] | None = None,
) -> None:
    """`instances_insert_returning` of an unsaved `parent`, then of its unsaved `instances`
    (at least one), which point at it through the foreign key `link`: on PostgreSQL in
    one statement (the parent's INSERT in a writable CTE), which saves a round trip.
    `parent_raw`: the parent's `raw` SQL (see values_insert_sql), PostgreSQL only."""
    field = model._meta.get_field(link)
    assert isinstance(field, models.ForeignKey)
    if connection.vendor != "postgresql":
        instances_insert_returning(type(parent), [parent])
        for instance in instances:
            setattr(instance, field.attname, parent.pk)
        instances_insert_returning(model, instances)
        return
    quote = connection.ops.quote_name
    parent_key = quote(_column(type(parent)._meta.pk))
    parent_sql, parent_params = values_insert_sql(type(parent), [parent], parent_raw)
    sql, params = values_insert_sql(
        model, instances, raw={field.attname: f"(SELECT {parent_key} FROM parent)"}
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH parent AS ({parent_sql} RETURNING {parent_key}) {sql} "
            f"RETURNING {quote(_column(model._meta.pk))}, {quote(field.column)}",
            [*parent_params, *params],
        )
        rows = cursor.fetchall()
    ids_give([parent], [rows[0][1]])
    ids_give(instances, [pk for pk, _ in rows])
    for instance in instances:
        setattr(instance, field.attname, parent.pk)


def values_insert_sql(
    model: type[models.Model], instances: Sequence[models.Model], raw: dict[str, str] | None = None
) -> tuple[str, list[Any]]:
    """The INSERT of `instances` (PostgreSQL), without RETURNING, and its parameter: the
    rows as JSON (_json_rows_source), for a statement that writes them with more (see
    instances_insert_returning). The rows come back from RETURNING in `instances`' order.

    `raw`: SQL put in place of a column's value (by attname), the same in every row;
    a `%s` in it stands for the instance's value.
    """
    raw_items = tuple(sorted((raw or {}).items()))
    sql, filled_on_insert, given = _values_insert_plan(model, raw_items)
    now = timezone.now()
    for attname in filled_on_insert:
        for instance in instances:
            setattr(instance, attname, now)
    documents = []
    for instance in instances:
        document = {}
        for attname, key, encoder in given:
            value = getattr(instance, attname)
            if isinstance(value, Money):
                value = value.amount
            elif encoder is not _NOT_JSON and value is not None:
                value = encoder(value)
            document[key] = value
        documents.append(document)
    return sql, [_json_rows(documents)]


@lru_cache(maxsize=64)
def _values_insert_plan(
    model: type[models.Model], raw_items: tuple[tuple[str, str], ...]
) -> tuple[str, list[str], list[tuple[str, str, Any]]]:
    """What values_insert_sql writes for `model`, built once per shape: the SQL (quoting
    every column cost more than the rest), the fields filled on insert, and the (attname,
    JSON key, JSON encoding or _NOT_JSON) of each value taken from an instance."""
    raw = dict(raw_items)
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    filled_on_insert = [
        field.attname
        for field in fields
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
    ]
    given = [
        (
            field.attname,
            _column(field),
            _json_encoding(field.encoder) if isinstance(field, models.JSONField) else _NOT_JSON,
        )
        for field in fields
        if "%s" in raw.get(field.attname, "%s")
    ]
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} "
        f"({', '.join(quote(_column(field)) for field in fields)}) "
        f"{_json_rows_source(fields, raw)}"
    )
    return sql, filled_on_insert, given


def ids_give(instances: Sequence[models.Model], ids: list[Any]) -> None:
    """The instances are saved now, with these ids (in a multi-row VALUES' order, which
    PostgreSQL returns them in)."""
    for instance, pk in zip(instances, ids, strict=True):
        instance.pk = pk
        instance._state.adding = False
        instance._state.db = connection.alias


def _defaults(model: type[models.Model], columns: Sequence[str]) -> dict[str, Any]:
    """The value of each column the caller left out, once for all the rows."""
    now = timezone.now()
    return {
        column: now if value is _NOW else value() if callable(value) else value
        for column, value in _defaults_plan(model, tuple(columns)).items()
    }


# A default filled with the time of the write (auto_now_add), in _defaults_plan.
_NOW = object()


@lru_cache(maxsize=64)
def _defaults_plan(model: type[models.Model], columns: tuple[str, ...]) -> dict[str, Any]:
    """What _defaults gives each column left out, worked out once per shape: _NOW, a
    function giving a JSON default's text (a callable default is called for each write,
    as Django calls it), or the value itself."""
    given = set(columns)
    plan: dict[str, Any] = {}
    for field in model._meta.concrete_fields:
        if field.primary_key or field.attname in given or field.name in given:
            continue
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            plan[_column(field)] = _NOW
        elif (
            field.has_default()
            and callable(field.default)
            and not isinstance(field, models.JSONField)
        ):
            # One value for every row would break a unique default (a uuid4): pass the column.
            raise ValueError(f"{model.__name__}.{field.name} needs a value per row")
        elif isinstance(field, models.JSONField):
            plan[_column(field)] = partial(_json_default_text, field)
        else:
            plan[_column(field)] = field.get_db_prep_save(field.get_default(), connection)
    return plan


def _json_default_text(field: models.JSONField) -> str | None:
    default = field.get_default()
    return None if default is None else json.dumps(default)


def _column(field: models.Field) -> str:
    assert field.column is not None  # a concrete field has a column
    return field.column


@contextmanager
def datetimes_loaded_by_psycopg() -> Iterator[None]:
    """Within the block, the timestamps the connection's queries read are loaded by psycopg's
    own loader (C) instead of Django's, where the two give the same datetimes: on PostgreSQL
    when the session's time zone is UTC, as Django's is (no TIME_ZONE in the database's
    settings).

    Django's loader parses each value in Python and then sets its time zone; a billing
    run reads hundreds of thousands. psycopg's gives the value in the session's zone,
    UTC as `datetime.UTC`: the same aware datetime Django's gives. Set on each query's
    cursor (the connection keeps Django's: Django reads its time zone off it).
    """
    if connection.vendor != "postgresql" or connection.timezone is not datetime.UTC:
        yield
        return
    with connection.execute_wrapper(_utc_timestamps_loaded_by_psycopg):
        yield


def _utc_timestamps_loaded_by_psycopg(execute, sql, params, many, context):
    cursor = context["cursor"].cursor
    if cursor.connection.info.parameter_status("TimeZone") == "UTC":
        oid, loader = _psycopg_timestamptz_loader()
        cursor.adapters.register_loader(oid, loader)
    return execute(sql, params, many, context)


@lru_cache(maxsize=1)
def _psycopg_timestamptz_loader() -> tuple[int, type]:
    """(oid, loader) of psycopg's own loader of timestamptz text."""
    # psycopg only on PostgreSQL: SQLite needs no driver of its own.
    import psycopg
    from psycopg.pq import Format

    oid = psycopg.adapters.types["timestamptz"].oid
    loader = psycopg.adapters.get_loader(oid, Format.TEXT)
    assert loader is not None
    return oid, loader


def instances_read(queryset: models.QuerySet[M], fields: Sequence[str]) -> list[M]:
    """`queryset`'s rows as model instances holding only `fields`, as `.only(*fields)` gives.

    For batches of thousands: `Model.from_db` with deferred fields walks every
    concrete field of the model per row, and that was most of a billing run's
    Python time. The row values come through `values_list`, so they are
    converted by their fields exactly as a model's are; any other field loads on
    access, as a deferred field does.
    """
    model = queryset.model
    meta = model._meta
    by_name = {field.name: field.attname for field in meta.concrete_fields}
    by_name.update({field.attname: field.attname for field in meta.concrete_fields})
    by_name["pk"] = by_name[meta.pk.name]
    attnames = [by_name[name] for name in fields]
    # Money columns read with their currency: each amount is the Money its field's
    # descriptor would make on first access, one per distinct value (a Money is never
    # changed in place), where the descriptor would make one per instance.
    monies = [
        (field.attname, currency, field.decimal_places)
        for field in meta.concrete_fields
        if isinstance(field, MoneyField)
        and field.attname in attnames
        and (currency := get_currency_field_name(field.name, field)) in attnames
    ]
    made: dict[tuple[str, str, str], Money] = {}
    db = queryset.db
    instances = []
    for row in queryset.values_list(*fields):
        instance = model.__new__(model)
        values = instance.__dict__
        values.update(zip(attnames, row, strict=True))
        for name, currency, places in monies:
            amount = values[name]
            if amount is not None and values[currency] is not None:
                key = (name, str(amount), values[currency])
                money = made.get(key)
                if money is None:
                    money = made[key] = Money(amount, values[currency], decimal_places=places)
                values[name] = money
        state = ModelState()
        state.adding = False
        state.db = db
        instance._state = state
        instances.append(instance)
    return instances


def instances_built(model: type[M], rows: Iterable[dict[str, Any]]) -> list[M]:
    """Instances of rows just written: each row's values (by attname), every other field's
    default, saved (a later save() updates the row).

    As `instances_read` builds them, without `Model.__init__` walking every field
    of the model per instance: a billing run builds its invoices by the thousand.
    """
    meta = model._meta
    defaults = {}
    for field in meta.concrete_fields:
        if (
            field.has_default()
            and callable(field.default)
            and not isinstance(field, models.JSONField)
        ):
            # One value for every instance would break a unique default (a uuid4).
            defaults[field.attname] = _NO_DEFAULT
        else:
            defaults[field.attname] = field.get_default()
    db = router.db_for_write(model)
    instances = []
    for row in rows:
        instance = model.__new__(model)
        values = {**defaults, **row}
        missing = [name for name, value in values.items() if value is _NO_DEFAULT]
        if missing:
            raise ValueError(f"{model.__name__} needs {', '.join(missing)} per row")
        instance.__dict__.update(values)
        state = ModelState()
        state.adding = False
        state.db = db
        instance._state = state
        instances.append(instance)
    return instances


_NO_DEFAULT = object()


class OneOf(Lookup):
    """`OneOf(F("pk"), ids)`: a filter on thousands of ids, sent as one array on PostgreSQL.

    `pk__in` compiles, and psycopg then quotes, a placeholder per id: for a
    billing run's batches of a thousand that was more Python than the query
    took. Elsewhere (SQLite) it is the same IN list.
    """

    lookup_name = "one_of"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, params = self.process_lhs(compiler, connection)
        values = list(self.rhs)
        if connection.vendor == "postgresql":
            if values and all(type(value) is int for value in values):
                return f"{lhs} = ANY(%s::bigint[])", [*params, array_literal(values)]
            return f"{lhs} = ANY(%s)", [*params, values]
        if not values:
            return "1 = 0", list(params)
        return f"{lhs} IN ({', '.join(['%s'] * len(values))})", [*params, *values]


def instances_written(instances: Sequence[models.Model], fields: Sequence[str]) -> None:
    """Write `fields` (attnames) of saved `instances`, each row its own values, in one UPDATE.

    For a billing run's batch, where `bulk_update` builds a CASE over every row
    per field and has each value prepared through the ORM's expressions. On
    PostgreSQL one array per column is joined to the table by id
    (`UPDATE ... FROM unnest(...)`); elsewhere (SQLite) the rows that share
    their values share one UPDATE, and rows that share none are one CASE UPDATE.
    """
    if not instances:
        return
    model = type(instances[0])
    meta = model._meta
    columns: list[models.Field] = []
    for name in fields:
        column = meta.get_field(name)
        assert isinstance(column, models.Field)  # a column, not a reverse relation
        columns.append(column)
    if connection.vendor != "postgresql":
        groups: dict[tuple[Any, ...], list[Any]] = {}
        for instance in instances:
            values = tuple(getattr(instance, field.attname) for field in columns)
            groups.setdefault(values, []).append(instance.pk)
        if len(groups) > 1 and len(groups) == len(instances):
            # Each row its own values (invoice numbers): one UPDATE with a CASE per field.
            model._default_manager.bulk_update(instances, [field.name for field in columns])
            return
        for values, pks in groups.items():
            model._default_manager.filter(pk__in=pks).update(
                **{field.attname: value for field, value in zip(columns, values, strict=True)}
            )
        return
    pk = meta.pk
    assert pk is not None
    quote = connection.ops.quote_name
    arrays = [
        _array([_db_value(pk, getattr(instance, pk.attname)) for instance in instances]),
        *(
            _array([_db_value(field, getattr(instance, field.attname)) for instance in instances])
            for field in columns
        ),
    ]  # fmt: skip
    names = [f"c{index}" for index in range(len(arrays))]
    unnest = ", ".join(f"%s::{field.db_type(connection)}[]" for field in (pk, *columns))
    assignments = ", ".join(
        f"{quote(_column(field))} = v.{name}"
        for field, name in zip(columns, names[1:], strict=True)
    )
    table = quote(meta.db_table)
    key = f"{table}.{quote(_column(pk))}"
    with connection.cursor() as cursor:
        # The ids again as an array the key's index finds: joined to the unnest alone, the
        # plan hashes the whole table for each batch.
        cursor.execute(
            f"UPDATE {table} SET {assignments} "
            f"FROM unnest({unnest}) AS v({', '.join(names)}) "
            f"WHERE {key} = v.{names[0]} AND {key} = ANY(%s)",
            [*arrays, arrays[0]],
        )


# The values a field of these kinds writes as they are, where the ORM's preparation
# (get_db_prep_save) would hand them back unchanged: by column kind, the type it takes.
_WRITTEN_AS_THEY_ARE: tuple[tuple[type[models.Field], type], ...] = (
    (models.DateTimeField, datetime.datetime),
    (models.IntegerField, int),
    (models.AutoField, int),
    (models.BigAutoField, int),
    (models.CharField, str),
    (models.TextField, str),
)


def _db_value(field: models.Field, value: Any) -> Any:
    """`value` as `field` writes it (PostgreSQL): as it is when the ORM would not change it.

    None, an int, a plain str and an aware datetime pass through `get_db_prep_save`
    unchanged; preparing a batch's hundreds of thousands through it cost more than
    the UPDATE. Anything else (a choice's enum, a naive datetime, a Decimal, a
    field of another kind) goes through it.
    """
    if value is None:
        return None
    for kind, plain in _WRITTEN_AS_THEY_ARE:
        if isinstance(field, kind):
            if type(value) is plain and (
                not isinstance(value, datetime.datetime) or value.tzinfo is not None
            ):
                return value
            break
    return field.get_db_prep_save(value, connection)


def array_literal(values: Sequence[Any]) -> str | None:
    """PostgreSQL's text of an array of `values` (`{1,2,NULL}`), for a parameter cast to the
    array's type; None unless each is None, an int, a str or an aware datetime.

    psycopg quotes a list's items one by one in Python, testing each against a
    pattern: for the billing run's arrays of thousands of ids and dates, more time
    than the query took. str() and isoformat() write each in C.
    """
    items = []
    for value in values:
        kind = type(value)
        if kind is int:
            items.append(str(value))
        elif value is None:
            items.append("NULL")
        elif kind is datetime.datetime and value.tzinfo is not None:
            items.append(value.isoformat())
        elif kind is str:
            items.append('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"')
        else:
            return None
    return "{" + ",".join(items) + "}"


def _array(values: list[Any]) -> Any:
    """`values` as an array parameter: its text when `array_literal` can write it."""
    literal = array_literal(values)
    return values if literal is None else literal
