"""The `atelier` command: serve the API, migrate the database, create branches and staff."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from domain.errors import DomainError
from domain.stages import Role
from service.app import required_secrets, utc_now
from service.errors import ConfigurationError
from service.persistence import migrate
from service.persistence.db import create_engine
from service.secrets import PasscodeCipher
from service.settings import Settings
from service.uow import Database, UnitOfWork

T = TypeVar("T")
DEMO_SECRETS_FILE = ".atelier-demo.key"


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise click.ClickException(f"bad ATELIER_* setting: {exc}") from exc


def _in_transaction(settings: Settings, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
    async def run() -> T:
        engine = create_engine(settings)
        try:
            async with Database(engine).transaction() as uow:
                return await work(uow)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except DomainError as exc:
        raise click.ClickException(exc.detail) from exc


@click.group()
def main() -> None:
    """Atelier: repair jobs from intake to collection."""


# --- serve ------------------------------------------------------------------------------------


def _demo_secrets(settings: Settings) -> None:
    """Generate demo keys once and keep them beside the database, so a restart can still read the
    passcodes it stored. Exported to the environment so every server worker process shares them."""
    folder = settings.sqlite_path.parent if settings.sqlite_path else Path.cwd()
    path = folder / DEMO_SECRETS_FILE
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    if not stored:
        stored = {"jwt_secret": secrets.token_urlsafe(48), "passcode_keys": PasscodeCipher.generate_key()}
        folder.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
            json.dump(stored, out)
    if settings.jwt_secret is None:
        os.environ["ATELIER_JWT_SECRET"] = stored["jwt_secret"]
    if settings.passcode_keys is None:
        os.environ["ATELIER_PASSCODE_KEYS"] = stored["passcode_keys"]


def _prepare_database(settings: Settings) -> None:
    if settings.is_sqlite:
        migrate.upgrade(settings)  # the embedded default migrates itself
    elif not migrate.is_current(settings):
        raise click.ClickException("the database schema is not current: run `atelier db upgrade` first")


def _seed_demo(settings: Settings) -> None:
    from service.demo import DEMO_PASSWORD, USERS, seed_demo

    assert settings.passcode_keys is not None
    cipher = PasscodeCipher(settings.passcode_keys.get_secret_value())

    async def run() -> int:
        engine = create_engine(settings)
        try:
            return await seed_demo(Database(engine), cipher, settings, utc_now)
        finally:
            await engine.dispose()

    created = asyncio.run(run())
    click.echo(f"Demo data ready ({created} new jobs). Logins, all with the password {DEMO_PASSWORD!r}:")
    for username, role, branch in USERS:
        click.echo(f"  {username:<18} {role.value:<11} {branch or 'all branches'}")


@main.command()
@click.option("--host", default=None, help="Address to listen on (default ATELIER_HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default ATELIER_PORT or 8000).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Server processes.")
@click.option("--demo", is_flag=True, help="Seed demo branches, logins and jobs; generate keys if none are set.")
def serve(host: str | None, port: int | None, workers: int, demo: bool) -> None:
    """Run the API server."""
    settings = _settings()
    if demo:
        _demo_secrets(settings)
        settings = _settings()
    try:
        required_secrets(settings)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc
    _prepare_database(settings)
    if demo:
        _seed_demo(settings)
    from granian import Granian
    from granian.constants import Interfaces

    address, listen_port = host or settings.host, port or settings.port
    click.echo(f"Atelier on http://{address}:{listen_port} (API under /api/v1, OpenAPI at /schema)")
    Granian(
        "service.app:create_app",
        factory=True,
        address=address,
        port=listen_port,
        interface=Interfaces.ASGI,
        workers=workers,
        respawn_failed_workers=True,
        log_access=False,
    ).serve()


# --- db ----------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations."""
    migrate.upgrade(_settings(), revision)
    click.echo("database is at " + revision)


@db.command("check")
def db_check() -> None:
    """Exit non-zero unless the schema is at the latest migration (pre-start check)."""
    settings = _settings()
    if not migrate.is_current(settings):
        raise click.ClickException("the database schema is not current: run `atelier db upgrade`")
    click.echo("database schema is current")


@main.group()
def passcodes() -> None:
    """Customers' stored unlock codes."""


@passcodes.command("rotate")
def passcodes_rotate() -> None:
    """Re-encrypt every stored passcode under the first key of ATELIER_PASSCODE_KEYS."""
    from service.usecases.passcodes import rotate_passcodes

    settings = _settings()
    if settings.passcode_keys is None:
        raise click.ClickException("ATELIER_PASSCODE_KEYS is not set")
    try:
        cipher = PasscodeCipher(settings.passcode_keys.get_secret_value())
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc
    count = _in_transaction(settings, lambda uow: rotate_passcodes(uow, cipher))
    click.echo(f"{count} passcodes re-encrypted under the newest key")


# --- branches and users --------------------------------------------------------------------------


def _parse_hours(raw: str) -> dict[str, Any]:
    """JSON (`{"mon": [["09:00", "19:00"]]}`) or short text (`mon-sat 09:00-19:00; sun closed`)."""
    raw = raw.strip()
    if raw.startswith("{"):
        try:
            parsed: dict[str, Any] = json.loads(raw)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}") from exc
        return parsed
    from domain.calendar import WEEKDAYS

    hours: dict[str, list[list[str]]] = {}
    for part in filter(None, (p.strip() for p in raw.split(";"))):
        days, _, spans = part.partition(" ")
        first, _, last = days.lower().partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise click.BadParameter(f"unknown day range {days!r}")
        names = WEEKDAYS[WEEKDAYS.index(first) : WEEKDAYS.index(last or first) + 1]
        intervals = [s.split("-") for s in spans.split(",") if s.strip() and s.strip() != "closed"]
        for name in names:
            hours[name] = [[a.strip(), b.strip()] for a, b in intervals]
    return hours


@main.group()
def branch() -> None:
    """Branches (shops)."""


@branch.command("create")
@click.option("--code", required=True, help="Short code, e.g. valence.")
@click.option("--name", required=True)
@click.option("--timezone", "tz", default="Europe/Paris", show_default=True)
@click.option("--hours", required=True, help='e.g. "mon-sat 09:00-19:00" or JSON {"mon": [["09:00","19:00"]]}.')
def branch_create(code: str, name: str, tz: str, hours: str) -> None:
    """Create a branch with its opening hours."""
    from service.usecases.staff import create_branch

    parsed = _parse_hours(hours)
    created = _in_transaction(_settings(), lambda uow: create_branch(uow, code, name, tz, parsed, now=utc_now()))
    click.echo(f"branch {created.code} created")


@main.group()
def user() -> None:
    """Staff users."""


@user.command("create")
@click.option("--username", required=True)
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--branch", "branch_code", default=None, help="Branch code (none: a chain-wide manager).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_create(username: str, role: str, branch_code: str | None, password_stdin: bool) -> None:
    """Create a staff user (asks for the password)."""
    from service.usecases.staff import create_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    _in_transaction(
        _settings(), lambda uow: create_user(uow, username, password, Role(role), branch_code, now=utc_now())
    )
    click.echo(f"user {username} created")


if __name__ == "__main__":
    main()
