"""Rows read and changed through plain SQL: the worker's per-task queries, without Django's query compiler.

A prediction task makes four or five small queries. Through the ORM each cost far more than
the database's work: compiling the QuerySet of the 34-field Drawing and building the instance
from its row. Here the caller writes the WHERE clause and passes the values as parameters, and
rows become instances as the ORM makes them (the backend's and the fields' converters, then
`from_db`). `benchmarks/task_queries.py` on the project's 2-core machine: loading one drawing
took 1.22 ms through the ORM and 0.34 ms so; with 100 ms between loads, as at light load,
3.29 and 1.36 ms.

Names come from the model (`column`), values go as parameters prepared by their field
(`value`, `values`), so the same statements run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from django.db import connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper


def _db(model: type[models.Model]) -> BaseDatabaseWrapper:
    return connections[router.db_for_write(model)]


def column(model: type[models.Model], name: str) -> str:
    """The quoted column of the model's field `name`."""
    return _db(model).ops.quote_name(model._meta.get_field(name).column)


def value(model: type[models.Model], name: str, python_value: object) -> object:
    """`python_value` as the database takes it in a comparison with the field `name`."""
    return model._meta.get_field(name).get_db_prep_value(python_value, _db(model))


def values(model: type[models.Model], name: str, python_values: Iterable[object]) -> tuple[str, list]:
    """Placeholders and parameters for `IN (...)` over the field `name`: ("%s, %s", [a, b])."""
    prepared = [value(model, name, v) for v in python_values]
    return ", ".join(["%s"] * len(prepared)), prepared


@functools.lru_cache(maxsize=64)  # per model, fields and connection (a connection belongs to its thread)
def _reading(model: type[models.Model], db: BaseDatabaseWrapper, names: tuple[str, ...]) -> tuple[str, list]:
    """SELECT <the fields' columns> FROM table, and each column's converters with its expression."""
    fields = [model._meta.get_field(name) for name in names]
    table = model._meta.db_table
    select = f"SELECT {', '.join(db.ops.quote_name(f.column) for f in fields)} FROM {db.ops.quote_name(table)}"
    converting = []
    for field in fields:
        expression = field.get_col(table)
        converting.append((db.ops.get_db_converters(expression) + field.get_db_converters(db), expression))
    return select, converting


def _converted(row: Sequence[object], converting: list, db: BaseDatabaseWrapper) -> list[object]:
    converted = []
    for raw, (converters, expression) in zip(row, converting, strict=True):
        for convert in converters:
            raw = convert(raw, expression, db)
        converted.append(raw)
    return converted


def select(model: type[models.Model], where: str, params: Sequence[object], order_by: str = "") -> list[models.Model]:
    """The instances whose rows match `where`, whole (every concrete field), as the ORM builds them."""
    names = tuple(f.attname for f in model._meta.concrete_fields)
    alias = _db(model).alias
    return [model.from_db(alias, names, row) for row in fields(model, names, where, params, order_by)]


def fields(
    model: type[models.Model],
    names: tuple[str, ...],
    where: str,
    params: Sequence[object],
    order_by: str = "",
    limit: int | None = None,
) -> list[list[object]]:
    """The fields `names` of the rows that match `where`, as Python values (a values_list)."""
    db = _db(model)
    head, converting = _reading(model, db, names)
    sql = f"{head} WHERE {where}"
    if order_by:
        sql += f" ORDER BY {order_by}"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return [_converted(row, converting, db) for row in cursor.fetchall()]


def execute(model: type[models.Model], sql: str, params: Sequence[object]) -> int:
    """Run a statement that changes rows (in autocommit, a transaction of its own); the rows it changed."""
    with _db(model).cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
