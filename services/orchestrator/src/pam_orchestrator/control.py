"""Conversation control: a chat's turn in its user's conversation, and stopping an answer.

Each chat waits for its turn (``holds``: cluster-wide, by the policy of ``PAM_DOUBLE_TEXTING``
or the chat's ``on_busy``) before it is answered, and gives it up just before its end is sent
(the end tells the gateway where, for the user's next chat).
A stop (``cancel``) reaches the orchestrator answering that chat wherever it runs: any
orchestrator takes it from the queue group and, when the chat is not its own, finds its
owner in the holds and forwards it there.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.micro.request import Request
from nats.micro.service import Service
from pam_shared import logs
from pam_shared.background import survive
from pam_shared.erasure import erasing_decoder
from pam_shared.internal import (
    CancelReply,
    CancelRequest,
    CancelStatus,
    ChatRequest,
    cancel_encoder,
    cancel_reply_decoder,
    cancel_request_decoder,
)
from pam_shared.protocol import OnBusy
from pam_shared.subjects import Subjects

from pam_orchestrator.engine import Cut
from pam_orchestrator.holds import Announce, Busy, Hold, Holds, Stop
from pam_orchestrator.inflight import Answering, Answers
from pam_orchestrator.intents import classify
from pam_orchestrator.replies import ReplyStream

log = logging.getLogger("pam.orchestrator.control")

FORWARD_TIMEOUT_SECONDS = 2.0
ERASING_WAIT_SECONDS = 8.0
"""How long an erasure waits here for the user's stopped answers to end (their last writes)."""


class Control:
    def __init__(
        self, nc: Client, names: Subjects, instance: str, policy: OnBusy, deadline: float, heartbeat: float
    ) -> None:
        self.nc, self.names, self.instance, self.policy = nc, names, instance, policy
        self.holds = Holds(nc, names, instance, deadline, heartbeat)
        self.answers = Answers()

    async def start(self, replicas: int, service: Service, queue_group: str) -> None:
        await self.holds.start(replicas)
        await self.nc.subscribe(self.names.erasing, cb=self.on_erasing)
        await service.add_endpoint(
            name="cancel", subject=self.names.chat_cancel, queue_group=queue_group, handler=self.on_cancel
        )
        await service.add_endpoint(
            name="cancel-here", subject=self.names.cancel_at(self.instance), handler=self.on_stop
        )

    async def on_erasing(self, msg: Msg) -> None:
        """A user is being erased: stop their chats here, wait until each has ended (its last
        write done, so nothing of theirs is written after the erasure's purge), and say so."""
        with survive("orchestrator-erasures", "erasure"):
            erasing = erasing_decoder.decode(msg.data)
            stopped = set() if erasing.done else self.answers.stop_all(erasing.user_id)
            if stopped:
                await asyncio.wait(stopped, timeout=ERASING_WAIT_SECONDS)
                log.info("stopped %d chats of a user being erased", len(stopped), extra={"marker": logs.OK})
            await msg.respond(self.instance.encode())

    @contextlib.asynccontextmanager
    async def turn(self, chat: ChatRequest, replies: ReplyStream) -> AsyncIterator[Answering | None]:
        """This chat's turn in its conversation; None when it ended without one (busy, dequeued)."""
        task = asyncio.current_task()
        assert task is not None
        answering = self.answers.add(chat, replies.message_id, task)
        if not chat.demo:  # owed however the wait ends (JetStream trouble, say): the turn may be ours by then
            answering.release = functools.partial(self._release, chat, replies, None)
        try:
            try:
                revision = await self._wait(chat, replies, answering)
            except _Ended:
                yield None
                return
            if revision is not None:
                answering.release = functools.partial(self._release, chat, replies, revision)
            answering.phase = "starting"
            yield answering
        finally:
            self.answers.remove(answering)
            await answering.released()

    async def _release(self, chat: ChatRequest, replies: ReplyStream, revision: int | None) -> None:
        """Give the turn up; the hold's revision rides on the end, the user's next chat's hint."""
        replies.turn = await self.holds.release(chat, replies.message_id, revision)

    async def _wait(self, chat: ChatRequest, replies: ReplyStream, answering: Answering) -> int | None:
        """The hold's revision once it is ours (None: demo chats, or no JetStream to hold it in).
        A chat stopped while it waited ends here however the wait took the stop: ``dequeued`` was
        acknowledged when the stop came, so it is never answered.  Nothing is awaited between
        this check and the caller's ``starting``: a later stop finds the chat answering."""
        try:
            revision = await self._take(chat, replies, answering)
            if answering.stopped:  # its cancellation swallowed after the wait's last look (or JetStream trouble)
                await self.holds.give_up(chat, replies.message_id)
                raise asyncio.CancelledError
        except asyncio.CancelledError:
            if not answering.stopped:
                raise
            task = asyncio.current_task()
            assert task is not None
            task.uncancel()
            await replies.finish("", classify(chat.message), Cut("stopped"))
            raise _Ended from None
        return revision

    async def _take(self, chat: ChatRequest, replies: ReplyStream, answering: Answering) -> int | None:
        if chat.demo:
            return None
        try:
            return await self.holds.take(
                chat,
                replies.message_id,
                chat.on_busy or self.policy,
                _announcer(replies, answering),
                self._interrupt(chat),
            )
        except Busy as busy:
            await replies.fail("busy", {"answering": busy.holder.message_id or busy.holder.answer_id})
            raise _Ended from None
        except (NatsError, TimeoutError) as exc:  # JetStream trouble must not stop people chatting
            log.warning("conversation hold unavailable, answering anyway: %s", exc, extra={"marker": logs.ERROR})
            return None

    def _interrupt(self, chat: ChatRequest) -> Stop:
        async def stop(holder: Hold) -> None:
            status = await self._stop_at(holder.orchestrator, CancelRequest(chat.user_id, holder.answer_id))
            log.info("interrupted chat %s for %s: %s", holder.chat_id, chat.chat_id, status)

        return stop

    async def on_cancel(self, request: Request) -> None:
        """From the queue group: stop the chat here, or where its hold says it runs."""
        cancel = cancel_request_decoder.decode(request.data)
        status = self.answers.stop(cancel.user_id, cancel.message_id)
        if status == "not_found":
            try:
                hold = await self.holds.find(cancel.user_id, cancel.message_id)
            except (NatsError, TimeoutError):
                hold = None
            if hold is not None and hold.orchestrator != self.instance:
                status = await self._stop_at(hold.orchestrator, cancel)
        await request.respond(cancel_encoder.encode(CancelReply(status)))

    async def on_stop(self, request: Request) -> None:
        """Forwarded to this instance: stop the chat if it runs here."""
        cancel = cancel_request_decoder.decode(request.data)
        status = self.answers.stop(cancel.user_id, cancel.message_id)
        await request.respond(cancel_encoder.encode(CancelReply(status)))

    async def _stop_at(self, instance: str, cancel: CancelRequest) -> CancelStatus:
        if instance == self.instance:
            return self.answers.stop(cancel.user_id, cancel.message_id)
        subject = self.names.cancel_at(instance)
        try:
            reply = await self.nc.request(subject, cancel_encoder.encode(cancel), timeout=FORWARD_TIMEOUT_SECONDS)
            return cancel_reply_decoder.decode(reply.data).status
        except (NatsError, TimeoutError, msgspec.DecodeError):  # gone: its hold expires with its deadline
            return "not_found"


class _Ended(Exception):
    """The chat was ended before its turn came (refused as busy, or stopped while queued)."""


def _announcer(replies: ReplyStream, answering: Answering) -> Announce:
    """Say the chat's place in the queue when it changes; otherwise that we are still here."""
    said = 0

    async def announce(position: int) -> None:
        nonlocal said
        answering.waited = True
        if position != said:
            said = position
            await replies.queued(position)
        else:
            await replies.progress()

    return announce
