"""How every service reaches NATS: the servers and sign-in it is given, and asking again after a server went away."""

from __future__ import annotations

import pytest
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from pam_shared import bus
from pam_shared.settings import load_settings


def test_every_listed_server_is_given_to_the_client():
    nats = load_settings({"NATS_URL": "nats://a:4222, nats://b:4222,nats+tls://c:4222"}).nats
    assert bus.connect_options(nats) == {"servers": ["nats://a:4222", "nats://b:4222", "tls://c:4222"]}


def test_credentials_reach_the_client(tmp_path):
    creds = tmp_path / "pam.creds"
    creds.write_text("-----BEGIN NATS USER JWT-----\n")
    assert bus.connect_options(load_settings({"NATS_CREDS": str(creds)}).nats)["user_credentials"] == str(creds)
    password = bus.connect_options(load_settings({"NATS_USER": "pam", "NATS_PASSWORD": "s3cret"}).nats)
    assert (password["user"], password["password"]) == ("pam", "s3cret")
    assert bus.connect_options(load_settings({"NATS_TOKEN": "t0ken"}).nats)["token"] == "t0ken"


class Client:
    """A NATS client whose requests fail as given, then answer; it may reconnect meanwhile."""

    def __init__(self, *failures: Exception, reconnect_during: bool = False) -> None:
        self.failures = list(failures)
        self.stats = {"reconnects": 0}
        self.is_reconnecting = False
        self.reconnect_during = reconnect_during
        self.asked = 0

    async def request(self, subject: str, payload: bytes, timeout: float) -> str:
        self.asked += 1
        if self.failures:
            if self.reconnect_during:
                self.stats["reconnects"] += 1
            raise self.failures.pop(0)
        return "answer"


async def test_no_responders_is_asked_once_more():
    client = Client(NoRespondersError())
    assert await bus.request(client, "s", b"", 1.0) == "answer" and client.asked == 2  # type: ignore[arg-type]
    with pytest.raises(NoRespondersError):
        await bus.request(Client(NoRespondersError(), NoRespondersError()), "s", b"", 1.0)  # type: ignore[arg-type]


async def test_a_timeout_is_asked_again_only_when_the_connection_moved_meanwhile():
    moved = Client(NatsTimeout(), reconnect_during=True)
    assert await bus.request(moved, "s", b"", 1.0) == "answer" and moved.asked == 2  # type: ignore[arg-type]
    stayed = Client(NatsTimeout())
    with pytest.raises(NatsTimeout):
        await bus.request(stayed, "s", b"", 1.0)  # type: ignore[arg-type]
    assert stayed.asked == 1
