"""Configuration, read once from environment variables (the README lists every one).

A bad value stops the service at start with one line naming the variable.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast, get_args
from urllib.parse import urlparse

import msgspec

from pam_shared.privacy import Privacy
from pam_shared.protocol import OnBusy
from pam_shared.subjects import Subjects

DEV_JWT_SECRET = "pam-development-secret-change-me-0123456789"


class ConfigError(Exception):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class NatsSettings:
    """Where NATS is, how to sign in to it, and how many copies JetStream keeps of our data."""

    url: str
    creds_file: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    replicas: int | None = None
    """None: decided from the cluster's size (``pam_shared.jetstream``)."""

    @property
    def servers(self) -> list[str]:
        return [part.strip() for part in self.url.split(",") if part.strip()]


@dataclass(frozen=True)
class Settings:
    """What every service reads: where NATS is, who this process is, how it logs."""

    nats: NatsSettings
    nats_namespace: str
    environment: str
    instance_id: str
    log_level: str
    metrics_port: int
    metrics_host: str
    privacy_default: Privacy
    """The privacy settings of a user who has not chosen (``PAM_DEFAULT_STORE_CONVERSATIONS``, ...)."""

    @property
    def nats_url(self) -> str:
        return self.nats.url

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def subjects(self) -> Subjects:
        return Subjects(self.nats_namespace)


@dataclass(frozen=True)
class AuthSettings:
    """How tokens are checked (the gateway) and minted (development tools)."""

    jwt_secret: str | None
    """HS256's secret; None only in production with Supabase's keys: HS256 tokens are refused."""
    jwt_audience: str
    jwt_leeway_seconds: float
    demo_mode: bool
    jwks_url: str | None = None
    """Where Supabase publishes its signing keys (ES256/RS256 tokens); None: HS256 only."""
    jwt_issuer: str | None = None
    jwks_refresh_seconds: float = 30.0
    jwks_cache_seconds: float = 600.0


@dataclass(frozen=True)
class JournalSettings:
    """How a publisher of events holds them while JetStream cannot take them."""

    max_pending: int
    spool_dir: str


@dataclass(frozen=True)
class ModelEndpoint:
    """One OpenAI-compatible endpoint a chat may be answered by."""

    name: str
    """What logs, metrics, analytics and health call it: ``host/model`` unless PAM_MODELS names it."""
    base_url: str | None
    """None: OpenAI's own API."""
    model: str
    api_key: str = field(repr=False)
    timeout_seconds: float


@dataclass(frozen=True)
class ModelSettings:
    """The model endpoints in the order a chat tries them, and the bounds of one answer."""

    endpoints: tuple[ModelEndpoint, ...]
    retries: int
    """Rounds over the endpoints again, after a short pause, when every one failed."""
    max_completion_tokens: int
    answer_deadline_seconds: float
    breaker_failures: int
    breaker_cooldown_seconds: float


class _EndpointSpec(msgspec.Struct, forbid_unknown_fields=True):
    """One entry of ``PAM_MODELS`` as written."""

    base_url: str
    model: str
    api_key_env: str | None = None
    timeout_seconds: float | None = None
    name: str | None = None


SPEECH_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse")
"""OpenAI's speech voices: a client's voice name among them is used, any other is ignored."""


@dataclass(frozen=True)
class SpeechSettings:
    """Spoken answers (``POST /api/v1/pam/voice``): the gateway's limits, the orchestrator's model."""

    per_ip_per_minute: int
    per_user_per_minute: int
    max_chars: int
    timeout_seconds: float
    model: str
    voice: str
    cache_seconds: float
    cache_bytes: int
    base_url: str | None
    api_key: str = field(repr=False)
    """Empty: no speech (requests get ``voice_unavailable``)."""


@dataclass(frozen=True)
class BudgetSettings:
    """Tokens each user may spend per UTC day and per UTC month; 0 is unlimited."""

    tokens_per_day: int
    tokens_per_month: int

    @property
    def enabled(self) -> bool:
        return bool(self.tokens_per_day or self.tokens_per_month)


@dataclass(frozen=True)
class GatewaySettings(Settings):
    auth: AuthSettings
    journal: JournalSettings
    budget: BudgetSettings
    gateway_host: str
    gateway_port: int
    max_message_bytes: int
    reply_timeout_seconds: float
    send_queue_bytes: int
    rate_burst: int
    rate_per_second: float
    user_messages_per_minute: int
    max_sockets_per_user: int
    ip_connects_per_minute: int
    trusted_proxies: tuple[str, ...]
    allowed_origins: tuple[str, ...]
    idempotency_window_seconds: float
    token_warning_seconds: float
    shutdown_grace_seconds: float
    resume_window_seconds: float
    speech: SpeechSettings


@dataclass(frozen=True)
class OrchestratorSettings(Settings):
    journal: JournalSettings
    budget: BudgetSettings
    models: ModelSettings
    double_texting: OnBusy
    progress_interval_seconds: float
    chunk_window_ms: float
    history_turns: int
    conversation_idle_minutes: float
    resume_window_seconds: float
    speech: SpeechSettings


@dataclass(frozen=True)
class RetentionSettings:
    """How long persistence keeps what users leave behind; its retention loop deletes the rest."""

    days: int
    """Conversations, messages, analytics and dead letters older than this go; 0 keeps them forever."""
    erasure_fence_days: int
    """How long an erasure fence (``erasures``) outlives the erasure; kept whatever ``days`` says."""
    interval_seconds: float
    batch: int
    """Rows per DELETE: each batch is its own short transaction."""

    @property
    def keeps_forever(self) -> bool:
        return self.days == 0


@dataclass(frozen=True)
class PersistenceSettings(Settings):
    database_url: str
    persist_batch_size: int
    persist_flush_ms: float
    conversation_idle_minutes: float
    activity_resolution_seconds: float
    db_pool_size: int
    retention: RetentionSettings


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """The common settings alone (for tools that only talk to NATS)."""
    return Settings(**_common(_Reader(os.environ if env is None else env)))


def load_auth_settings(env: Mapping[str, str] | None = None) -> AuthSettings:
    read = _Reader(os.environ if env is None else env)
    production = _environment(read) == "production"
    jwks = _jwks(read)
    return AuthSettings(
        jwt_secret=_jwt_secret(read, production, bool(jwks)),
        jwt_audience=read.text("PAM_JWT_AUDIENCE", "authenticated"),
        jwt_leeway_seconds=read.number("PAM_JWT_LEEWAY_SECONDS", 5.0, low=0, high=60),
        demo_mode=read.flag("PAM_DEMO_MODE", not production),
        **jwks,
    )


def _jwt_secret(read: _Reader, production: bool, jwks: bool) -> str | None:
    """The development secret by default; in production the project's, which only a
    deployment whose tokens are all checked against Supabase's keys may go without."""
    if production and jwks:
        return read.secret("JWT_SECRET", "") or None
    return read.secret("JWT_SECRET", None if production else DEV_JWT_SECRET)


def _jwks(read: _Reader) -> dict[str, Any]:
    """Supabase's signing keys: ``$SUPABASE_URL/auth/v1/.well-known/jwks.json`` unless
    ``PAM_JWKS_URL`` names another address; its tokens' issuer is ``$SUPABASE_URL/auth/v1``."""
    supabase_url = read.optional_url("SUPABASE_URL", ("http", "https"))
    jwks_url = read.optional_url("PAM_JWKS_URL", ("http", "https"))
    if supabase_url is None:
        if jwks_url is not None:
            raise ConfigError("PAM_JWKS_URL needs SUPABASE_URL (its tokens' issuer is $SUPABASE_URL/auth/v1)")
        return {}
    issuer = supabase_url.rstrip("/") + "/auth/v1"
    refresh = read.number("PAM_JWKS_REFRESH_SECONDS", 30.0, low=1, high=3600)
    return {
        "jwks_url": jwks_url or issuer + "/.well-known/jwks.json",
        "jwt_issuer": issuer,
        "jwks_refresh_seconds": refresh,
        "jwks_cache_seconds": read.number("PAM_JWKS_CACHE_SECONDS", 600.0, low=refresh, high=86400),
    }


def load_gateway_settings(env: Mapping[str, str] | None = None) -> GatewaySettings:
    """Read and check the gateway's settings; raises ConfigError on the first bad one."""
    env = os.environ if env is None else env
    read = _Reader(env)
    return GatewaySettings(
        **_common(read),
        auth=load_auth_settings(env),
        journal=_journal(read),
        budget=_budget(read),
        gateway_host=read.text("PAM_GATEWAY_HOST", "127.0.0.1"),
        gateway_port=int(read.number("PAM_GATEWAY_PORT", 8000, low=0, high=65535)),
        max_message_bytes=int(read.number("PAM_MAX_MESSAGE_BYTES", 65536, low=256)),
        reply_timeout_seconds=read.number("PAM_REPLY_TIMEOUT_SECONDS", 10.0, low=0.1),
        send_queue_bytes=int(read.number("PAM_SEND_QUEUE_BYTES", 1_048_576, low=1024)),
        rate_burst=int(read.number("PAM_RATE_BURST", 20, low=1)),
        rate_per_second=read.number("PAM_RATE_PER_SECOND", 2.0, low=0.01),
        user_messages_per_minute=int(read.number("PAM_USER_MESSAGES_PER_MINUTE", 120, low=1)),
        max_sockets_per_user=int(read.number("PAM_MAX_SOCKETS_PER_USER", 10, low=1)),
        ip_connects_per_minute=int(read.number("PAM_IP_CONNECTS_PER_MINUTE", 600, low=1)),
        trusted_proxies=read.networks("PAM_TRUSTED_PROXIES"),
        allowed_origins=read.origins("PAM_ALLOWED_ORIGINS", () if _environment(read) == "production" else ("*",)),
        idempotency_window_seconds=read.number("PAM_IDEMPOTENCY_WINDOW_SECONDS", 120.0, low=1),
        token_warning_seconds=read.number("PAM_TOKEN_WARNING_SECONDS", 60.0, low=0),
        shutdown_grace_seconds=read.number("PAM_SHUTDOWN_GRACE_SECONDS", 10.0, low=0),
        resume_window_seconds=_resume_window(read),
        speech=load_speech_settings(env),
    )


def load_orchestrator_settings(env: Mapping[str, str] | None = None) -> OrchestratorSettings:
    """Read and check the orchestrator's settings; raises ConfigError on the first bad one."""
    env = os.environ if env is None else env
    read = _Reader(env)
    return OrchestratorSettings(
        **_common(read),
        journal=_journal(read),
        budget=_budget(read),
        models=load_model_settings(env),
        double_texting=cast("OnBusy", read.choice("PAM_DOUBLE_TEXTING", get_args(OnBusy), "enqueue")),
        progress_interval_seconds=read.number("PAM_PROGRESS_INTERVAL_SECONDS", 2.0, low=0.05),
        chunk_window_ms=read.number("PAM_CHUNK_WINDOW_MS", 15.0, low=0, high=1000),
        history_turns=int(read.number("PAM_HISTORY_TURNS", 10, low=0, high=100)),
        conversation_idle_minutes=_idle_minutes(read),
        resume_window_seconds=_resume_window(read),
        speech=load_speech_settings(env),
    )


def load_model_settings(env: Mapping[str, str] | None = None) -> ModelSettings:
    """``OPENAI_*`` first (when ``OPENAI_API_KEY`` is set), then each ``PAM_MODELS`` entry; none: offline."""
    read = _Reader(os.environ if env is None else env)
    timeout = read.number("PAM_OPENAI_TIMEOUT_SECONDS", 20.0, low=0.1)
    endpoints = [_endpoint(read, spec, timeout) for spec in _model_specs(read)]
    key, base_url = read.env.get("OPENAI_API_KEY"), read.optional_url("OPENAI_BASE_URL", ("http", "https"))
    if key:
        model = read.text("OPENAI_MODEL", "gpt-4o-mini")
        endpoints.insert(0, ModelEndpoint(_endpoint_name(base_url, model), base_url, model, key, timeout))
    names = [e.name for e in endpoints]
    if len(set(names)) < len(names):
        raise ConfigError('PAM_MODELS: two endpoints have the same name; give one a "name"')
    return ModelSettings(
        endpoints=tuple(endpoints),
        retries=int(read.number("PAM_OPENAI_MAX_RETRIES", 1, low=0, high=10)),
        max_completion_tokens=int(read.number("PAM_MAX_COMPLETION_TOKENS", 1024, low=1, high=1_000_000)),
        answer_deadline_seconds=read.number("PAM_ANSWER_DEADLINE_SECONDS", 60.0, low=0.1),
        breaker_failures=int(read.number("PAM_BREAKER_FAILURES", 3, low=1, high=100)),
        breaker_cooldown_seconds=read.number("PAM_BREAKER_COOLDOWN_SECONDS", 30.0, low=0.1, high=3600),
    )


def load_speech_settings(env: Mapping[str, str] | None = None) -> SpeechSettings:
    """Speech is OpenAI's (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``), whatever answers chats."""
    read = _Reader(os.environ if env is None else env)
    return SpeechSettings(
        per_ip_per_minute=int(read.number("PAM_VOICE_PER_IP_PER_MINUTE", 30, low=1)),
        per_user_per_minute=int(read.number("PAM_VOICE_PER_USER_PER_MINUTE", 30, low=1)),
        max_chars=int(read.number("PAM_VOICE_MAX_CHARS", 1500, low=1, high=4096)),
        timeout_seconds=read.number("PAM_VOICE_TIMEOUT_SECONDS", 30.0, low=0.1),
        model=read.text("PAM_VOICE_MODEL", "gpt-4o-mini-tts"),
        voice=read.choice("PAM_VOICE", SPEECH_VOICES, "nova"),
        cache_seconds=read.number("PAM_VOICE_CACHE_SECONDS", 3600.0, low=1),
        cache_bytes=int(read.number("PAM_VOICE_CACHE_BYTES", 64 * 1024 * 1024, low=1024 * 1024)),
        base_url=read.optional_url("OPENAI_BASE_URL", ("http", "https")),
        api_key=read.env.get("OPENAI_API_KEY", "").strip(),
    )


def _model_specs(read: _Reader) -> list[_EndpointSpec]:
    raw = read.env.get("PAM_MODELS", "").strip()
    if not raw:
        return []
    try:
        return msgspec.json.decode(raw, type=list[_EndpointSpec])
    except msgspec.DecodeError as exc:
        raise ConfigError(f'PAM_MODELS must be a JSON list of {{"base_url", "model", ...}}: {exc}') from None


def _endpoint(read: _Reader, spec: _EndpointSpec, timeout: float) -> ModelEndpoint:
    url = _Reader({"PAM_MODELS": spec.base_url}).optional_url("PAM_MODELS", ("http", "https"))
    if url is None or "," in url:
        raise ConfigError(f"PAM_MODELS: base_url must be one http:// or https:// URL, got {spec.base_url!r}")
    key = "not-needed"  # local servers (Ollama, llama.cpp, vLLM) take no key, the SDK wants one
    if spec.api_key_env is not None:
        key = read.env.get(spec.api_key_env, "")
        if not key:
            raise ConfigError(f"PAM_MODELS names {spec.api_key_env} for {spec.model}'s key, and it is not set")
    if spec.timeout_seconds is not None and spec.timeout_seconds <= 0:
        raise ConfigError(f"PAM_MODELS: timeout_seconds of {spec.model} must be above 0")
    name = spec.name or _endpoint_name(url, spec.model)
    return ModelEndpoint(name, url, spec.model, key, spec.timeout_seconds or timeout)


def _endpoint_name(base_url: str | None, model: str) -> str:
    host = urlparse(base_url).netloc if base_url else "api.openai.com"
    return f"{host}/{model}"


def load_persistence_settings(env: Mapping[str, str] | None = None) -> PersistenceSettings:
    """Read and check persistence's settings; raises ConfigError on the first bad one."""
    read = _Reader(os.environ if env is None else env)
    database_url = read.optional_url("DATABASE_URL", ("postgres", "postgresql"))
    if database_url is None:
        raise ConfigError("DATABASE_URL is required by pam-persistence")
    return PersistenceSettings(
        **_common(read),
        database_url=database_url,
        persist_batch_size=int(read.number("PAM_PERSIST_BATCH_SIZE", 500, low=1, high=10_000)),
        persist_flush_ms=read.number("PAM_PERSIST_FLUSH_MS", 50.0, low=1, high=60_000),
        conversation_idle_minutes=_idle_minutes(read),
        activity_resolution_seconds=read.number("PAM_ACTIVITY_RESOLUTION_SECONDS", 60.0, low=0, high=3600),
        db_pool_size=int(read.number("PAM_DB_POOL_SIZE", 5, low=2, high=100)),
        retention=load_retention_settings(read.env),
    )


def load_retention_settings(env: Mapping[str, str] | None = None) -> RetentionSettings:
    """Days at most a century (so a cutoff is always a date); an erasure fence lasts a day at least."""
    read = _Reader(os.environ if env is None else env)
    return RetentionSettings(
        days=_whole(read, "PAM_RETENTION_DAYS", 365, low=0, high=36_500),
        erasure_fence_days=_whole(read, "PAM_ERASURE_FENCE_DAYS", 14, low=1, high=36_500),
        interval_seconds=read.number("PAM_RETENTION_INTERVAL_SECONDS", 3600.0, low=0.1, high=7 * 86400),
        batch=_whole(read, "PAM_RETENTION_BATCH", 1000, low=1, high=100_000),
    )


def _whole(read: _Reader, name: str, default: int, low: int, high: int) -> int:
    """A count refused unless whole: ``PAM_RETENTION_DAYS=0.5`` cut to 0 would mean keep forever."""
    value = read.number(name, default, low=low, high=high)
    if value != int(value):
        raise ConfigError(f"{name} must be a whole number, got {read.env[name].strip()!r}")
    return int(value)


def _environment(read: _Reader) -> str:
    return read.choice("ENVIRONMENT", ("development", "production"), "development")


def _common(read: _Reader) -> dict[str, Any]:
    return {
        "nats": _nats(read),
        "nats_namespace": read.subject_token("PAM_NATS_NAMESPACE", "pam"),
        "environment": _environment(read),
        "instance_id": read.subject_token("PAM_INSTANCE_ID", _default_instance_id()),
        "log_level": read.choice("PAM_LOG_LEVEL", ("debug", "info", "warning", "error"), "info"),
        "metrics_port": int(read.number("PAM_METRICS_PORT", 9464, low=0, high=65535)),
        "metrics_host": read.text("PAM_METRICS_HOST", "127.0.0.1"),
        "privacy_default": Privacy(
            store_conversations=read.flag("PAM_DEFAULT_STORE_CONVERSATIONS", True),
            analytics=read.flag("PAM_DEFAULT_ANALYTICS", True),
        ),
    }


def _nats(read: _Reader) -> NatsSettings:
    url = read.url("NATS_URL", "nats://127.0.0.1:4222", ("nats", "tls", "nats+tls", "ws", "wss"))
    if len({urlparse(part.strip()).scheme.startswith("ws") for part in url.split(",")}) > 1:
        raise ConfigError("NATS_URL may not mix WebSocket (ws://, wss://) and NATS (nats://, tls://) servers")
    cert_file, key_file = read.file("NATS_CERT_FILE"), read.file("NATS_KEY_FILE")
    if bool(cert_file) != bool(key_file):
        raise ConfigError("NATS_CERT_FILE and NATS_KEY_FILE go together: a client certificate and its key")
    return NatsSettings(
        url=url,
        **_nats_sign_in(read),
        ca_file=read.file("NATS_CA_FILE"),
        cert_file=cert_file,
        key_file=key_file,
        replicas=_replicas(read),
    )


def _nats_sign_in(read: _Reader) -> dict[str, str | None]:
    """One way to sign in to NATS at most: a creds file, a user and password, or a token."""
    given = {
        "creds_file": read.file("NATS_CREDS"),
        "user": read.env.get("NATS_USER") or None,
        "password": read.env.get("NATS_PASSWORD") or None,
        "token": read.env.get("NATS_TOKEN") or None,
    }
    if bool(given["user"]) != bool(given["password"]):
        raise ConfigError("NATS_USER and NATS_PASSWORD go together; set both or neither")
    variables = {"NATS_CREDS": "creds_file", "NATS_USER": "user", "NATS_TOKEN": "token"}
    ways = [name for name, key in variables.items() if given[key]]
    if len(ways) > 1:
        raise ConfigError(f"{ways[0]} and {ways[1]} are two ways to sign in to NATS; set only one")
    return given


def _replicas(read: _Reader) -> int | None:
    if not read.env.get("PAM_JETSTREAM_REPLICAS", "").strip():
        return None
    return int(read.number("PAM_JETSTREAM_REPLICAS", 1, low=1, high=5))


def _journal(read: _Reader) -> JournalSettings:
    return JournalSettings(
        max_pending=int(read.number("PAM_JOURNAL_MAX_PENDING", 5000, low=1)),
        spool_dir=read.text("PAM_JOURNAL_SPOOL_DIR", ".pam/spool"),
    )


def _budget(read: _Reader) -> BudgetSettings:
    return BudgetSettings(
        tokens_per_day=int(read.number("PAM_USER_TOKENS_PER_DAY", 0, low=0)),
        tokens_per_month=int(read.number("PAM_USER_TOKENS_PER_MONTH", 0, low=0)),
    )


def _resume_window(read: _Reader) -> float:
    return read.number("PAM_RESUME_WINDOW_SECONDS", 900.0, low=1)


def _idle_minutes(read: _Reader) -> float:
    """Persistence splits conversations at this idle gap; orchestrators keep recent turns as long."""
    return read.number("PAM_CONVERSATION_IDLE_MINUTES", 30.0, low=0.01)


def _default_instance_id() -> str:
    host = socket.gethostname().split(".")[0].replace("_", "-") or "pam"
    return f"{host}-{uuid.uuid4().hex[:8]}"


class _Reader:
    """Reads one variable at a time and explains what is wrong with it."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str, default: str) -> str:
        value = self.env.get(name, "").strip()
        return value or default

    def subject_token(self, name: str, default: str) -> str:
        value = self.text(name, default)
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
            raise ConfigError(f"{name} may hold only letters, digits, '-' and '_' (at most 64)")
        return value

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.text(name, default).lower()
        if value not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self.env.get(name, "").strip().lower()
        if not value:
            return default
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, got {value!r}")

    def number(self, name: str, default: float, low: float = 0, high: float | None = None) -> float:
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
            raise ConfigError(f"{name} must be {bounds}, got {raw!r}")
        return value

    def origins(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        """Comma-separated origins (``https://wheelsandwins.com``), or ``*`` for any."""
        raw = self.env.get(name, "").strip()
        if not raw:
            return default
        found = tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())
        for part in (p for p in found if p != "*"):
            parsed = urlparse(part)
            if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.path:
                raise ConfigError(f"{name} must list origins like https://example.com, got {part!r}")
        return found

    def networks(self, name: str) -> tuple[str, ...]:
        """Comma-separated IP addresses or networks (``10.0.0.0/8``), or ``*`` for any."""
        found = tuple(part.strip() for part in self.env.get(name, "").split(",") if part.strip())
        for part in (p for p in found if p != "*"):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ConfigError(f"{name} must list IP addresses or networks, got {part!r}") from None
        return found

    def file(self, name: str) -> str | None:
        """A path that must name a readable file, or None when unset."""
        path = self.env.get(name, "").strip()
        if path and not os.access(path, os.R_OK):
            raise ConfigError(f"{name} names no readable file: {path}")
        return path or None

    def url(self, name: str, default: str, schemes: tuple[str, ...]) -> str:
        value = self.optional_url(name, schemes)
        return value or default

    def optional_url(self, name: str, schemes: tuple[str, ...]) -> str | None:
        raw = self.env.get(name, "").strip()
        if not raw:
            return None
        for part in raw.split(","):
            parsed = urlparse(part.strip())
            if parsed.scheme not in schemes or not (parsed.netloc or parsed.path):
                wanted = " or ".join(f"{s}://" for s in schemes)
                raise ConfigError(f"{name} must be a URL starting with {wanted}")
        return raw

    def secret(self, name: str, default: str | None) -> str:
        value = self.env.get(name, "")
        if not value:
            if default is None:
                raise ConfigError(f"{name} is required when ENVIRONMENT=production (unless SUPABASE_URL is set)")
            return default
        if len(value) < 16:
            raise ConfigError(f"{name} must be at least 16 characters long")
        return value
