"""NATS settings: a list of servers, one way to sign in, TLS files that exist, a replica count."""

from __future__ import annotations

import pytest
from pam_shared.settings import ConfigError, load_settings


def test_nats_url_takes_a_comma_separated_list():
    nats = load_settings({"NATS_URL": "nats://a:4222, nats://b:4222 ,tls://c:4222"}).nats
    assert nats.servers == ["nats://a:4222", "nats://b:4222", "tls://c:4222"]
    assert load_settings({}).nats.servers == ["nats://127.0.0.1:4222"] and load_settings({}).nats.replicas is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NATS_URL": "nats://a:4222,http://b:4222"}, "^NATS_URL must be a URL"),
        ({"NATS_URL": "nats://a:4222,ws://b:8080"}, "^NATS_URL may not mix"),
        ({"NATS_CREDS": "/nonexistent/pam.creds"}, "^NATS_CREDS names no readable file"),
        ({"NATS_CA_FILE": "/nonexistent/ca.pem"}, "^NATS_CA_FILE names no readable file"),
        ({"NATS_USER": "pam"}, "^NATS_USER and NATS_PASSWORD go together"),
        ({"NATS_USER": "pam", "NATS_PASSWORD": "pw", "NATS_TOKEN": "t"}, "^NATS_USER and NATS_TOKEN are two ways"),
        ({"PAM_JETSTREAM_REPLICAS": "0"}, "^PAM_JETSTREAM_REPLICAS must be between 1 and 5"),
        ({"PAM_JETSTREAM_REPLICAS": "three"}, "^PAM_JETSTREAM_REPLICAS must be a number"),
    ],
)
def test_a_bad_nats_setting_names_its_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_a_client_certificate_needs_its_key(tmp_path):
    cert = tmp_path / "client.pem"
    cert.write_text("certificate")
    with pytest.raises(ConfigError, match="^NATS_CERT_FILE and NATS_KEY_FILE go together"):
        load_settings({"NATS_CERT_FILE": str(cert)})


def test_secrets_stay_out_of_the_settings_repr():
    settings = load_settings({"NATS_USER": "pam", "NATS_PASSWORD": "hunter2", "PAM_JETSTREAM_REPLICAS": "3"})
    assert settings.nats.replicas == 3 and "hunter2" not in repr(settings)
    assert "t0ken" not in repr(load_settings({"NATS_TOKEN": "t0ken"}))
