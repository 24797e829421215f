"""Django's PostgreSQL backend, whose cursors parse a long statement once per process.

psycopg turns each statement's `%s` placeholders into `$1, $2, ...` before sending it,
and keeps the result for statements of up to 4096 characters and 50 parameters. The
checkout's writes are longer (an order with its services in one statement, 70
parameters; its lines, events and task row in one, about 100): psycopg parsed each of
them again on every order, about 1 ms of CPU per checkout, more than PostgreSQL spent
running them. These cursors keep the parse of any statement (the last 256), as psycopg
keeps the short ones': it depends on nothing but the statement's text.

Used with server-side binding (settings: DATABASE_PREPARED_STATEMENTS, the default),
the only mode whose cursors parse placeholders this way.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.db.backends.postgresql import base
from psycopg import _queries

# psycopg's own conversion, which it caches only for short statements (see above).
_statement_parts = lru_cache(maxsize=256)(_queries._query2pg_nocache)


class _StatementQuery(_queries.PostgresQuery):
    __slots__ = ()

    def convert(self, query: Any, vars: Any) -> None:
        if vars is None or not isinstance(query, str | bytes):
            return super().convert(query, vars)
        converted = _statement_parts(self._ensure_bytes(query), self._tx.encoding)
        self.query, self._want_formats, self._order, self._parts = converted
        self.dump(vars)
        return None


class ServerBindingCursor(base.ServerBindingCursor):
    _query_cls = _StatementQuery


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        if params.get("cursor_factory") is base.ServerBindingCursor:
            params["cursor_factory"] = ServerBindingCursor
        return params
