"""`manage.py import_usage`: usage from a CSV file, row by row, duplicates skipped."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from subscriptions.models import UsageRecord
from tests.factories import metered_service

pytestmark = pytest.mark.django_db
HEADER = "service,quota,quantity,occurred_at,idempotency_key\n"


def run_import(tmp_path, text: str) -> tuple[str, str]:
    path = tmp_path / "usage.csv"
    path.write_text(text, encoding="utf-8")
    out, err = StringIO(), StringIO()
    call_command("import_usage", str(path), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_imports_rows_by_service_uuid_or_number(tmp_path, customer):
    service = metered_service(customer)
    now = timezone.now().isoformat()

    out, err = run_import(
        tmp_path,
        HEADER + f"{service.uuid},minutes,10,{now},row-1\n{service.pk},minutes,2.5,{now},row-2\n",
    )

    assert out.strip() == "2 recorded, 0 already imported (skipped), 0 failed."
    assert err == ""
    assert sorted(UsageRecord.objects.values_list("idempotency_key", "source")) == [
        ("row-1", "import"),
        ("row-2", "import"),
    ]


def test_importing_the_same_file_again_skips_every_row(tmp_path, customer):
    service = metered_service(customer)
    text = HEADER + f"{service.uuid},minutes,10,{timezone.now().isoformat()},row-1\n"
    run_import(tmp_path, text)

    out, _ = run_import(tmp_path, text)

    assert out.strip() == "0 recorded, 1 already imported (skipped), 0 failed."
    assert UsageRecord.objects.count() == 1


def test_it_reports_each_bad_row_by_line_and_imports_the_rest(tmp_path, customer):
    service = metered_service(customer)
    now = timezone.now().isoformat()
    rows = [
        f"{service.uuid},minutes,10,{now},good",
        f"{service.uuid},storage,1,{now},unknown-quota",
        f"{service.uuid},minutes,ten,{now},bad-number",
        f"99999999,minutes,1,{now},no-service",
        f"{service.uuid},minutes,1,not a date,bad-date",
        f"{service.uuid},minutes,1",
        f"{service.uuid},minutes,1,{now},nul\x00key",
    ]

    out, err = run_import(tmp_path, HEADER + "\n".join(rows) + "\n")

    assert out.strip() == "1 recorded, 0 already imported (skipped), 6 failed."
    lines = err.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [f"line {n}" for n in range(3, 9)]
    assert "no quota “storage”" in lines[0]
    assert "quantity" in lines[1]
    assert "no service “99999999”" in lines[2]
    assert "occurred_at" in lines[3]
    assert "one value per column" in lines[4]
    assert "NUL" in lines[5]
    assert list(UsageRecord.objects.values_list("idempotency_key", flat=True)) == ["good"]


def test_a_file_without_the_columns_is_refused_whole(tmp_path, customer):
    with pytest.raises(CommandError, match="idempotency_key"):
        run_import(tmp_path, "service,quota,quantity,occurred_at\n1,minutes,1,2026-01-01\n")


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_usage", str(tmp_path / "nope.csv"))
