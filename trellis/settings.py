"""Configuration from `TRELLIS_*` environment variables (pydantic-settings)."""

from __future__ import annotations

import ipaddress
from functools import cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "trellis-dev-secret-change-me-0123456789abcdef"  # noqa: S105 - dev only, loopback only
DEFAULT_PORTS = {
    "gateway": 8000,
    "readiness": 8001,
    "learning": 8002,
    "coaching": 8003,
    "fidelity": 8004,
    "community": 8005,
}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class Settings(BaseSettings):
    """Platform-wide settings shared by every process."""

    model_config = SettingsConfigDict(env_prefix="TRELLIS_", env_file=".env", extra="ignore")

    var_dir: Path = Path("var")
    services: list[str] = Field(
        default=["readiness", "fidelity", "coaching", "community"],
        description='Services the dev runner starts, as a JSON list: ["readiness","fidelity","coaching","community"].',
    )
    bind_host: str = "127.0.0.1"
    nats_url: str = "nats://127.0.0.1:4222"
    nats_port: int = 4222
    # Start-up waits this long for NATS, then serves HTTP anyway (/readyz 503) and keeps trying.
    nats_connect_grace_s: float = 5.0
    # JetStream layout; production raises replicas to 3.
    stream_replicas: int = 1
    stream_max_age_days: int = 3650
    stream_duplicate_window_s: float = 600.0
    # Consumers: deliveries before the DLQ and the NAK delays between them.
    consumer_max_deliver: int = 5
    consumer_backoff_s: list[float] = [1.0, 5.0, 30.0, 120.0]
    consumer_ack_wait_s: float = 30.0
    # A handler running longer than this fails (and is retried); the message is kept alive meanwhile.
    consumer_handler_timeout_s: float = 60.0
    # One pull fetch is handled in one transaction: up to this many messages, whatever has arrived
    # (a lone event is not held back to fill a batch). An idle consumer asks the server this often.
    consumer_batch_size: int = 256
    consumer_batch_wait_s: float = 1.0
    # PostgreSQL: waiting on a row lock, or one statement, fails after this long instead of stalling.
    db_lock_timeout_ms: int = 5000
    db_statement_timeout_ms: int = 30000
    # PostgreSQL connections per process: the pool keeps up to db_pool_size open and opens up to
    # db_max_overflow more under load. Replicas x (both) must fit the server's max_connections.
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    outbox_poll_s: float = 1.0
    outbox_batch: int = 256
    outbox_linger_s: float = 0.0
    # A row that fails this many publishes for its own reason (too large, no stream) is parked.
    outbox_max_attempts: int = 10
    # Housekeeping: sent outbox rows and idempotency keys are kept this long, then purged.
    outbox_retention_days: float = 7.0
    # Inbox rows outlive the outbox's retention by this margin: a redelivery can come no later.
    inbox_retention_margin_days: float = 7.0
    idempotency_ttl_hours: float = 24.0
    housekeeping_every_s: float = 3600.0
    # Auth: a dev HS256 secret, or an OIDC issuer whose JWKS verifies RS/ES tokens.
    jwt_secret: SecretStr = SecretStr(DEV_SECRET)
    jwt_issuer: str = "trellis-dev"
    jwt_audience: str = "trellis"
    oidc_issuer: str | None = None
    oidc_jwks_url: str | None = None
    oidc_audience: str | None = None
    # Fidelity: a rater waits this long between calibration attempts on one instrument family.
    calibration_cooldown_s: float = Field(default=900.0, ge=0)
    log_level: str = "INFO"
    # Request bodies, refused with 413 while they stream in (trellis/limits.py): CSV uploads
    # (text/csv, application/csv, text/plain) have their own limit; every other body has the JSON one.
    max_json_body_bytes: int = Field(default=1024 * 1024, ge=1)
    max_csv_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1)

    @property
    def nats_servers(self) -> list[str]:
        """`TRELLIS_NATS_URL` may list a cluster's seeds, comma separated."""
        return [u.strip() for u in self.nats_url.split(",") if u.strip()]

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_jwks_url)

    def service_url(self, service: str) -> str:
        return service_settings(service).url


class ServiceSettings(BaseSettings):
    """Per-service settings, `TRELLIS_<SERVICE>_*` (e.g. TRELLIS_FIDELITY_DATABASE_URL)."""

    name: str = ""
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    base_url: str | None = Field(default=None, description="Where others reach it, e.g. http://fidelity:8000")

    @property
    def url(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")


@cache
def _service_settings_class(service: str) -> type[ServiceSettings]:
    config = SettingsConfigDict(
        env_prefix=f"TRELLIS_{service.upper()}_", extra="ignore"
    )
    return type(f"{service.title()}Settings", (ServiceSettings,), {"model_config": config})


def service_settings(service: str, platform: Settings | None = None) -> ServiceSettings:
    platform = platform or get_settings()
    s = _service_settings_class(service)()
    updates: dict[str, object] = {"name": service}
    if not s.port:
        updates["port"] = DEFAULT_PORTS.get(service, 8010)
    if not s.database_url:
        updates["database_url"] = f"sqlite+aiosqlite:///{platform.var_dir / f'{service}.db'}"
    return s.model_copy(update=updates)


@cache
def get_settings() -> Settings:
    return Settings()


class DevSecretExposed(RuntimeError):
    """The public dev JWT secret would be used on an address others can reach."""


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the port on this machine ('' and 0.0.0.0 bind every address)."""
    if host.strip("[]").lower() in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name may resolve anywhere


def refuse_dev_secret_exposed(settings: Settings, host: str) -> None:
    """Refuse to serve on a non-loopback address while anyone can mint tokens with the public dev secret."""
    if settings.oidc_enabled or is_loopback(host):
        return
    if settings.jwt_secret.get_secret_value() == DEV_SECRET:
        raise DevSecretExposed(
            f"refusing to listen on {host!r} with the public dev JWT secret: anyone could mint tokens. "
            "Configure OIDC (TRELLIS_OIDC_ISSUER and TRELLIS_OIDC_JWKS_URL), set a secret of your own "
            "(TRELLIS_JWT_SECRET), or bind to 127.0.0.1."
        )
