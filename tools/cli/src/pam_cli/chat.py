"""Send one chat with the seed's full context and stream the answer to the terminal.

Chunks print as they arrive; ui actions and errors show in between. Exits 1 on an
error frame.
"""

from __future__ import annotations

import argparse
import time
import uuid

from pam_shared.logs import CONNECTION, ERROR, INCOMING, OK, OUTGOING
from pam_shared.protocol import (
    ActionResponse,
    Chat,
    ChatChunk,
    ChatContext,
    ChatResponse,
    Connection,
    Error,
    ServerFrame,
    SessionData,
    UiActions,
    encoder,
    now_iso,
)

from pam_cli import options
from pam_cli.console import say, write
from pam_cli.failure import Failure
from pam_cli.session import Session, explain, open_session

NOTICES = frozenset({"token_expiring"})
"""Error codes that warn about the socket rather than end the answer."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("message", help="what the user says")
    options.add_url(parser)
    options.add_identity(parser)
    parser.add_argument("--region", default="", help="context.region, e.g. Queensland")
    parser.add_argument("--page", default="/", help="context.current_page (default %(default)s)")
    parser.add_argument(
        "--timeout",
        type=options.positive_float,
        default=60.0,
        help="seconds to wait for each frame (default %(default)g; the gateway itself gives up sooner)",
    )


async def run(args: argparse.Namespace) -> int:
    if not args.message.strip():
        raise Failure("the message is empty")
    async with open_session(args.url, args.token, args.user) as session:
        say(CONNECTION, session.describe())
        chat = outgoing(args, session)
        view = AnswerView(time.perf_counter())
        await session.send(chat)
        say(OUTGOING, f"chat {chat.message!r} (region {args.region!r}, page {args.page!r}, id {chat.message_id})")
        try:
            while not view.show(await session.receive(args.timeout)):
                pass
        finally:
            view.end_line()
    return 0


def outgoing(args: argparse.Namespace, session: Session) -> Chat:
    """The seed's OutgoingMessage, as the signed-in user, with a fresh session's context."""
    now = now_iso()
    context = ChatContext(
        region=args.region,
        current_page=args.page,
        session_data=SessionData(last_activity=now, session_start=now),
    )
    return Chat(
        message=args.message,
        user_id=session.hello.user_id,
        context=context,
        message_id=f"cli-{uuid.uuid4().hex[:12]}",
    )


class AnswerView:
    """Prints the frames of one answer as they arrive; chunks continue one 📨 line."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.chunks = 0
        self.first_chunk_ms: float | None = None
        self.line_open = False

    def show(self, frame: ServerFrame) -> bool:
        """Print one frame; True once the answer is complete."""
        if isinstance(frame, ChatChunk):
            self._chunk(frame)
            return False
        self.end_line()
        if isinstance(frame, UiActions):
            for action in frame.actions:
                data = "" if action.data is None else " " + encoder.encode(action.data).decode()
                say(INCOMING, f"ui_action {action.type} {action.target}{data}")
        elif isinstance(frame, ActionResponse):
            say(INCOMING, f"action_response {frame.status} {encoder.encode(frame.result).decode()}")
        elif isinstance(frame, Error) and frame.code in NOTICES:
            say(ERROR, explain(frame), err=True)
        elif isinstance(frame, Error):
            raise Failure(explain(frame))
        elif isinstance(frame, Connection) and frame.status == "disconnected":
            raise Failure(f"the gateway disconnected ({frame.reason or 'no reason given'}): {frame.message}")
        elif isinstance(frame, ChatResponse):
            self._finish(frame)
            return True
        return False

    def _chunk(self, chunk: ChatChunk) -> None:
        if self.first_chunk_ms is None:
            self.first_chunk_ms = self._elapsed_ms()
        if not self.line_open:
            write(f"{INCOMING} ")
            self.line_open = True
        write(chunk.delta)
        self.chunks += 1

    def end_line(self) -> None:
        """Finish a line of chunks before anything else prints."""
        if self.line_open:
            write("\n")
            self.line_open = False

    def _finish(self, response: ChatResponse) -> None:
        if not self.chunks:
            say(INCOMING, response.message)
        first = f", first chunk {self.first_chunk_ms:.0f} ms" if self.first_chunk_ms is not None else ""
        total = f"total {self._elapsed_ms():.0f} ms"
        say(OK, f"chat_response: intent {response.intent}, {self.chunks} chunks{first}, {total}")

    def _elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000
