"""`manage.py run_billing --every N`: the billing run as a process of its own, as bin/demo runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_it_runs_the_billing_again_every_interval_until_stopped(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "billing_site.settings.test",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "PYTHONUNBUFFERED": "1",
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"],
        cwd=ROOT, env=env, check=True, timeout=300,
    )  # fmt: skip
    log = tmp_path / "billing.log"
    with log.open("w") as out:
        billing = subprocess.Popen(
            [sys.executable, "manage.py", "run_billing", "--every", "1"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while log.read_text().count("invoice(s) issued") < 2 and time.monotonic() < deadline:
                assert billing.poll() is None, log.read_text()
                time.sleep(0.2)
        finally:
            billing.terminate()
            billing.wait(timeout=10)

    runs = [line for line in log.read_text().splitlines() if "invoice(s) issued" in line]
    assert len(runs) >= 2, log.read_text()
    assert "0 cancelled" in runs[0] and "0 terminated for non-payment" in runs[0]


def test_an_interval_below_one_second_is_refused(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "run_billing", "--every", "0"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "billing_site.settings.test"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "--every takes a number of seconds above zero." in result.stderr
