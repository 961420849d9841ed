"""NATS messages per chat: every message published under a run's namespace, counted by kind.

A wildcard subscriber on ``<ns>.>`` and on each of the namespace's key-value buckets
(every ``Subjects.*_bucket``, as ``$KV.<bucket>.>``)
sees every chat request, reply frame, user-subject copy, kept frame and JetStream event
the services publish; replies that ride ``_INBOX`` (JetStream's publish acks, KV reads,
request-reply answers) are not counted.  It counts between ``start`` and ``stop``, so it
can stand where a scenario starts and stops its CPU meter.
"""

from __future__ import annotations

from collections import Counter

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from pam_shared.subjects import Subjects

GROUPED = {"events", "chat", "persistence"}
"""Kinds whose second token says what they are (``events.answer``, ``chat.request``)."""


class MessageCount:
    def __init__(self, url: str, namespace: str) -> None:
        self.url, self.names = url, Subjects(namespace)
        self.kinds: Counter[str] = Counter()
        self.apis: Counter[str] = Counter()
        self.counting = False
        self._nc: Client | None = None

    async def __aenter__(self) -> MessageCount:
        self._nc = await nats.connect(self.url)
        names = self.names
        buckets = [getattr(names, name) for name in dir(Subjects) if name.endswith("_bucket")]
        for subject in (f"{names.namespace}.>", *(f"$KV.{bucket}.>" for bucket in buckets)):
            await self._nc.subscribe(subject, cb=self._seen)
        await self._nc.subscribe("$JS.API.>", cb=self._seen_api)
        await self._nc.flush()
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._nc is not None:
            await self._nc.close()

    def start(self) -> None:
        self.counting = True

    def stop(self) -> None:
        self.counting = False

    async def _seen(self, msg: Msg) -> None:
        if self.counting:
            self.kinds[self.kind(msg.subject)] += 1

    async def _seen_api(self, msg: Msg) -> None:
        if self.counting and (kind := self.api_kind(msg.subject)) is not None:
            self.apis[kind] += 1

    def api_kind(self, subject: str) -> str | None:
        """``api stream.msg.get kv_answering`` for a request naming one of our streams; None for others'."""
        tokens = subject.split(".")
        ours = self.names.namespace.upper() + "_"
        at = next((i for i, token in enumerate(tokens) if ours in token), None)
        if at is None:
            return None
        return f"api {'.'.join(tokens[2:at]).lower()} {tokens[at].replace(ours, '').lower()}"

    def kind(self, subject: str) -> str:
        tokens = subject.split(".")
        if tokens[0] == "$KV":
            return f"kv {tokens[1].removeprefix(self.names.namespace.upper() + '_').lower()}"
        return ".".join(tokens[1:3]) if tokens[1] in GROUPED else tokens[1]

    def per_chat(self) -> dict[str, float]:
        """Messages per chat, in total and by kind, then JetStream API requests (``api``, not in
        ``total``).  Chats are the chat requests seen in the same window, so a chat cut by either
        edge of the window is half in the count on both sides."""
        chats = self.kinds["chat.request"]
        if not chats:
            return {}
        by_kind = {kind: round(n / chats, 2) for kind, n in sorted(self.kinds.items())}
        apis = {kind: round(n / chats, 2) for kind, n in sorted(self.apis.items())}
        total, api = round(sum(self.kinds.values()) / chats, 2), round(sum(self.apis.values()) / chats, 2)
        return {"total": total, **by_kind, "api": api, **apis}
