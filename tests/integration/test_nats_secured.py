"""Joining a secured NATS: TLS with a private CA and a client certificate, and a user and password."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from nats.aio.client import Client
from nats.errors import Error as NatsError
from pam_shared import bus
from pam_shared.settings import load_settings
from support.cluster import NATS_SERVER
from support.processes import ServiceProcess, free_port


def issue(directory: Path, name: str, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None):
    """A key and a certificate for 127.0.0.1, signed by ``ca`` (None: a CA of its own)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca[0].subject if ca else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca is None, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
    )
    cert = builder.sign(ca[1] if ca else key, hashes.SHA256())
    (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (directory / f"{name}-key.pem").write_bytes(pem)
    return cert, key


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A nats-server that wants TLS (client certificates too) and a password; its URL and the certificates."""
    files = Path(tmp_path_factory.mktemp("tls"))
    ca = issue(files, "ca", None)
    issue(files, "server", ca)
    issue(files, "client", ca)
    port = free_port()
    argv = [
        str(NATS_SERVER), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(files / "store"),
        "--tls", "--tlscert", str(files / "server.pem"), "--tlskey", str(files / "server-key.pem"),
        "--tlsverify", "--tlscacert", str(files / "ca.pem"), "--user", "pam", "--pass", "s3cret-pass",
    ]  # fmt: skip
    server = ServiceProcess("nats-secured", argv, {}, files).start()
    server.wait_for("Server is ready")
    try:
        yield f"tls://127.0.0.1:{port}", files
    finally:
        server.stop()


def env(url: str, files: Path, **extra: str) -> dict[str, str]:
    return {
        "NATS_URL": url,
        "NATS_CA_FILE": str(files / "ca.pem"),
        "NATS_CERT_FILE": str(files / "client.pem"),
        "NATS_KEY_FILE": str(files / "client-key.pem"),
        "NATS_USER": "pam",
        "NATS_PASSWORD": "s3cret-pass",
        **extra,
    }


@pytest.mark.parametrize("scheme", ["tls", "nats+tls"])
async def test_a_service_joins_a_secured_nats_with_tls_and_a_password(secured, scheme):
    url, files = secured
    nc = await bus.connect(load_settings(env(url.replace("tls", scheme, 1), files)).nats, "pam-test")
    try:
        await nc.jetstream().account_info()  # signed in, JetStream answers
    finally:
        await nc.close()


@pytest.mark.parametrize(
    "wrong",
    [{"NATS_PASSWORD": "not-the-password"}, {"NATS_CERT_FILE": "", "NATS_KEY_FILE": ""}, {"NATS_CA_FILE": ""}],
)
async def test_a_wrong_password_missing_client_certificate_or_unknown_ca_is_refused(secured, wrong):
    url, files = secured
    options = bus.connect_options(load_settings(env(url, files, **wrong)).nats)
    with pytest.raises((NatsError, OSError)):
        await Client().connect(**options, allow_reconnect=False, connect_timeout=2)
