"""How many copies JetStream keeps of every stream, consumer and bucket the project makes.

One setting decides, ``PAM_JETSTREAM_REPLICAS``; unset, it is 3 on a cluster of three or
more JetStream servers, else 1.  The cluster's size is what its servers say when asked
(``$SYS.REQ.SERVER.PING.CONNZ``, which every account may ask), or the replicas one of our
streams already has, whichever is more: a stream of 3 was placed on at least 3 servers,
even if one of them is down while this process starts.  Asking for more replicas than
that is a configuration error at start, not a stream that can never be placed.

Everything is made with that count, and an existing stream, bucket or consumer is moved
to it (JetStream copies the messages to new replicas; none are lost).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, KeyValueConfig, PubAck, StreamConfig, StreamInfo
from nats.js.errors import BadRequestError, NoStreamResponseError, NotFoundError, ServiceUnavailableError
from nats.js.kv import KeyValue

from pam_shared import bus, logs
from pam_shared.settings import ConfigError
from pam_shared.subjects import Subjects

log = logging.getLogger("pam.jetstream")

CLUSTERED = 3
"""The default on a cluster big enough: one server down leaves a quorum."""
SERVERS_SUBJECT = "$SYS.REQ.SERVER.PING.CONNZ"
SERVERS_WINDOW_SECONDS = 0.25
SERVERS_ATTEMPTS = 4
PUBLISH_TIMEOUT_SECONDS = 2.0
ELECTION_SECONDS = 5.0
"""How long a publish keeps asking while its stream elects a new leader (a few seconds after
a leader dies); nats-py's own publish timeout, so a longer outage delays no answer more."""
RETRY_PAUSE_SECONDS = 0.25
PLACEMENT_SECONDS = 30.0
LEADER_POLL_SECONDS = 0.05
LEADERLESS = (NatsTimeout, NoStreamResponseError, ServiceUnavailableError)
"""What a publish meets while a stream has no leader: silence, no responders, or a 503.
JetStream's API meets the same while the cluster elects or a node rejoins."""
NO_PEERS = 10005
"""JetStream's "no suitable peers for placement": too few servers are up for the replicas."""
NAME_IN_USE = 10058
"""JetStream's "stream name already in use with a different configuration"."""

T = TypeVar("T")


async def replicas(nc: Client, names: Subjects, wanted: int | None) -> int:
    """The replica count for what this process makes; ConfigError when ``wanted`` is more
    than the cluster has JetStream servers."""
    answering = await jetstream_servers(nc)
    known = max(answering, await _largest_stream(nc.jetstream(), names))
    if wanted is None:
        count = CLUSTERED if known >= CLUSTERED else 1
    elif wanted > known and answering:
        raise ConfigError(
            f"PAM_JETSTREAM_REPLICAS is {wanted}, but NATS has {known} JetStream server(s): "
            f"set it to at most {known}, or unset it"
        )
    else:
        count = wanted
    log.info("JetStream: %d server(s) known, keeping %d replica(s)", known, count, extra={"marker": logs.OK})
    return count


async def jetstream_servers(nc: Client) -> int:
    """How many JetStream servers answer (0: none says, e.g. where ``$SYS`` is not imported).

    Asked again while fewer answer than the servers the client knows of: replies to a new
    connection can miss their way back until the cluster has learnt of its inbox."""
    known = len({server.netloc for server in nc.servers})
    answered: dict[str, bool] = {}
    for _ in range(SERVERS_ATTEMPTS):
        for reply in await bus.gather_replies(nc, SERVERS_SUBJECT, SERVERS_WINDOW_SECONDS, b'{"limit": 1}'):
            server = json.loads(reply.data).get("server") or {}
            answered[str(server.get("name"))] = bool(server.get("jetstream"))
        if len(answered) >= known:
            break
    return sum(answered.values())


async def _largest_stream(js: JetStreamContext, names: Subjects) -> int:
    found = 0
    for stream in (names.events_stream, names.frames_stream, bucket_stream(names.rate_bucket)):
        try:
            info = await _stream_info(js, stream, time.monotonic() + PLACEMENT_SECONDS)
            found = max(found, info.config.num_replicas or 1)
        except NotFoundError:
            continue
    return found


def bucket_stream(bucket: str) -> str:
    return f"KV_{bucket}"


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create the stream, or bring an existing one to ``config`` (its replicas included);
    returns once it has a leader, so what comes next (a consumer, a publish) finds it."""
    assert config.name is not None
    name = config.name

    async def make() -> None:
        try:
            await js.add_stream(config)
        except BadRequestError as error:
            if error.err_code != NAME_IN_USE:
                raise
            await js.update_stream(config)

    deadline = time.monotonic() + PLACEMENT_SECONDS
    await _answered(make, f"making stream {name}", deadline)
    await _led(js, name, deadline)


async def ensure_bucket(js: JetStreamContext, config: KeyValueConfig) -> KeyValue:
    """Create the key-value bucket, or move an existing one to ``config.replicas``."""

    async def make() -> KeyValue:
        try:
            return await js.create_key_value(config)
        except BadRequestError as error:
            if error.err_code != NAME_IN_USE:
                raise
            stream = (await js.stream_info(bucket_stream(config.bucket))).config
            stream.num_replicas = config.replicas
            await js.update_stream(stream)
            return await js.key_value(config.bucket)

    deadline = time.monotonic() + PLACEMENT_SECONDS
    bucket = await _answered(make, f"making bucket {config.bucket}", deadline)
    await _led(js, bucket_stream(config.bucket), deadline)
    return bucket


async def ensure_consumer(js: JetStreamContext, stream: str, config: ConsumerConfig) -> None:
    """Create the durable consumer, or bring it to ``config`` (JetStream updates it in place)."""
    deadline = time.monotonic() + PLACEMENT_SECONDS
    await _answered(lambda: js.add_consumer(stream, config), f"making consumer {config.durable_name}", deadline)


async def _answered(call: Callable[[], Awaitable[T]], what: str, deadline: float) -> T:
    """``call()``, asked again while JetStream cannot answer or place it yet, until ``deadline``:
    a process starting while the cluster elects a leader or has nodes down waits for them."""
    said = False
    while True:
        try:
            return await call()
        except NatsError as error:
            if not _passing(error) or time.monotonic() + RETRY_PAUSE_SECONDS >= deadline:
                raise
            if not said:
                said = True
                log.warning(
                    "JetStream cannot answer %s yet (%s); asking again for up to %.0f s",
                    what,
                    error,
                    deadline - time.monotonic(),
                    extra={"marker": logs.RECONNECT},
                )
            await asyncio.sleep(RETRY_PAUSE_SECONDS)


def _passing(error: NatsError) -> bool:
    """An error that goes away by itself: silence or a 503 (an election), or too few servers
    up for the replicas (a node restarting)."""
    return isinstance(error, LEADERLESS) or (isinstance(error, BadRequestError) and error.err_code == NO_PEERS)


async def _led(js: JetStreamContext, stream: str, deadline: float) -> None:
    """Wait (until ``deadline``) until ``stream`` has a leader and all its peers: a new stream
    elects one, a rescaled one adds peers (until then a consumer of as many is refused)."""
    while not _placed(info := await _stream_info(js, stream, deadline)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"JetStream stream {stream} is not placed after {PLACEMENT_SECONDS:g} s: {info.cluster}")
        await asyncio.sleep(LEADER_POLL_SECONDS)


async def _stream_info(js: JetStreamContext, stream: str, deadline: float) -> StreamInfo:
    return await _answered(lambda: js.stream_info(stream), f"about stream {stream}", deadline)


def _placed(info: StreamInfo) -> bool:
    cluster = info.cluster
    if cluster is None:  # a single server
        return True
    return cluster.leader is not None and 1 + len(cluster.replicas or []) >= (info.config.num_replicas or 1)


async def publish(js: JetStreamContext, subject: str, data: bytes, headers: dict[str, str] | None = None) -> PubAck:
    """Publish and wait for the stream's ack, asking again while it has no leader, for up to
    ``ELECTION_SECONDS`` in all; one ``Nats-Msg-Id`` for every attempt, so it is stored once."""
    headers = {"Nats-Msg-Id": uuid.uuid4().hex, **(headers or {})}
    deadline = time.monotonic() + ELECTION_SECONDS
    while True:
        try:
            timeout = min(PUBLISH_TIMEOUT_SECONDS, deadline - time.monotonic())
            return await js.publish(subject, data, timeout, headers=headers)
        except LEADERLESS:
            if time.monotonic() + RETRY_PAUSE_SECONDS >= deadline:
                raise
        await asyncio.sleep(RETRY_PAUSE_SECONDS)
