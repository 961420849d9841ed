"""The orchestrator as a NATS service: one queue-group endpoint, one task per answer."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time

import msgspec
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import EndpointStats, Service
from pam_shared import __version__, bus, debugging, delivery, jetstream, logs, subjects, tracing
from pam_shared.background import Tasks
from pam_shared.budget import Budgets
from pam_shared.discovery import ServiceData
from pam_shared.errors import error_frame
from pam_shared.internal import ChatRequest, Turn, chat_request_decoder
from pam_shared.journal import Journal
from pam_shared.protocol import encoder
from pam_shared.settings import OrchestratorSettings
from pam_shared.timers import TimerStore

from pam_orchestrator import metrics, prompt
from pam_orchestrator.answer import Outcome, answer
from pam_orchestrator.bell import Bell
from pam_orchestrator.control import Control
from pam_orchestrator.effects import Effects
from pam_orchestrator.engine import Engine, Usage
from pam_orchestrator.inflight import Answering
from pam_orchestrator.llm import OpenAIEngine
from pam_orchestrator.offline import OfflineEngine
from pam_orchestrator.records import answer_events
from pam_orchestrator.replies import END, Keeper, ReplyStream
from pam_orchestrator.speech import Speech
from pam_orchestrator.spend import usage_spent
from pam_orchestrator.turns import Recall, RecentTurns

log = logging.getLogger("pam.orchestrator")


class Orchestrator:
    def __init__(self, settings: OrchestratorSettings) -> None:
        self.settings = settings
        self.names = settings.subjects
        self.offline = OfflineEngine()
        self.llm = OpenAIEngine(settings.models) if settings.models.endpoints else None
        self.inflight: set[asyncio.Task[None]] = set()
        self.nc: Client | None = None
        self.service: Service | None = None
        self.journal: Journal | None = None
        self.debug_switch: Subscription | None = None
        self.turns: RecentTurns | None = None
        self.budgets: Budgets | None = None
        self.control: Control | None = None
        self.effects: Effects | None = None
        self.speech: Speech | None = None
        self.tasks = Tasks()

    def engine_for(self, request: ChatRequest) -> Engine:
        return self.offline if request.demo or self.llm is None else self.llm

    async def start(self) -> None:
        self.nc = await bus.connect(self.settings.nats, f"pam-orchestrator-{self.settings.instance_id}")
        replicas = await jetstream.replicas(self.nc, self.names, self.settings.nats.replicas)
        self.journal = Journal.for_service(self.nc, self.settings, self.settings.journal, "orchestrator")
        await self.journal.start(replicas)
        window = self.settings.resume_window_seconds
        await delivery.ensure_frames_stream(self.nc.jetstream(), self.names, window, replicas)
        gap = self.settings.conversation_idle_minutes * 60
        self.turns = RecentTurns(self.nc, self.names, self.settings.history_turns, gap)
        await self.turns.start(replicas)
        self.budgets = Budgets(self.nc.jetstream(), self.names.budget_bucket, self.settings.budget)
        await self.budgets.start(replicas)
        self.debug_switch = await debugging.listen(self.nc, self.names)
        timer_store = TimerStore(self.nc.jetstream(), self.names)
        await timer_store.ensure(replicas)
        self.effects = Effects(self.nc, self.names, timer_store)
        await Bell(self.nc, self.names, timer_store, self.tasks).start()
        self.speech = Speech(self.nc, self.names, self.settings.speech)
        await self.speech.start(replicas)
        self.service = await add_service(
            self.nc,
            name=self.names.orchestrator_service,
            version=__version__,
            description="PAM orchestrator: intents, context, OpenAI",
            metadata={"instance": self.settings.instance_id, "engine": "openai" if self.llm else "offline"},
            stats_handler=self.stats,
        )
        await self.service.add_endpoint(
            name="chat",
            subject=self.names.chat_request,
            queue_group=self.names.orchestrator_queue,
            handler=self.on_chat,
        )
        models, instance = self.settings.models, self.settings.instance_id
        deadline, heartbeat = models.answer_deadline_seconds, self.settings.progress_interval_seconds
        self.control = Control(self.nc, self.names, instance, self.settings.double_texting, deadline, heartbeat)
        await self.control.start(replicas, self.service, self.names.orchestrator_queue)

        await self.service.add_endpoint(
            name="alerts",
            subject=self.names.alerts,
            queue_group=self.names.orchestrator_queue,
            handler=self.effects.on_alert,
        )
        await self.service.add_endpoint(
            name="speech",
            subject=self.names.speech,
            queue_group=self.names.orchestrator_queue,
            handler=self.speech.on_request,
        )
        await self.nc.flush()  # the server has our subscriptions before we say we are ready
        log.info(
            "ready: serving %s as queue group %s (engine: %s)",
            self.names.chat_request,
            self.names.orchestrator_queue,
            "openai" if self.llm else "offline",
            extra={"marker": logs.OK},
        )

    def stats(self, endpoint: EndpointStats) -> object:
        """The model endpoints' breakers, in ``$SRV.STATS`` (``/api/health/detailed`` shows them)."""
        return msgspec.to_builtins(ServiceData(models=self.llm.health() if self.llm else []))

    async def on_chat(self, request: Request) -> None:
        """Start answering and return at once, so this worker keeps taking requests."""
        try:
            chat = chat_request_decoder.decode(request.data)
        except msgspec.DecodeError as exc:  # a gateway of another version, say: end it, don't go silent
            log.error("refused a malformed chat request: %s", exc, extra={"marker": logs.ERROR})
            await request.respond(encoder.encode(error_frame("internal_error")), END)
            return
        log.debug("chat received", extra={"session_id": chat.session_id, "marker": logs.INCOMING})
        assert self.nc is not None  # requests arrive only after start()
        keeper = Keeper(self.nc, self.names, chat.user_id, chat.chat_id)
        headers = request.headers or {}
        window, restart = self.settings.chunk_window_ms / 1000, subjects.RESTART_HEADER in headers
        replies = ReplyStream(request.respond, chat.message_id, keeper, window, restart)
        context = contextvars.copy_context()
        context.run(tracing.current_traceparent.set, headers.get(tracing.TRACEPARENT))
        task = asyncio.create_task(self.serve(chat, replies), context=context)
        self.inflight.add(task)
        task.add_done_callback(self.inflight.discard)

    async def serve(self, chat: ChatRequest, replies: ReplyStream) -> None:
        """Answer one chat in its turn, then record it for persistence and debit the user's
        budget (demo sessions are neither).  Whatever follows the answer's end delays nothing
        the user sees, and ``drain`` waits for it."""
        assert self.control is not None
        async with self.control.turn(chat, replies) as answering:
            if answering is None:
                return
            if answering.waited:  # it follows the answer it waited for, in the prompt and the turns
                chat = msgspec.structs.replace(chat, received_at=time.time())
            found = await self._recall(chat, replies)
            if found is None:
                return
            chat, recall = found
            outcome = await self._answer(chat, replies, recall, answering)
        await self._record(chat, replies, recall, outcome)

    async def _recall(self, chat: ChatRequest, replies: ReplyStream) -> tuple[ChatRequest, Recall | None] | None:
        """The conversation's earlier turns (the offline engine needs none), aimed at the turn a
        regenerate or an edit names; None when that turn is gone (the chat has been ended)."""
        assert self.turns is not None
        recall = None if self.engine_for(chat) is self.offline else await self.turns.recall(chat, replies.message_id)
        branched = recall.branched() if recall else (None if chat.regenerate or chat.edit_of else chat)
        if branched is None:
            await replies.fail("not_in_conversation", {"message_id": chat.regenerate or chat.edit_of})
            return None
        return branched, recall

    async def _answer(
        self, chat: ChatRequest, replies: ReplyStream, recall: Recall | None, answering: Answering
    ) -> Outcome:
        assert self.effects is not None
        effects, keep = self.effects, recall.keep if recall else None

        async def before_end(text: str | None) -> None:
            if keep is not None:
                await keep(text)
            if text is not None:  # the answer's timers and alerts, carried out before it ends
                await effects.apply(chat, replies.actions)
            # Given up as the end is kept, before it is sent: the next chat, sent on seeing it, finds its turn free.
            replies.ends_after = answering.released

        history, progress = (recall.turns if recall else []), self.settings.progress_interval_seconds
        metrics.inflight.inc()
        try:
            return await answer(chat, self.engine_for(chat), replies, history, progress, before_end, answering)
        finally:
            metrics.inflight.dec()

    async def _record(self, chat: ChatRequest, replies: ReplyStream, recall: Recall | None, outcome: Outcome) -> None:
        assert self.journal is not None
        engine = self.engine_for(chat)
        if engine is not self.offline:
            outcome.usage = self._spent(chat, recall.turns if recall else [], replies, outcome)
        metrics.record(outcome, engine.name)
        if chat.demo:
            return
        traceparent = tracing.current_traceparent.get()
        headers = {tracing.TRACEPARENT: tracing.child_traceparent(traceparent)} if traceparent else None
        parent = recall.parent_id if recall else chat.chat_id
        for event in answer_events(chat, replies, outcome, engine, self.settings.instance_id, parent):
            self.journal.record(event, headers if event.user_id else None)  # an anonymous one keeps no trace
        if engine is not self.offline:
            await self._debit(chat, outcome)

    def _spent(self, chat: ChatRequest, history: list[Turn], replies: ReplyStream, outcome: Outcome) -> Usage | None:
        """The provider's usage, with what it did not report (a stopped or cut answer) estimated."""
        sent = prompt.messages(chat, outcome.intent, [t.prompt for t in history])
        failed = outcome.error_code is not None
        return usage_spent(outcome.usage, sent, replies.text if failed else outcome.text, failed)

    async def _debit(self, chat: ChatRequest, outcome: Outcome) -> None:
        assert self.budgets is not None
        if not self.budgets.enabled or outcome.usage is None:
            return
        tokens = (outcome.usage.tokens_in or 0) + (outcome.usage.tokens_out or 0)
        await self.budgets.debit(chat.user_id, tokens)
        log.debug("debited %d tokens", tokens, extra={"session_id": chat.session_id, "marker": logs.OK})

    async def drain(self) -> None:
        """Take no new chats, finish the ones in flight, then leave NATS."""
        if self.service is not None:
            await self.service.stop()
        if self.inflight:
            log.info("draining %d answers in flight", len(self.inflight), extra={"marker": logs.CONNECTION})
            await asyncio.gather(*self.inflight, return_exceptions=True)
        await self.tasks.stop()
        if self.journal is not None:
            await self.journal.close()
        if self.llm is not None:
            await self.llm.close()
        if self.speech is not None:
            await self.speech.close()
        if self.nc is not None:
            await self.nc.drain()
