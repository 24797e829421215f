"""The embedded SQLite database takes the web server, job workers and the billing run at once.

Real processes on a real database file (the test database is in memory and
in this process, so it cannot show lock contention): a gunicorn server with
several processes and threads, two `db_worker` processes and a billing run,
while many visitors sign up at the same time.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIGN_UPS = 48
QUEUED_TASKS = 300

COUNT_SCRIPT = """
from django.contrib.auth import get_user_model
from django_tasks_db.models import DBTaskResult
print(get_user_model().objects.count(), DBTaskResult.objects.successful().count(),
      DBTaskResult.objects.count())
"""
ENQUEUE_SCRIPT = f"""
from subscriptions.tasks import run_billing
for _ in range({QUEUED_TASKS}):
    run_billing.enqueue()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def start(env: dict, log: Path, *command: str) -> subprocess.Popen:
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )


def wait_until_serving(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text()
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except OSError:  # not listening yet, or still loading the application
            time.sleep(0.1)
    raise AssertionError("the server did not start:\n" + log.read_text())


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def sign_up(base_url: str, number: int) -> int:
    """One visitor: open the form, post it; the status of the post (302 when signed up)."""
    cookies = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies), NoRedirect())
    url = f"{base_url}/accounts/signup/"
    page = opener.open(url, timeout=30).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    body = urllib.parse.urlencode(
        {
            "csrfmiddlewaretoken": token,
            "email": f"visitor{number}@example.com",
            "password1": "a-long-pass-123",
            "password2": "a-long-pass-123",
        }
    ).encode()
    request = urllib.request.Request(url, data=body, headers={"Referer": url})
    try:
        return opener.open(request, timeout=30).status
    except urllib.error.HTTPError as error:
        return error.code


def test_sign_ups_succeed_while_workers_and_the_billing_run_write_the_same_file(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "billing_site.settings.test",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
    }
    manage(env, "migrate", "--noinput", "--verbosity", "0")
    manage(env, "shell", "--command", ENQUEUE_SCRIPT)

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    logs = {name: tmp_path / f"{name}.log" for name in ("web", "worker1", "worker2", "billing")}
    web = start(
        env, logs["web"], sys.executable, "-m", "gunicorn", "billing_site.wsgi:application",
        "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4",
    )  # fmt: skip
    workers = [
        start(
            env,
            logs[name],
            sys.executable,
            "manage.py",
            "db_worker",
            "--no-reload",
            "--no-startup-delay",
            "--interval",
            "0.05",
        )  # fmt: skip
        for name in ("worker1", "worker2")
    ]
    try:
        wait_until_serving(f"{base_url}/accounts/login/", web, logs["web"])
        billing = start(env, logs["billing"], sys.executable, "manage.py", "run_billing")
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda n: sign_up(base_url, n), range(SIGN_UPS)))
        assert billing.wait(timeout=30) == 0, logs["billing"].read_text()

        deadline = time.monotonic() + 30
        while True:
            users, succeeded, tasks = map(
                int, manage(env, "shell", "-v", "0", "-c", COUNT_SCRIPT).split()
            )
            if succeeded == tasks or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        alive = [process.poll() is None for process in (web, *workers)]
    finally:
        for process in (web, *workers):
            process.terminate()
        for process in (web, *workers):
            process.wait(timeout=10)

    output = "\n".join(log.read_text() for log in logs.values())
    assert "database is locked" not in output, output
    assert statuses == [302] * SIGN_UPS
    assert users == SIGN_UPS
    assert (succeeded, tasks) == (QUEUED_TASKS, QUEUED_TASKS)
    assert all(alive), output
