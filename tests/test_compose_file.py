"""compose.yaml, checked as far as it can be without a Docker engine.

It follows the Compose specification (the schema check-jsonschema ships); every
process it starts from the project's image runs a real `manage.py` command with
options that command takes, or gunicorn with the project's WSGI application;
every variable it sets is one the settings read; and its URLs point at its own
PostgreSQL and Redis. Whether the image builds and the services talk to each
other is what tests/test_multiple_servers.py shows with the same processes.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.core.management import get_commands, load_command_class
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "compose.yaml"
COMPOSE = YAML(typ="safe").load(COMPOSE_FILE)  # merges the shared `<<: *app` block
# The services that run the project's own image (the others are PostgreSQL and Redis).
APP_SERVICES = {
    name: service for name, service in COMPOSE["services"].items() if "build" in service
}
# What an operator puts in .env; the rest of the variables have defaults in compose.yaml.
OPERATOR_ENV = {"SECRET_KEY": "a-secret-from-the-operator", "ALLOWED_HOSTS": "store.example.com"}


def interpolated(value: str, env: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?error}, from `env`."""

    def variable(match: re.Match) -> str:
        name, kind, rest = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        assert kind != ":?", f"compose refuses to start without {name}: {rest}"
        return rest if kind == ":-" else ""

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", variable, str(value))


def service_env(service: dict) -> dict[str, str]:
    return {
        name: interpolated(value, OPERATOR_ENV) for name, value in service["environment"].items()
    }


def manage_py_commands(command: list[str]) -> list[list[str]]:
    """The `manage.py` command lines a service runs, its own or those of its shell loop."""
    if command[:2] == ["python", "manage.py"]:
        return [command[2:]]
    if command[:2] == ["sh", "-c"]:
        return [line.split() for line in re.findall(r"python manage\.py ([\w -]+)", command[2])]
    return []


def test_compose_yaml_follows_the_compose_specification():
    checker = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", COMPOSE_FILE],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_each_service_runs_a_real_manage_py_command_or_the_wsgi_application(name):
    command = APP_SERVICES[name]["command"]
    if command[0] == "gunicorn":
        # gunicorn loads the application with the service's environment, then exits.
        result = subprocess.run(
            [sys.executable, "-m", "gunicorn", "--check-config", *command[1:]],
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", **service_env(APP_SERVICES[name])},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return
    lines = manage_py_commands(command)
    assert lines, f"{name} runs neither manage.py nor gunicorn: {command}"
    commands = get_commands()
    for command_name, *options in lines:
        assert command_name in commands, f"{name}: no manage.py command {command_name!r}"
        parser = load_command_class(commands[command_name], command_name).create_parser(
            "manage.py", command_name
        )
        parser.parse_args(options)  # an option the command does not take raises CommandError


# Loads the settings module with an environment, then once without each variable in
# turn: a variable the settings read changes a setting, or stops them loading.
UNREAD_VARIABLES = """
import importlib, json, os, sys

def settings_with(env):
    os.environ.clear()
    os.environ.update(env)
    for name in [name for name in sys.modules if name.startswith("billing_site.settings")]:
        del sys.modules[name]
    try:
        module = importlib.import_module(sys.argv[1])
    except Exception as error:
        return type(error).__name__
    return {name: repr(getattr(module, name)) for name in dir(module) if name.isupper()}

env = json.load(sys.stdin)
full = settings_with(env)
assert isinstance(full, dict), full
assert settings_with(env) == full, "the settings differ from one load to the next"
print(json.dumps([
    name for name in env if settings_with({k: v for k, v in env.items() if k != name}) == full
]))
"""


def test_every_variable_compose_sets_is_read_by_the_settings_it_names():
    (env,) = {json.dumps(service_env(service)) for service in APP_SERVICES.values()}
    env = json.loads(env)
    settings_module = env.pop("DJANGO_SETTINGS_MODULE")
    assert settings_module == "billing_site.settings.production"
    result = subprocess.run(
        [sys.executable, "-c", UNREAD_VARIABLES, settings_module],
        input=json.dumps(env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_the_processes_use_compose_own_postgresql_and_redis():
    postgres = service_env(COMPOSE["services"]["postgres"])
    assert "redis" in COMPOSE["services"]
    for name, service in APP_SERVICES.items():
        env = service_env(service)
        database = urlsplit(env["DATABASE_URL"])
        assert (database.hostname, database.username, database.password, database.path) == (
            "postgres",
            postgres["POSTGRES_USER"],
            postgres["POSTGRES_PASSWORD"],
            "/" + postgres["POSTGRES_DB"],
        ), name
        assert urlsplit(env["REDIS_URL"]).hostname == "redis", name
        # Each starts once the database is migrated.
        assert name == "migrate" or "migrate" in service["depends_on"], name


def test_the_image_installs_what_the_processes_run_and_connect_with():
    installed = {
        re.split(r"[=<>\[; ]", line, maxsplit=1)[0].lower()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line and not line.startswith(("#", "-"))
    }
    # The Dockerfile installs requirements.txt only: gunicorn, PostgreSQL's driver, and
    # the client Django's Redis cache uses for REDIS_URL.
    assert {"gunicorn", "psycopg", "redis"} <= installed
    assert "pip install --no-cache-dir -r requirements.txt" in (ROOT / "Dockerfile").read_text()
