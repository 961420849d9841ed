"""Timers that went off while the user had no socket open, delivered when one opens.

The shipped client does not resume, so a ``timer_expired`` that reached no socket (the user
was away, or every gateway restarting) waits in the timers stream (``pam_shared.timers``)
until a socket of that user opens, then goes to it, after its welcome, and is marked shown.
"""

from __future__ import annotations

import asyncio
import logging

from pam_shared.background import survive
from pam_shared.protocol import encoder
from pam_shared.timers import TimerStore, expired_frame

from pam_gateway.inbox import Inbox

log = logging.getLogger("pam.gateway.missed")


class MissedTimers:
    def __init__(self, store: TimerStore) -> None:
        self.store = store
        self._running: set[asyncio.Task[None]] = set()

    def connected(self, inbox: Inbox) -> None:
        """A socket opened: look for its user's missed timers without holding up the socket."""
        task = asyncio.create_task(self._deliver(inbox))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _deliver(self, inbox: Inbox) -> None:
        with survive("missed-timers", inbox.user_id):
            for timer in await self.store.unseen(inbox.user_id):
                inbox.deliver_copy(encoder.encode(expired_frame(timer)), None, None)
                await self.store.shown(inbox.user_id, timer.timer_id)
                log.info("missed %s %s delivered on connect", timer.kind, timer.timer_id)

    async def stop(self) -> None:
        for task in self._running:
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
