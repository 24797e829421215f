"""Import quota usage from a CSV file: one record per row, each idempotent by its key.

Columns (a header row names them): service (the service's uuid or number),
quota (code), quantity, occurred_at (ISO 8601), idempotency_key. A row already
imported (same service and key) is skipped, so a file can be imported again
after fixing the rows that failed. Each row is its own transaction: one bad
row never undoes the others.
"""

from __future__ import annotations

import csv
import sys
import uuid

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from subscriptions.forms import UsageForm
from subscriptions.models import Service, UsageRecord
from subscriptions.usage import usage_record

COLUMNS = ("service", "quota", "quantity", "occurred_at", "idempotency_key")


def find_service(reference: str) -> Service | None:
    reference = reference.strip()
    try:
        return Service.objects.filter(uuid=uuid.UUID(reference)).first()
    except ValueError:
        pass
    if reference.isdigit() and len(reference) < 19:
        return Service.objects.filter(pk=int(reference)).first()
    return None


class Command(BaseCommand):
    help = (
        "Import quota usage from a CSV file with the columns "
        "service (uuid or number), quota, quantity, occurred_at, idempotency_key."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="The CSV file (UTF-8), or - for standard input.")

    def handle(self, *args, path: str, **options):
        try:
            if path == "-":
                return self._import(sys.stdin)
            with open(path, newline="", encoding="utf-8-sig") as file:
                return self._import(file)
        except OSError as error:
            raise CommandError(f"Cannot read {path}: {error.strerror}.") from error
        except UnicodeDecodeError as error:
            raise CommandError(f"{path} is not UTF-8 text.") from error
        except csv.Error as error:
            raise CommandError(f"{path} is not a CSV file: {error}.") from error

    def _import(self, file) -> None:
        reader = csv.DictReader(file)
        missing = [column for column in COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            raise CommandError(f"The header row lacks the column(s): {', '.join(missing)}.")
        recorded = skipped = failed = 0
        for row in reader:
            line = reader.line_num
            error = self._row_error(row)
            if error is None:
                try:
                    outcome = self._record(row)
                except ValidationError as refusal:
                    error = " ".join(refusal.messages)
                else:
                    recorded += outcome.created
                    skipped += not outcome.created
                    continue
            failed += 1
            self.stderr.write(f"line {line}: {error}")
        summary = f"{recorded} recorded, {skipped} already imported (skipped), {failed} failed."
        self.stdout.write(summary)

    def _row_error(self, row: dict) -> str | None:
        if None in row or any(value is None for value in row.values()):
            return "the row does not have one value per column."
        if any("\x00" in value for value in row.values()):
            return "the row contains a NUL character."
        return None

    def _record(self, row: dict):
        service = find_service(row["service"])
        if service is None:
            raise ValidationError(f"no service “{row['service'].strip()}”.")
        form = UsageForm({name: row[name].strip() for name in COLUMNS if name != "service"})
        if not form.is_valid():
            raise ValidationError(form.error_text())
        return usage_record(
            service=service,
            quota_code=form.cleaned_data["quota"],
            quantity=form.cleaned_data["quantity"],
            occurred_at=form.cleaned_data["occurred_at"],
            idempotency_key=form.cleaned_data["idempotency_key"],
            source=UsageRecord.Source.IMPORT,
        )
