"""Settings, read once from the environment (`ATELIER_*`) and `.env`, never by hand elsewhere."""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.escalation import EscalationPolicy, TierRules
from domain.model import Tier
from domain.sla import SlaPolicy
from integrations.http import HttpSettings

DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///./atelier.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ATELIER_", env_file=".env", extra="ignore")

    database_url: str = DEFAULT_SQLITE_URL
    # Connections per server process. SQLAlchemy closes an overflow connection as soon as it is returned
    # while the pool is full, so under steady load above pool_size every request past it connects (TLS
    # attempt, startup, codecs, statement re-preparation) and disconnects: size the pool, not the overflow.
    db_pool_size: int = Field(20, ge=1, le=200)
    db_max_overflow: int = Field(0, ge=0, le=200)
    # Requests one server process works on at once; beyond it, 503 + Retry-After at once (`service.admission`).
    # Five times the pool keeps an admitted request's wait for a connection short at any load.
    max_requests_in_flight: int = Field(100, ge=1, le=100_000)
    # ...and while its event loop runs this late (sustained), it sheds everything until it catches up.
    max_event_loop_lag_seconds: float = Field(1.0, gt=0, le=60)
    redis_url: str | None = None
    # The longest a worker waits between attempts to reach a lost Redis (it retries forever).
    redis_reconnect_max_seconds: float = Field(10.0, gt=0, le=300)
    # The longest an arq task may run; a worker killed mid-task leaves it to be re-run after this + 10 s.
    worker_job_timeout_seconds: int = Field(120, ge=1, le=3600)
    # Tasks one worker runs at once. They wait on suppliers and gateways, not the CPU: with arq's 10, a
    # burst of re-sourcing tasks asking slow suppliers held every slot and customers' messages waited.
    worker_max_jobs: int = Field(50, ge=1, le=1000)
    # Without Redis, `serve` runs the workers' tasks in-process (one machine, SQLite). Tests turn it off.
    embedded_worker: bool = True

    environment: Literal["development", "production"] = "development"
    log_format: Literal["console", "json"] | None = None  # default: console in development, JSON in production
    log_level: str = "INFO"

    jwt_secret: SecretStr | None = None
    token_ttl_seconds: int = Field(8 * 3600, ge=60, le=7 * 24 * 3600)  # one shift
    # Fernet keys, comma-separated, newest first: the first encrypts, all decrypt (rotation).
    passcode_keys: SecretStr | None = None

    sla_express_hours: float = Field(4.0, gt=0, le=24 * 7)
    sla_standard_days: int = Field(3, ge=1, le=60)
    idempotency_ttl_hours: int = Field(24, ge=1, le=24 * 30)
    max_body_bytes: int = Field(1024 * 1024, ge=1024)

    # Suppliers. Private/loopback supplier URLs are refused (SSRF) unless this is set: the sandbox and tests.
    allow_private_supplier_urls: bool = False
    supplier_deadline_seconds: float = Field(20.0, gt=0, le=120)  # one supplier call, retries included
    supplier_max_attempts: int = Field(3, ge=1, le=10)
    webhook_tolerance_seconds: int = Field(300, ge=30, le=3600)  # Standard Webhooks: ±5 minutes
    webhook_retention_days: int = Field(14, ge=7, le=365)  # redeliveries must still find their id
    sla_express_repair_hours: float = Field(1.0, gt=0, le=24 * 7)  # bench time once the parts are in
    sla_standard_repair_hours: float = Field(8.0, gt=0, le=24 * 30)

    # The late-parts escalation ladder (business time on the branch's calendar).
    escalation_express_grace_hours: float = Field(1.0, ge=0, le=24 * 7)  # an ETA slip tolerated before "late"
    escalation_standard_grace_days: int = Field(1, ge=0, le=30)  # business days, same time of day
    escalation_breach_days: int = Field(3, ge=1, le=60)  # a part this many business days late breaches
    escalation_stale_window_hours: float = Field(4.0, ge=0, le=24 * 30)  # stale supplier data not trusted alone
    # Jobs escalated per unit of work by the sweep (<= 3 rungs a job: a statement of <= 3,000 rows of <= 8
    # columns stays under SQLite's and PostgreSQL's ~32,766 bind parameters).
    escalation_sweep_batch: int = Field(200, ge=1, le=1000)

    # Customer notifications: a channel is used only when configured (email: host and from; SMS: URL and key).
    # Devices ready but not collected: the customer is reminded after these many days, then managers told.
    uncollected_reminder_days: list[int] = Field(default_factory=lambda: [3, 10, 30])
    smtp_host: str | None = None
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_from: str | None = None
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    sms_gateway_url: str | None = None
    sms_gateway_key: SecretStr | None = None

    # Express service and pickup. Per branch, `branch.express_capacity` and `branch.storage_slots` override
    # the first two (PATCH /api/v1/branches/{code}).
    express_capacity_per_day: int = Field(6, ge=0, le=1000)  # express intakes a branch takes a day
    storage_slots: list[str] = Field(
        default_factory=lambda: [f"{shelf}-{bin_:02d}" for shelf in "ABCD" for bin_ in range(1, 16)]
    )
    pickup_max_failures: int = Field(5, ge=1, le=100)  # wrong codes before pickup locks for the job
    pickup_lockout_minutes: int = Field(15, ge=1, le=24 * 60)
    # The customer's link: where it points, and how long it works after collection.
    public_base_url: str = "http://127.0.0.1:8000"
    tracking_days_after_collection: int = Field(30, ge=0, le=3650)
    # Rate limits (requests a minute) on what needs no login or guesses a secret: 429 beyond.
    track_rate_per_minute_ip: int = Field(60, ge=1)
    track_rate_per_minute_token: int = Field(30, ge=1)
    pickup_rate_per_minute_ip: int = Field(30, ge=1)
    pickup_rate_per_minute_job: int = Field(10, ge=1)
    # Sign-in attempts (API token and staff pages), counted whatever their outcome: a shop's desks share one
    # address; a username's own limit slows a guess spread over many addresses (a real user waits seconds).
    sign_in_rate_per_minute_ip: int = Field(30, ge=1)
    sign_in_rate_per_minute_user: int = Field(10, ge=1)
    # `/metrics` asks for this bearer token when set (else it is open: keep it off the public network).
    metrics_token: SecretStr | None = None
    # Customers whose last job closed this many months ago are anonymised by the retention task.
    customer_retention_months: int = Field(36, ge=1, le=1200)

    # The staff pages: how often the board asks for fresh columns (seconds).
    web_board_refresh_seconds: int = Field(10, ge=1, le=600)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        _, _, path = self.database_url.partition(":///")
        return Path(path) if path and path != ":memory:" else None

    @cached_property
    def sla_policy(self) -> SlaPolicy:
        return SlaPolicy(
            express_hours=self.sla_express_hours,
            standard_days=self.sla_standard_days,
            express_repair_hours=self.sla_express_repair_hours,
            standard_repair_hours=self.sla_standard_repair_hours,
        )

    @cached_property
    def escalation_policy(self) -> EscalationPolicy:
        return EscalationPolicy(
            rules={
                Tier.EXPRESS: TierRules(
                    grace=timedelta(hours=self.escalation_express_grace_hours), breach_days=self.escalation_breach_days
                ),
                Tier.STANDARD: TierRules(
                    grace_days=self.escalation_standard_grace_days, breach_days=self.escalation_breach_days
                ),
            },
            stale_window=timedelta(hours=self.escalation_stale_window_hours),
        )

    @property
    def supplier_http(self) -> HttpSettings:
        return HttpSettings(deadline=self.supplier_deadline_seconds, max_attempts=self.supplier_max_attempts)

    @property
    def effective_log_format(self) -> Literal["console", "json"]:
        if self.log_format:
            return self.log_format
        return "json" if self.environment == "production" else "console"
