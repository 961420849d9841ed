"""Frames for a user: ``<ns>.user.<user>`` reaches every socket they have open, on any gateway.

Every gateway subscribes to the wildcard and delivers to the sockets it holds, so a
background job needs to know nothing about gateways.  Orchestrators also copy the end
of every answer here, for sockets that resumed after losing the one that asked.  A
payload that is not a valid server frame is dropped and logged, never sent to a browser.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pam_shared import logs
from pam_shared.protocol import server_decoder
from pam_shared.subjects import EVENT_ID_HEADER, REQUEST_ID_HEADER, Subjects

if TYPE_CHECKING:
    from pam_gateway.session import Session

log = logging.getLogger("pam.gateway.pushes")


class Pushes:
    def __init__(self, nc: Client, names: Subjects, sessions_of: Callable[[str], Iterable[Session]]) -> None:
        self.nc = nc
        self.names = names
        self.sessions_of = sessions_of
        self._prefix_len = len(names.user_wildcard) - 1  # "<ns>.user."
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(self.names.user_wildcard, cb=self._on_push)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()

    async def _on_push(self, msg: Msg) -> None:
        sessions = list(self.sessions_of(msg.subject[self._prefix_len :]))
        if not sessions:
            return
        try:
            server_decoder.decode(msg.data)
        except msgspec.DecodeError as exc:
            log.warning("dropped a push that is not a server frame: %s", exc, extra={"marker": logs.ERROR})
            return
        headers = msg.headers or {}
        event_id, chat_id = headers.get(EVENT_ID_HEADER), headers.get(REQUEST_ID_HEADER)
        for session in sessions:
            session.deliver_copy(msg.data, event_id, chat_id)
