"""Recording events into JetStream without slowing the chat path, and without losing them.

``record`` returns at once; a task owned by the journal publishes with the event's id
as ``Nats-Msg-Id`` and retries until JetStream acknowledges it (the stream's duplicate
window makes retries harmless).  ``close`` waits for what is still being published.
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import BadRequestError

from pam_shared import logs
from pam_shared.events import SUBJECT_KIND, Event, event_encoder
from pam_shared.subjects import Subjects

log = logging.getLogger("pam.journal")

DUPLICATE_WINDOW_SECONDS = 120.0
MAX_AGE_SECONDS = 7 * 24 * 3600.0
RETRY_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)
CLOSE_TIMEOUT_SECONDS = 10.0


async def ensure_stream(js: JetStreamContext, subjects: Subjects) -> None:
    """Create the events stream if it is missing (every publisher calls this at start)."""
    config = StreamConfig(
        name=subjects.events_stream,
        subjects=[subjects.events_wildcard],
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        max_age=MAX_AGE_SECONDS,
    )
    try:
        await js.add_stream(config)
    except BadRequestError:
        await js.update_stream(config)


class Journal:
    def __init__(self, nc: Client, subjects: Subjects) -> None:
        self.js = nc.jetstream()
        self.subjects = subjects
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await ensure_stream(self.js, self.subjects)

    def record(self, event: Event, headers: dict[str, str] | None = None) -> None:
        """Publish ``event`` in the background; retried until acknowledged."""
        task = asyncio.create_task(self._publish(event, headers or {}))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, event: Event, headers: dict[str, str]) -> None:
        subject = self.subjects.event(SUBJECT_KIND[type(event)])
        data = event_encoder.encode(event)
        headers = {**headers, "Nats-Msg-Id": event.event_id}
        for delay in (*RETRY_DELAYS, None):
            try:
                await self.js.publish(subject, data, headers=headers)
                return
            except Exception as exc:  # timeouts, no responders, reconnecting: all worth a retry
                if delay is None:
                    log.error("event %s not recorded: %s", event.event_id, exc, extra={"marker": logs.ERROR})
                    return
                await asyncio.sleep(delay)

    async def close(self) -> None:
        """Wait (bounded) for events still being published."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=CLOSE_TIMEOUT_SECONDS)
