"""The PostgreSQL cursors keep the parse of a long statement: each use still gets its own
values (billing_site/postgresql/base.py)."""

from __future__ import annotations

import pytest
from django.db import connection

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

# Longer than psycopg caches itself: more than 50 parameters and 4096 characters.
COUNT = 80
LONG = "SELECT " + ", ".join(
    f"%s::int AS column_with_quite_a_long_name_number_{n}" for n in range(COUNT)
)


def test_the_database_uses_the_cursors_that_keep_long_statements_parsed():
    assert connection.settings_dict["ENGINE"] == "billing_site.postgresql"
    with connection.cursor() as cursor:
        assert type(cursor.cursor).__module__ == "billing_site.postgresql.base"


def test_a_long_statement_run_again_reads_its_new_values():
    assert len(LONG) > 4096 and COUNT > 50
    for start in (0, 1000, 5):
        values = list(range(start, start + COUNT))
        with connection.cursor() as cursor:
            cursor.execute(LONG, values)
            assert list(cursor.fetchone()) == values


def test_a_percent_sign_and_a_statement_without_values_still_work():
    with connection.cursor() as cursor:
        cursor.execute(LONG.replace("SELECT ", "SELECT '100%%' AS text, ", 1), list(range(COUNT)))
        assert cursor.fetchone()[0] == "100%"
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
