"""The `atelier` command: serve the API, migrate the database, create branches and staff."""

from __future__ import annotations

import asyncio
import atexit
import json
import logging.config
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from domain.errors import DomainError
from domain.stages import Role
from integrations.webhooks import new_secret
from service.errors import ConfigurationError
from service.persistence import migrate
from service.persistence.db import create_engine
from service.secrets import PasscodeCipher, required_secrets
from service.services import utc_now
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


def _demo_secrets(settings: Settings) -> str:
    """Generate demo keys once and keep them beside the database, so a restart can still read the
    passcodes it stored. Exported to the environment so every server worker process shares them."""
    folder = settings.sqlite_path.parent if settings.sqlite_path else Path.cwd()
    path = folder / DEMO_SECRETS_FILE
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    if set(stored) != {"jwt_secret", "passcode_keys", "webhook_secret"}:
        stored = {
            "jwt_secret": stored.get("jwt_secret") or secrets.token_urlsafe(48),
            "passcode_keys": stored.get("passcode_keys") or PasscodeCipher.generate_key(),
            "webhook_secret": stored.get("webhook_secret") or new_secret(),
        }
        folder.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
            json.dump(stored, out)
    if settings.jwt_secret is None:
        os.environ["ATELIER_JWT_SECRET"] = stored["jwt_secret"]
    if settings.passcode_keys is None:
        os.environ["ATELIER_PASSCODE_KEYS"] = stored["passcode_keys"]
    # The demo's suppliers are the sandbox on this machine: a private address, allowed for the demo only.
    os.environ["ATELIER_ALLOW_PRIVATE_SUPPLIER_URLS"] = "true"
    return stored["webhook_secret"]


def _prepare_database(settings: Settings) -> None:
    if settings.is_sqlite:
        migrate.upgrade(settings)  # the embedded default migrates itself
    elif not migrate.is_current(settings):
        raise click.ClickException("the database schema is not current: run `atelier db upgrade` first")


def _seed_demo(settings: Settings, sandbox_url: str, webhook_secret: str) -> dict[str, int]:
    """Seed the demo data; returns the demo suppliers' ids by sandbox tenant."""
    from service.demo import DEMO_PASSWORD, SUPPLIERS, USERS, seed_demo

    assert settings.passcode_keys is not None
    cipher = PasscodeCipher(settings.passcode_keys.get_secret_value())

    async def run() -> tuple[int, dict[str, int]]:
        engine = create_engine(settings)
        try:
            db = Database(engine)
            created = await seed_demo(
                db, cipher, settings, utc_now, sandbox_url=sandbox_url, webhook_secret=webhook_secret
            )
            async with db.transaction(write=False) as uow:
                ids = {s.supplier.name: s.supplier.id for s in await uow.suppliers.list()}
            return created, {tenant: ids[name] for name, _, tenant in SUPPLIERS if name in ids}
        finally:
            await engine.dispose()

    created, tenants = asyncio.run(run())
    click.echo(f"Demo data ready ({created} new jobs). Logins, all with the password {DEMO_PASSWORD!r}:")
    for username, role, branch in USERS:
        click.echo(f"  {username:<18} {role.value:<11} {branch or 'all branches'}")
    return tenants


def _start_demo_sandbox(port: int) -> subprocess.Popen[bytes] | None:
    """The demo's suppliers: a sandbox child process, unless something already listens on the port."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            click.echo(f"Port {port} is in use: using the supplier sandbox already running there")
            return None
    command = [sys.executable, "-m", "service.cli", "sandbox", "supplier", "--port", str(port)]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL)  # noqa: S603 (our own CLI)
    atexit.register(child.terminate)
    return child


def _point_sandbox_webhooks(sandbox_url: str, atelier_url: str, tenants: dict[str, int], secret: str) -> None:
    """Make each demo tenant push signed webhooks to its supplier's endpoint, once the sandbox answers.
    Done before the server forks its workers: a thread alive at fork time could leave them a held lock."""
    import httpx

    with httpx.Client(timeout=2) as client:
        for _ in range(150):
            try:
                for tenant, supplier_id in tenants.items():
                    url = f"{atelier_url}/api/v1/webhooks/suppliers/{supplier_id}"
                    response = client.post(
                        f"{sandbox_url}/t/{tenant}/_sandbox/webhooks", json={"url": url, "secret": secret}
                    )
                    response.raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.1)
    click.echo("The supplier sandbox did not answer: its webhooks are not configured", err=True)


def _share_metrics_directory() -> None:
    """Several server processes: each counts its own requests, and `/metrics`, answered by any one of
    them, must add them all up (prometheus_client's multiprocess mode, through files in a directory they
    share). A fresh directory per run: files left by an earlier run would be counted again."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    directory = tempfile.mkdtemp(prefix="atelier-metrics-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory


@main.command()
@click.option("--host", default=None, help="Address to listen on (default ATELIER_HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default ATELIER_PORT or 8000).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Server processes.")
@click.option(
    "--demo", is_flag=True, help="Seed demo data and run the supplier sandbox; generate keys if none are set."
)
@click.option("--sandbox-port", type=int, default=9100, show_default=True, help="The demo's supplier sandbox port.")
def serve(host: str | None, port: int | None, workers: int, demo: bool, sandbox_port: int) -> None:
    """Run the API server."""
    if workers > 1:
        _share_metrics_directory()
    settings = _settings()
    webhook_secret = ""
    if demo:
        webhook_secret = _demo_secrets(settings)
        settings = _settings()
    try:
        required_secrets(settings)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc
    _prepare_database(settings)
    address, listen_port = host or settings.host, port or settings.port
    # Customers' links point at this server unless the operator says where customers reach it.
    shown = "127.0.0.1" if address in ("0.0.0.0", "::") else address  # noqa: S104 (compared, not bound)
    os.environ.setdefault("ATELIER_PUBLIC_BASE_URL", f"http://{shown}:{listen_port}")
    if demo:
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        tenants = _seed_demo(settings, sandbox_url, webhook_secret)
        _start_demo_sandbox(sandbox_port)
        _point_sandbox_webhooks(sandbox_url, f"http://127.0.0.1:{listen_port}", tenants, webhook_secret)
        # The demo's customers get their SMS through the sandbox's gateway (listed at /_sandbox/sms).
        os.environ.setdefault("ATELIER_SMS_GATEWAY_URL", sandbox_url)
        os.environ.setdefault("ATELIER_SMS_GATEWAY_KEY", "demo-key")
        click.echo(f"Supplier sandbox on {sandbox_url} (suppliers: {', '.join(tenants)})")
    from granian import Granian
    from granian.constants import Interfaces

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


@main.command()
@click.option("--check", is_flag=True, help="Exit 0 if a worker reported healthy recently, else 1 (arq's check).")
@click.option("--burst", is_flag=True, help="Run what is queued, then stop.")
def worker(check: bool, burst: bool) -> None:
    """Run an arq worker against ATELIER_REDIS_URL: supplier polling, escalations, the outbox."""
    from arq.logs import default_log_config
    from arq.worker import run_worker
    from redis.exceptions import RedisError

    from service.logging import configure_logging
    from workers.settings import WorkerSettings, check_health, wait_for_redis, worker_options

    settings = _settings()
    if not settings.redis_url:
        raise click.ClickException("ATELIER_REDIS_URL is not set (without Redis, `atelier serve` runs the tasks)")
    try:
        required_secrets(settings)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc
    if check:
        try:
            sys.exit(check_health(settings.redis_url))
        except (RedisError, OSError) as exc:  # TimeoutError too: unreachable, said at once
            raise click.ClickException(f"Redis is unreachable: {type(exc).__name__}: {exc}") from exc
    options = worker_options(settings)
    # arq reports through the standard library's logging; ours through structlog.
    logging.config.dictConfig(default_log_config(verbose=settings.log_level.upper() == "DEBUG"))
    configure_logging(settings)
    _prepare_database(settings)
    asyncio.run(wait_for_redis(settings.redis_url, settings.redis_reconnect_max_seconds))
    run_worker(WorkerSettings, burst=burst, **options)  # type: ignore[arg-type]


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
    """Re-encrypt every stored passcode and supplier secret under the first key of ATELIER_PASSCODE_KEYS."""
    from service.usecases.passcodes import rotate_data_keys

    settings = _settings()
    if settings.passcode_keys is None:
        raise click.ClickException("ATELIER_PASSCODE_KEYS is not set")
    try:
        cipher = PasscodeCipher(settings.passcode_keys.get_secret_value())
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc
    rotated = _in_transaction(settings, lambda uow: rotate_data_keys(uow, cipher))
    click.echo(
        f"{rotated.passcodes} passcodes and the secrets of {rotated.suppliers} suppliers"
        " re-encrypted under the newest key"
    )


@main.group()
def webhooks() -> None:
    """Supplier webhooks received."""


@webhooks.command("purge")
def webhooks_purge() -> None:
    """Forget webhook ids older than ATELIER_WEBHOOK_RETENTION_DAYS (redeliveries come within days)."""
    from datetime import timedelta

    settings = _settings()
    before = utc_now() - timedelta(days=settings.webhook_retention_days)
    count = _in_transaction(settings, lambda uow: uow.suppliers.purge_webhooks(before))
    click.echo(f"{count} webhook records older than {settings.webhook_retention_days} days removed")


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

    password = _new_password(password_stdin)
    _in_transaction(
        _settings(), lambda uow: create_user(uow, username, password, Role(role), branch_code, now=utc_now())
    )
    click.echo(f"user {username} created")


@user.command("password")
@click.option("--username", required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_password(username: str, password_stdin: bool) -> None:
    """Set a staff user's password (asks for it)."""
    from service.usecases.staff import set_password

    password = _new_password(password_stdin)
    _in_transaction(_settings(), lambda uow: set_password(uow, username, password))
    click.echo(f"password of {username} changed")


def _new_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


# --- sandbox -------------------------------------------------------------------------------------


@main.group()
def sandbox() -> None:
    """Stand-ins for the outside world, for development and tests."""


@sandbox.command("supplier")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=9100, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True, help="Prices, lead times, stock and dice follow it.")
@click.option("--api-key", default=None, help="The only bearer key accepted (default: any non-empty key).")
@click.option("--latency-ms", type=click.IntRange(0), default=0, show_default=True)
@click.option("--error-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option("--rate-429", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option("--malformed-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option("--eta-slip-hours", type=int, default=0, show_default=True)
@click.option("--backorder-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option("--partial-ship", is_flag=True, help="Shipping ships half (rounded up) of each line.")
@click.option("--webhook-url", default=None, help="Push events here (with --webhook-secret).")
@click.option("--webhook-secret", default=None, help="whsec_<base64>, to sign the pushes.")
def sandbox_supplier(
    host: str,
    port: int,
    seed: int,
    api_key: str | None,
    webhook_url: str | None,
    webhook_secret: str | None,
    **faults: Any,
) -> None:
    """A fake parts supplier (REST API, CSV feed, webhooks, faults), many tenants in one process.

    The fault options are every tenant's defaults; see /_sandbox/faults to change them per tenant."""
    from integrations.sandbox.config import ENV_VAR, SandboxConfig
    from integrations.sandbox.faults import Faults
    from integrations.sandbox.webhooks import secret_key

    if (webhook_url is None) != (webhook_secret is None):
        raise click.UsageError("--webhook-url and --webhook-secret go together")
    if webhook_secret is not None:
        try:
            secret_key(webhook_secret)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--webhook-secret") from exc
    config = SandboxConfig(
        seed=seed, api_key=api_key, faults=Faults(**faults), webhook_url=webhook_url, webhook_secret=webhook_secret
    )
    # Granian imports the app in its worker process: the configuration travels in the environment.
    os.environ[ENV_VAR] = config.to_env()
    from granian import Granian
    from granian.constants import Interfaces

    base = f"http://{host}:{port}"
    click.echo(f"Supplier sandbox on {base} (tenant 'default'); any other tenant at {base}/t/<name>")
    Granian(
        "integrations.sandbox.app:create_app",
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        workers=1,  # the state is in this one process's memory
        respawn_failed_workers=False,  # a respawn would silently forget every order: better to stop
        log_access=False,
    ).serve()


if __name__ == "__main__":
    main()
