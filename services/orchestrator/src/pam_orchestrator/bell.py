"""Timers going off: what the server publishes at a timer's time becomes a ``timer_expired`` push.

Every orchestrator pulls from one durable consumer on ``<ns>.timers.fired.>``
(``pam_shared.timers``), so each timer rings once whichever orchestrators run, and one that
goes off while none runs rings when one starts.  A message is acked only after its push is
kept; if the orchestrator dies in between, it is delivered again, and the push, keyed by the
timer, is kept once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pam_shared import delivery, jetstream, logs
from pam_shared.background import Tasks, survive
from pam_shared.protocol import encoder
from pam_shared.subjects import Subjects
from pam_shared.timers import TimerStore, expired_frame, timer_decoder

log = logging.getLogger("pam.orchestrator.bell")

CONSUMER = "bell"
BATCH = 16
FETCH_SECONDS = 5.0
TROUBLE_PAUSE_SECONDS = 1.0
"""After JetStream could not answer a fetch (an election, a node going down): ask again after this."""


class Bell:
    def __init__(self, nc: Client, names: Subjects, store: TimerStore, tasks: Tasks) -> None:
        self.nc = nc
        self.names = names
        self.store = store
        self.tasks = tasks

    async def start(self) -> None:
        js = self.nc.jetstream()
        config = ConsumerConfig(
            durable_name=CONSUMER,
            filter_subject=self.store.fired_wildcard,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=30,
        )
        await jetstream.ensure_consumer(js, self.store.stream, config)
        sub = await js.pull_subscribe_bind(CONSUMER, self.store.stream)
        self.tasks.start("timer-bell", self._ring(sub))

    async def _ring(self, sub: JetStreamContext.PullSubscription) -> None:
        try:
            while True:
                await self._ring_once(sub)
        finally:  # a pull left pending would hold up draining the connection until its timeout
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _ring_once(self, sub: JetStreamContext.PullSubscription) -> None:
        try:
            msgs = await sub.fetch(BATCH, timeout=FETCH_SECONDS)
        except TimeoutError:
            return
        except Exception as exc:  # JetStream busy or moving: the timers wait in the stream
            log.warning("fetching timers that went off failed: %s", exc, extra={"marker": logs.RECONNECT})
            await asyncio.sleep(TROUBLE_PAUSE_SECONDS)
            return
        for msg in msgs:
            with survive("timer-bell", msg.subject):
                await self._rang(msg)

    async def _rang(self, msg: Msg) -> None:
        try:
            timer = timer_decoder.decode(msg.data)
        except msgspec.DecodeError as exc:
            log.error("dropped a timer that does not decode: %s", exc, extra={"marker": logs.ERROR})
            await msg.term()
            return
        frame = encoder.encode(expired_frame(timer))
        await delivery.push(self.nc, self.names, timer.user_id, frame, once=f"timer-{timer.timer_id}")
        await msg.ack()
        log.info("%s %s went off", timer.kind, timer.timer_id, extra={"marker": logs.OK, "user_id": timer.user_id})
