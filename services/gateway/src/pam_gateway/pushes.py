"""Frames for a user: ``<ns>.user.<user>`` reaches every socket they have open, on any gateway.

Every gateway subscribes to the wildcard and delivers to the sockets it holds, so a
background job needs to know nothing about gateways.  Orchestrators also copy an
answer's lasting frames here; which sockets take them is ``inbox.Inbox``'s rule.  A
payload that is not a valid server frame is dropped and logged, never sent to a browser.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pam_shared import logs
from pam_shared.protocol import TimerExpired, server_decoder
from pam_shared.subjects import CHAT_ID_HEADER, EVENT_ID_HEADER, Subjects
from pam_shared.timers import TimerStore

from pam_gateway.inbox import Inbox

log = logging.getLogger("pam.gateway.pushes")


class Pushes:
    def __init__(
        self, nc: Client, names: Subjects, inboxes_of: Callable[[str], Iterable[Inbox]], timers: TimerStore
    ) -> None:
        self.nc = nc
        self.timers = timers
        self.names = names
        self.inboxes_of = inboxes_of
        self._prefix_len = len(names.user_wildcard) - 1  # "<ns>.user."
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(self.names.user_wildcard, cb=self._on_push)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()

    async def _on_push(self, msg: Msg) -> None:
        inboxes = list(self.inboxes_of(msg.subject[self._prefix_len :]))
        if not inboxes:
            return
        try:
            frame = server_decoder.decode(msg.data)
        except msgspec.DecodeError as exc:
            log.warning("dropped a push that is not a server frame: %s", exc, extra={"marker": logs.ERROR})
            return
        headers = msg.headers or {}
        event_id, chat_id = headers.get(EVENT_ID_HEADER), headers.get(CHAT_ID_HEADER)
        for inbox in inboxes:
            inbox.deliver_copy(msg.data, event_id, chat_id)
        if isinstance(frame, TimerExpired):
            try:
                await self.timers.shown(inboxes[0].user_id, frame.timer_id)
            except Exception as exc:  # then it is delivered once more on the next connect: no loss
                log.warning("timer %s not marked shown: %s", frame.timer_id, exc)
