"""The seed's ``pam-debug`` switch for the backend: verbose logs for one user or session,
turned on and off at run time over NATS, in every service at once.

    nats pub pam.control.debug '{"user_id": "alice", "enabled": true}'     (or: pam debug --user alice on)
"""

from __future__ import annotations

import logging

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from pam_shared import logs
from pam_shared.subjects import Subjects

log = logging.getLogger("pam.debugging")


class DebugSwitch(msgspec.Struct):
    enabled: bool
    user_id: str | None = None
    session_id: str | None = None


switch_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(DebugSwitch)


async def listen(nc: Client, names: Subjects) -> Subscription:
    """Follow the debug switch for as long as the returned subscription lives."""

    async def on_switch(msg: Msg) -> None:
        try:
            switch = _decoder.decode(msg.data)
        except msgspec.DecodeError as exc:
            log.warning("ignored a malformed debug switch: %s", exc)
            return
        for target in (switch.user_id, switch.session_id):
            if target:
                logs.debug_for(target, switch.enabled)
                log.info("debug logging %s for %s", "on" if switch.enabled else "off", target)

    return await nc.subscribe(names.debug_control, cb=on_switch)
