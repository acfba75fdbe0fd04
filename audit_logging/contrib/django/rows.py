"""Reading one row's stored values by primary key before a save, at the least cost a save
can afford: the ORM builds the query once per model, fields and database (per thread, as
Django's connections are), and each save then runs that SQL with its key, the values
converted as the ORM converts them. Building the query is most of the cost of a read."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from django.db import connections, models

_local = threading.local()


def stored_values(
    model: type[models.Model], fields: Sequence[models.Field[Any, Any]], pk: Any, using: str
) -> dict[str, Any] | None:
    """``{attname: value}`` of ``fields`` in the row of ``pk``, as the ORM would read them;
    None when there is no such row."""
    attnames = tuple(f.attname for f in fields)
    reads: dict[Any, Any] = _local.__dict__.setdefault("reads", {})
    key = (model, attnames, using)
    connection = connections[using]
    param = model._meta.pk.get_db_prep_value(pk, connection, prepared=False)
    built = reads.get(key)
    if built is None:
        queryset = model._base_manager.using(using).filter(pk=pk).values(*attnames)
        compiler = queryset.query.get_compiler(using=using)
        sql, params = compiler.as_sql()
        if tuple(params) != (param,):
            # A key the SQL holds otherwise than as one parameter: the ORM reads it each time.
            return queryset.first()
        built = reads[key] = (sql, compiler)
    sql, compiler = built
    with connection.cursor() as cursor:
        cursor.execute(sql, (param,))
        row = cursor.fetchone()
    if row is None:
        return None
    values = next(iter(compiler.results_iter(results=[[row]])))
    return dict(zip(attnames, values, strict=True))
