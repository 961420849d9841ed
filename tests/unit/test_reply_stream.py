"""An answer's end, as the orchestrator sends it: kept first, the conversation's turn given up
beside that, then sent with where the turn was given up."""

from __future__ import annotations

import asyncio

from pam_orchestrator.replies import ReplyStream
from pam_shared import subjects


async def test_the_turn_is_given_up_while_the_end_is_kept_and_the_end_says_where():
    sent: list[tuple[bytes, dict[str, str] | None]] = []
    giving_up = asyncio.Event()

    async def respond(data: bytes, headers: dict[str, str] | None) -> None:
        sent.append((data, headers))

    async def keep(frame: bytes) -> dict[str, str]:
        await giving_up.wait()  # kept while the turn is being given up, not before it
        return {subjects.EVENT_ID_HEADER: "41"}

    replies = ReplyStream(respond, "m1", keep, window=0.0)

    async def release() -> None:
        giving_up.set()
        await asyncio.sleep(0)
        replies.turn = 7

    replies.ends_after = release
    await asyncio.wait_for(replies.finish("hello", "general"), 2)
    ((frame, headers),) = sent
    assert b'"chat_response"' in frame and headers is not None
    assert headers[subjects.REPLY_KIND_HEADER] == subjects.REPLY_END
    assert headers[subjects.EVENT_ID_HEADER] == "41" and headers[subjects.TURN_HEADER] == "7"
