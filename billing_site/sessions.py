"""Django's database sessions, read with SQL written once instead of through the ORM.

Every signed-in request reads its session first; building that one-line query through
the ORM cost more CPU than PostgreSQL spent running it (about 0.4 ms a request). The
rows, the expiry and everything else are Django's `db` backend's (SESSION_ENGINE).
"""

from __future__ import annotations

from django.contrib.sessions.backends import db
from django.contrib.sessions.models import Session
from django.db import connections, router
from django.utils import timezone


class SessionStore(db.SessionStore):
    def _get_session_from_db(self) -> Session | None:
        """The session unless it expired, as Django's `db` backend reads it; only its key
        and data are read, which is all `load` uses."""
        connection = connections[router.db_for_read(self.model)]
        quote = connection.ops.quote_name
        meta = self.model._meta
        data, key, expiry = (
            quote(meta.get_field(name).column)
            for name in ("session_data", "session_key", "expire_date")
        )
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {data} FROM {quote(meta.db_table)} WHERE {key} = %s AND {expiry} > %s",
                [self.session_key, now],
            )
            row = cursor.fetchone()
        if row is None:
            self._session_key = None
            return None
        return self.model(session_key=self.session_key, session_data=row[0])
