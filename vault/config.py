"""Settings from environment variables, validated once at start-up.

A bad value stops start-up with a message naming the variable; nothing else in the vault reads os.environ.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vault.audit.witnessing import Witness, parse_witnesses

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Mode(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class ConfigError(Exception):
    """An environment variable has a value the vault cannot start with."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    master_keys: str | None
    mode: Mode
    host: str
    port: int
    public_url: str
    erasure_grace_days: int
    log_level: str
    policies_dir: Path
    checkpoint_interval_seconds: int
    timezone: str = "Asia/Shanghai"
    witnesses: tuple[Witness, ...] = ()
    trusted_proxies: tuple[IPNetwork, ...] = ()
    smtp_url: str | None = None
    webhook_url: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        return self.mode is Mode.PRODUCTION

    @property
    def secure_cookies(self) -> bool:
        """Secure, __Host- cookies: served over https, which production mode requires."""
        return self.is_production or self.public_url.startswith("https://")

    def trusts_proxy(self, address: str | None) -> bool:
        """Whether the direct peer at `address` is a proxy whose X-Forwarded-For may be believed."""
        try:
            peer = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(peer in network for network in self.trusted_proxies)

    @property
    def key_file(self) -> Path:
        return self.data_dir / "master.keys"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"


PROJECT_ROOT = Path(__file__).resolve().parent.parent

# name -> (default, description); README.md's table is checked against this by a test.
VARIABLES: dict[str, tuple[str, str]] = {
    "VAULT_DATA_DIR": ("./var", "where the local key file, the SQLite database and the logs live"),
    "VAULT_DATABASE_URL": (
        "sqlite:///<VAULT_DATA_DIR>/vault.db",
        "SQLAlchemy URL; `postgresql+psycopg://user@host/db` for PostgreSQL",
    ),
    "VAULT_MASTER_KEYS": (
        "(unset: a key file in the data dir)",
        "master keys as `id:base64key`, comma separated, the first is the primary",
    ),
    "VAULT_MODE": ("development", "`development` or `production` (hardened: no GraphiQL, no introspection)"),
    "VAULT_HOST": ("127.0.0.1", "address the server listens on"),
    "VAULT_PORT": ("8000", "port the server listens on"),
    "VAULT_PUBLIC_URL": ("http://<VAULT_HOST>:<VAULT_PORT>", "the vault's own URL as agencies see it"),
    "VAULT_ERASURE_GRACE_DAYS": ("30", "days between an erasure request and the destruction of the key"),
    "VAULT_LOG_LEVEL": ("INFO", "DEBUG, INFO, WARNING or ERROR"),
    "VAULT_POLICIES_DIR": ("<project>/policies", "Cedar policies, service catalogue and licence types"),
    "VAULT_CHECKPOINT_INTERVAL": ("60", "seconds between submissions of the access log's checkpoint to witnesses"),
    "VAULT_WITNESSES": (
        "(none)",
        "witnesses that cosign the access log, comma separated, each `<url> <verifier key>` (`vault witness init`)",
    ),
    "VAULT_TIMEZONE": ("Asia/Shanghai", "IANA time zone the web pages show times in, labelled (owners' local time)"),
    "VAULT_TRUSTED_PROXIES": (
        "(unset: trust none)",
        "addresses or CIDRs of reverse proxies whose X-Forwarded-For is believed, comma separated",
    ),
    "VAULT_SMTP_URL": (
        "(unset: no e-mail)",
        "`smtp://`, `smtp+starttls://` or `smtps://[user:password@]host[:port][?from=address]` for notification e-mail",
    ),
    "VAULT_WEBHOOK_URL": (
        "(unset)",
        "where notifications are POSTed (signed) for people who chose a webhook but gave none",
    ),
}


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _database_url(env: Mapping[str, str], data_dir: Path) -> str:
    url = env.get("VAULT_DATABASE_URL") or f"sqlite:///{data_dir / 'vault.db'}"
    scheme = url.split(":", 1)[0]
    if scheme == "postgresql":
        url = "postgresql+psycopg" + url[len("postgresql") :]
    elif scheme not in ("sqlite", "postgresql+psycopg"):
        raise ConfigError(f"VAULT_DATABASE_URL must start with sqlite:/// or postgresql://, got scheme {scheme!r}")
    return url


def _public_url(env: Mapping[str, str], host: str, port: int) -> str:
    url = env.get("VAULT_PUBLIC_URL") or f"http://{host}:{port}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"VAULT_PUBLIC_URL must be an absolute http(s) URL, got {url!r}")
    if parts.query or parts.fragment:
        raise ConfigError("VAULT_PUBLIC_URL must not carry a query or fragment")
    return url.rstrip("/")


def _timezone(env: Mapping[str, str]) -> str:
    name = env.get("VAULT_TIMEZONE") or "Asia/Shanghai"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"VAULT_TIMEZONE must be an IANA time zone such as Asia/Shanghai, got {name!r}") from None
    return name


def _trusted_proxies(env: Mapping[str, str]) -> tuple[IPNetwork, ...]:
    raw = env.get("VAULT_TRUSTED_PROXIES") or ""
    networks = []
    for entry in (e.strip() for e in raw.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ConfigError(f"VAULT_TRUSTED_PROXIES must list IP addresses or CIDRs, got {entry!r}") from None
    return tuple(networks)


def _smtp_url(env: Mapping[str, str], public_url: str) -> str | None:
    url = env.get("VAULT_SMTP_URL") or None
    if url is not None:
        from vault.notifications.channels import SmtpServer  # the one parser of these URLs

        try:
            SmtpServer.parse(url, default_sender(public_url))
        except ValueError as exc:
            raise ConfigError(f"VAULT_SMTP_URL is not usable: {exc}") from None
    return url


def _webhook_url(env: Mapping[str, str]) -> str | None:
    url = env.get("VAULT_WEBHOOK_URL") or None
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
            raise ConfigError(f"VAULT_WEBHOOK_URL must be an absolute http(s) URL without a fragment, got {url!r}")
    return url


def default_sender(public_url: str) -> str:
    """The From address of notification e-mail when VAULT_SMTP_URL names none."""
    host = urlsplit(public_url).hostname or "localhost"
    return f"noreply@{host if '.' in host else host + '.localdomain'}"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every VAULT_* variable; raises ConfigError naming the first bad one."""
    env = os.environ if env is None else env
    known = set(VARIABLES) | {"VAULT_TEST_POSTGRES_URL", "VAULT_TEST_CHROMIUM", "VAULT_BENCH_POSTGRES_URL"}
    unknown = sorted(k for k in env if k.startswith("VAULT_") and k not in known)
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]}: the known ones are listed in README.md")

    data_dir = Path(env.get("VAULT_DATA_DIR") or "./var").expanduser().resolve()
    raw_mode = env.get("VAULT_MODE") or "development"
    try:
        mode = Mode(raw_mode)
    except ValueError:
        raise ConfigError(f"VAULT_MODE must be development or production, got {raw_mode!r}") from None
    host = env.get("VAULT_HOST") or "127.0.0.1"
    port = _int(env, "VAULT_PORT", 8000, 1, 65535)
    log_level = (env.get("VAULT_LOG_LEVEL") or "INFO").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"VAULT_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {log_level!r}")
    master_keys = env.get("VAULT_MASTER_KEYS") or None
    if mode is Mode.PRODUCTION and master_keys is None:
        raise ConfigError("VAULT_MASTER_KEYS must be set in production mode (the key file is for development)")
    public_url = _public_url(env, host, port)
    if mode is Mode.PRODUCTION and not public_url.startswith("https://"):
        raise ConfigError(f"VAULT_PUBLIC_URL must be an https URL in production mode, got {public_url!r}")
    policies_dir = Path(env.get("VAULT_POLICIES_DIR") or PROJECT_ROOT / "policies").resolve()
    if not policies_dir.is_dir():
        raise ConfigError(f"VAULT_POLICIES_DIR is not a directory: {policies_dir}")
    return Settings(
        data_dir=data_dir,
        database_url=_database_url(env, data_dir),
        master_keys=master_keys,
        mode=mode,
        host=host,
        port=port,
        public_url=public_url,
        erasure_grace_days=_int(env, "VAULT_ERASURE_GRACE_DAYS", 30, 0, 3650),
        log_level=log_level,
        policies_dir=policies_dir,
        checkpoint_interval_seconds=_int(env, "VAULT_CHECKPOINT_INTERVAL", 60, 1, 86400),
        timezone=_timezone(env),
        witnesses=_witnesses(env),
        trusted_proxies=_trusted_proxies(env),
        smtp_url=_smtp_url(env, public_url),
        webhook_url=_webhook_url(env),
    )


def _witnesses(env: Mapping[str, str]) -> tuple[Witness, ...]:
    try:
        return parse_witnesses(env.get("VAULT_WITNESSES") or "")
    except ValueError as error:
        raise ConfigError(f"VAULT_WITNESSES: {error}") from None
