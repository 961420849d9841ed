"""Proactive alerts: a typed push any service can raise for a user over NATS.

A service sends an ``AlertRequest`` as a NATS request to ``<ns>.alerts`` (``raise_alert``);
an orchestrator checks it, keeps it in the frames stream like every push and sends it to
every socket of the user (``push_alert``), then answers with an ``AlertReceipt``: the alert's
event id, or why it was refused.  Sockets get a ``proactive_alert`` frame, never in the
middle of an answer (``pam_gateway.inbox``).
"""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec
from nats.aio.client import Client

from pam_shared import bus, delivery
from pam_shared.protocol import AlertAction, Label, Priority, ProactiveAlert, encoder, now_iso
from pam_shared.subjects import Subjects

MAX_ALERT_CHARS = 1000
MAX_ALERT_ACTIONS = 4


class AlertRequest(msgspec.Struct, forbid_unknown_fields=True):
    """One alert for one user: ``category`` (fuel, weather, budget, safety ...), the words,
    how urgent it is, and up to four buttons."""

    user_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    category: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    message: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ALERT_CHARS)]
    priority: Priority = "medium"
    actions: Annotated[list[AlertAction], msgspec.Meta(max_length=MAX_ALERT_ACTIONS)] = []
    alert_type: Label = ""


class AlertReceipt(msgspec.Struct, omit_defaults=True):
    """The answer to an ``AlertRequest``: its event id once kept and sent, else the error."""

    event_id: int | None = None
    alert_id: str | None = None
    error: str | None = None


class AlertRefused(Exception):
    """An alert the orchestrators would not send (it was malformed), with their reason."""


alert_request_decoder = msgspec.json.Decoder(AlertRequest)
alert_receipt_decoder = msgspec.json.Decoder(AlertReceipt)


def alert_frame(request: AlertRequest) -> ProactiveAlert:
    return ProactiveAlert(
        alert_id=uuid.uuid4().hex,
        category=request.category,
        priority=request.priority,
        message=request.message,
        timestamp=now_iso(),
        alert_type=request.alert_type,
        actions=request.actions,
    )


async def push_alert(nc: Client, names: Subjects, request: AlertRequest) -> AlertReceipt:
    """Keep the alert for resume and send it to every socket of its user."""
    frame = alert_frame(request)
    event_id = await delivery.push(nc, names, request.user_id, encoder.encode(frame))
    return AlertReceipt(event_id=event_id, alert_id=frame.alert_id)


async def raise_alert(nc: Client, names: Subjects, request: AlertRequest, timeout: float = 5.0) -> AlertReceipt:
    """What another service calls: hand the alert to the orchestrators and wait until it is
    kept.  Raises ``AlertRefused`` for a malformed one, ``nats.errors.NoRespondersError`` when
    no orchestrator runs, ``TimeoutError`` when none answered in time."""
    reply = await bus.request(nc, names.alerts, encoder.encode(request), timeout)
    receipt = alert_receipt_decoder.decode(reply.data)
    if receipt.error is not None:
        raise AlertRefused(receipt.error)
    return receipt
