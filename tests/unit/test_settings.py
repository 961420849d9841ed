import pytest
from pam_shared.settings import (
    ConfigError,
    load_gateway_settings,
    load_orchestrator_settings,
    load_persistence_settings,
    load_retention_settings,
)

DATABASE = {"DATABASE_URL": "postgresql://pam@db/pam"}


def load_any(env: dict[str, str]) -> None:
    """Every service's loader: a bad value is refused by whichever service reads it."""
    load_gateway_settings(env)
    load_orchestrator_settings(env)
    load_persistence_settings({**DATABASE, **env})


def test_defaults_suit_development():
    settings = load_gateway_settings({})
    assert settings.environment == "development" and settings.auth.demo_mode is True
    assert settings.nats_url == "nats://127.0.0.1:4222" and settings.gateway_port == 8000
    assert settings.subjects.chat_request == "pam.chat.request"


def test_production_turns_demo_off_and_requires_a_secret():
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        load_gateway_settings({"ENVIRONMENT": "production"})
    settings = load_gateway_settings({"ENVIRONMENT": "production", "JWT_SECRET": "s" * 32})
    assert settings.auth.demo_mode is False


def test_production_with_supabase_keys_may_go_without_a_secret():
    supabase = {"ENVIRONMENT": "production", "SUPABASE_URL": "https://ref.supabase.co"}
    auth = load_gateway_settings(supabase).auth
    assert auth.jwt_secret is None and auth.jwks_url == "https://ref.supabase.co/auth/v1/.well-known/jwks.json"
    assert load_gateway_settings({**supabase, "JWT_SECRET": "s" * 32}).auth.jwt_secret == "s" * 32
    with pytest.raises(ConfigError, match="JWT_SECRET must be at least 16"):
        load_gateway_settings({**supabase, "JWT_SECRET": "short"})


def test_a_service_never_requires_a_variable_it_does_not_use():
    production = {"ENVIRONMENT": "production"}
    assert load_orchestrator_settings(production).is_production
    assert load_persistence_settings({**production, **DATABASE}).is_production
    with pytest.raises(ConfigError, match="^DATABASE_URL"):
        load_persistence_settings(production)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"PAM_GATEWAY_PORT": "eighty"}, "PAM_GATEWAY_PORT"),
        ({"PAM_GATEWAY_PORT": "70000"}, "PAM_GATEWAY_PORT"),
        ({"ENVIRONMENT": "staging"}, "ENVIRONMENT"),
        ({"PAM_DEMO_MODE": "maybe"}, "PAM_DEMO_MODE"),
        ({"NATS_URL": "http://localhost:4222"}, "NATS_URL"),
        ({"DATABASE_URL": "mysql://db/x"}, "DATABASE_URL"),
        ({"OPENAI_BASE_URL": "localhost:9000"}, "OPENAI_BASE_URL"),
        ({"JWT_SECRET": "short"}, "JWT_SECRET"),
        ({"PAM_INSTANCE_ID": "has.dots"}, "PAM_INSTANCE_ID"),
        ({"PAM_NATS_NAMESPACE": "a b"}, "PAM_NATS_NAMESPACE"),
        ({"PAM_TRUSTED_PROXIES": "10.0.0.1, proxy.local"}, "PAM_TRUSTED_PROXIES"),
        ({"PAM_MAX_COMPLETION_TOKENS": "0"}, "PAM_MAX_COMPLETION_TOKENS"),
        ({"PAM_ANSWER_DEADLINE_SECONDS": "soon"}, "PAM_ANSWER_DEADLINE_SECONDS"),
        ({"PAM_ACTIVITY_RESOLUTION_SECONDS": "-1"}, "PAM_ACTIVITY_RESOLUTION_SECONDS"),
        ({"PAM_ACTIVITY_RESOLUTION_SECONDS": "a minute"}, "PAM_ACTIVITY_RESOLUTION_SECONDS"),
    ],
)
def test_a_bad_value_names_its_variable(env, variable):
    with pytest.raises(ConfigError) as error:
        load_any(env)
    assert str(error.value).startswith(variable)


def test_stored_activity_times_are_kept_to_a_minute_unless_told_otherwise():
    assert load_persistence_settings(DATABASE).activity_resolution_seconds == 60
    exact = load_persistence_settings({**DATABASE, "PAM_ACTIVITY_RESOLUTION_SECONDS": "0"})
    assert exact.activity_resolution_seconds == 0


def test_a_database_password_is_never_echoed():
    with pytest.raises(ConfigError) as error:
        load_persistence_settings({"DATABASE_URL": "mysql://user:hunter2@db/x"})
    assert "hunter2" not in str(error.value)


def test_supabase_database_url_is_accepted_as_is():
    url = "postgresql://postgres.abc:pw@aws-0-eu-central-1.pooler.supabase.com:6543/postgres"
    assert load_persistence_settings({"DATABASE_URL": url}).database_url == url


def test_no_proxy_is_trusted_unless_named():
    assert load_gateway_settings({}).trusted_proxies == ()
    named = load_gateway_settings({"PAM_TRUSTED_PROXIES": " 10.0.0.0/8, fd00::1 ,"}).trusted_proxies
    assert named == ("10.0.0.0/8", "fd00::1")


def test_model_endpoints_are_openai_first_then_pam_models_in_order():
    env = {
        "OPENAI_API_KEY": "sk-first",
        "OPENAI_MODEL": "gpt-4o-mini",
        "GROQ_KEY": "gsk-second",
        "PAM_MODELS": '[{"base_url": "https://api.groq.com/openai/v1", "model": "llama-3.3-70b", '
        '"api_key_env": "GROQ_KEY", "timeout_seconds": 8}, '
        '{"base_url": "http://127.0.0.1:11434/v1", "model": "qwen3", "name": "ollama"}]',
    }
    models = load_orchestrator_settings(env).models
    assert [(e.name, e.model, e.timeout_seconds) for e in models.endpoints] == [
        ("api.openai.com/gpt-4o-mini", "gpt-4o-mini", 20.0),
        ("api.groq.com/llama-3.3-70b", "llama-3.3-70b", 8.0),
        ("ollama", "qwen3", 20.0),
    ]
    assert [e.api_key for e in models.endpoints][:2] == ["sk-first", "gsk-second"]
    assert "gsk-second" not in repr(models)
    assert load_orchestrator_settings({}).models.endpoints == ()


@pytest.mark.parametrize(
    ("models", "message"),
    [
        ("not json", "PAM_MODELS must be a JSON list"),
        ('[{"base_url": "https://x.example/v1"}]', "missing required field `model`"),
        ('[{"base_url": "ftp://x", "model": "m"}]', "PAM_MODELS must be a URL starting with http"),
        ('[{"base_url": "https://x.example/v1", "model": "m", "api_key_env": "NOPE_KEY"}]', "NOPE_KEY"),
        ('[{"base_url": "https://x.example/v1", "model": "m", "color": "red"}]', "unknown field `color`"),
        ('[{"base_url": "https://x.example/v1", "model": "m"}, {"base_url": "https://x.example/v1", "model": "m"}]',
         "same name"),
    ],
)  # fmt: skip
def test_a_bad_model_endpoint_stops_the_orchestrator_with_one_line(models, message):
    with pytest.raises(ConfigError, match=message):
        load_orchestrator_settings({"PAM_MODELS": models})


def test_retention_defaults_keep_a_year_and_fences_two_weeks_and_persistence_carries_them():
    retention = load_retention_settings({})
    assert (retention.days, retention.erasure_fence_days) == (365, 14)
    assert (retention.interval_seconds, retention.batch) == (3600.0, 1000)
    assert not retention.keeps_forever
    assert load_persistence_settings(DATABASE).retention == retention


def test_retention_is_read_from_its_variables_and_zero_days_keeps_forever():
    env = {
        "PAM_RETENTION_DAYS": "0",
        "PAM_ERASURE_FENCE_DAYS": "30",
        "PAM_RETENTION_INTERVAL_SECONDS": "0.5",
        "PAM_RETENTION_BATCH": "7",
    }
    retention = load_persistence_settings({**DATABASE, **env}).retention
    assert (retention.days, retention.erasure_fence_days) == (0, 30) and retention.keeps_forever
    assert (retention.interval_seconds, retention.batch) == (0.5, 7)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PAM_RETENTION_DAYS", "0.5", "whole number"),  # cut to 0 it would keep forever
        ("PAM_RETENTION_DAYS", "-1", "between 0 and 36500"),
        ("PAM_RETENTION_DAYS", "a year", "a number"),
        ("PAM_ERASURE_FENCE_DAYS", "0", "between 1 and 36500"),
        ("PAM_RETENTION_INTERVAL_SECONDS", "0", "between 0.1 and 604800"),
        ("PAM_RETENTION_BATCH", "0", "between 1 and 100000"),
        ("PAM_RETENTION_BATCH", "2.5", "whole number"),
    ],
)
def test_a_bad_retention_value_stops_persistence_naming_its_variable(variable, value, message):
    with pytest.raises(ConfigError, match=f"^{variable} must be .*{message}"):
        load_persistence_settings({**DATABASE, variable: value})
