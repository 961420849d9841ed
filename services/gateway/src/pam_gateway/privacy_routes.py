"""A user's privacy over HTTP: their settings, and erasing a conversation or everything.

    GET    /api/v1/users/me/privacy            what we may keep: {"store_conversations", "analytics"}
    PUT    /api/v1/users/me/privacy            change either or both (a field left out keeps its value)
    DELETE /api/v1/conversations/{id}          erase one conversation
    DELETE /api/v1/users/me                    erase everything we hold about the user, everywhere

Persistence does the work (``pam_persistence.consent``, ``pam_persistence.erasure``); the
gateway checks the token and passes the request on.
"""

from __future__ import annotations

import msgspec
from pam_shared.erasure import ConversationErase, EraseRequest, conversation_erased_decoder, erased_decoder
from pam_shared.privacy import Privacy, PrivacyRequest, privacy_change_decoder, privacy_decoder
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pam_gateway.consent import PrivacyBook
from pam_gateway.read_api import ApiError, ReadApi, guarded, json_response

ERASE_TIMEOUT_SECONDS = 60.0
"""An erasure waits for every service to stop serving the user, then deletes and purges."""


class PrivacyRoutes:
    def __init__(self, api: ReadApi, book: PrivacyBook) -> None:
        self.api, self.book = api, book
        self.names = api.names

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/users/me/privacy", guarded(self.settings), methods=["GET"]),
            Route("/api/v1/users/me/privacy", guarded(self.change), methods=["PUT"]),
            Route("/api/v1/users/me", guarded(self.erase), methods=["DELETE"]),
            Route("/api/v1/conversations/{conversation_id}", guarded(self.erase_conversation), methods=["DELETE"]),
        ]

    async def settings(self, request: Request) -> Response:
        identity = await self.api.identity(request)
        return json_response(await self._ask(PrivacyRequest(identity.user_id)))

    async def change(self, request: Request) -> Response:
        identity = await self.api.identity(request)
        try:
            change = privacy_change_decoder.decode(await request.body())
        except msgspec.DecodeError as exc:
            raise ApiError("invalid_body", str(exc)) from None
        chosen = await self._ask(PrivacyRequest(identity.user_id, change))
        self.book.learn(identity.user_id, chosen)
        return json_response(chosen)

    async def erase(self, request: Request) -> Response:
        """Everything we hold about the user, everywhere; their sockets are closed (4410)."""
        identity = await self.api.identity(request)
        if identity.demo:
            raise ApiError("forbidden", "a demo identity has nothing to erase")
        token = request.headers["authorization"].partition(" ")[2].strip()
        wanted = EraseRequest(token)
        erased = await self.api.ask(
            self.names.erase, wanted, erased_decoder, ERASE_TIMEOUT_SECONDS, "erasure_unavailable"
        )
        return json_response(erased)

    async def erase_conversation(self, request: Request) -> Response:
        identity = await self.api.identity(request)
        wanted = ConversationErase(identity.user_id, request.path_params["conversation_id"])
        erased = await self.api.ask(self.names.delete_conversation, wanted, conversation_erased_decoder)
        if not erased.found:
            raise ApiError("not_found")
        return json_response(erased)

    async def _ask(self, query: PrivacyRequest) -> Privacy:
        reply: Privacy = await self.api.ask(self.names.privacy, query, privacy_decoder)
        return reply
