"""What some tool calls do beyond the frontend: timers, alarms and alerts, carried out here.

The model's tool calls become UI actions (``tools.to_action``); those listed in
``tools.EFFECTS`` are also acted on, before the answer's end goes out, so the answer is only
sent once its timer is kept.  A call that cannot be carried out (a bad time, say) is logged
and costs only itself.  Alerts other services raise (``pam_shared.alerts``) arrive here too.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import msgspec
from nats.aio.client import Client
from nats.micro.request import Request
from pam_shared import logs, timers
from pam_shared.alerts import AlertReceipt, AlertRequest, alert_request_decoder, push_alert
from pam_shared.internal import ChatRequest
from pam_shared.protocol import Priority, UiAction, encoder
from pam_shared.subjects import Subjects
from pam_shared.timers import Timer, TimerError, TimerStore, TimersUnavailable

log = logging.getLogger("pam.orchestrator.effects")


class SetTimer(msgspec.Struct):
    duration_seconds: Annotated[int, msgspec.Meta(ge=1)]
    label: str = ""


class SetAlarm(msgspec.Struct):
    time: str
    date: str | None = None
    label: str = ""


class CancelTimer(msgspec.Struct):
    timer_id: str | None = None
    label: str | None = None


class RaiseAlert(msgspec.Struct):
    category: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    message: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
    priority: Priority = "medium"


class Effects:
    def __init__(self, nc: Client, names: Subjects, store: TimerStore) -> None:
        self.nc = nc
        self.names = names
        self.store = store

    async def apply(self, chat: ChatRequest, actions: list[UiAction]) -> None:
        """Carry out the actions of one answer that have an effect here."""
        for action in actions:
            tool = action.data.get("tool") if isinstance(action.data, dict) else None
            if tool is None:
                continue
            try:
                await self._carry_out(chat, str(tool), action.data)
            except (msgspec.ValidationError, TimerError, TimersUnavailable) as exc:
                log.warning("tool %s not carried out: %s", tool, exc, extra={"marker": logs.ERROR})

    async def _carry_out(self, chat: ChatRequest, tool: str, args: dict[str, Any]) -> None:
        user = chat.user_id
        if tool == "set_timer":
            wanted = msgspec.convert(args, SetTimer)
            await self._set(timers.countdown(user, wanted.duration_seconds, wanted.label))
        elif tool == "set_alarm":
            alarm = msgspec.convert(args, SetAlarm)
            await self._set(timers.alarm(user, alarm.time, chat.context.zone, alarm.label, alarm.date))
        elif tool == "cancel_timer":
            await self._cancel(user, msgspec.convert(args, CancelTimer))
        elif tool == "list_timers":
            await self._list(user)
        elif tool == "raise_alert":
            alert = msgspec.convert(args, RaiseAlert)
            request = AlertRequest(user, alert.category, alert.message, alert.priority, alert_type="assistant")
            await push_alert(self.nc, self.names, request)

    async def _set(self, timer: Timer) -> None:
        await self.store.set(timer)
        log.info("%s %s set for %s", timer.kind, timer.timer_id, timer.due_at, extra={"marker": logs.OK})

    async def _cancel(self, user_id: str, which: CancelTimer) -> None:
        """By id; else every timer with that label; else the one going off soonest."""
        if which.timer_id:
            await self.store.cancel(user_id, which.timer_id)
            return
        pending = await self.store.pending(user_id)
        for timer in [t for t in pending if t.label == which.label] if which.label else pending[:1]:
            await self.store.cancel(user_id, timer.timer_id)

    async def _list(self, user_id: str) -> None:
        """The model sees no tool results, so the list reaches the user as an alert of its own."""
        pending = await self.store.pending(user_id)
        lines = [f"{t.label or t.kind} at {t.due_at}" for t in pending] or ["No timers or alarms are set."]
        message = "; ".join(lines)[:1000]
        await push_alert(self.nc, self.names, AlertRequest(user_id, "timers", message, "low", alert_type="timer_list"))

    async def on_alert(self, request: Request) -> None:
        """``<ns>.alerts``: keep and push an alert another service raised; answer its receipt."""
        try:
            alert = alert_request_decoder.decode(request.data)
        except msgspec.DecodeError as exc:
            await request.respond(encoder.encode(AlertReceipt(error=str(exc))))
            return
        receipt = await push_alert(self.nc, self.names, alert)
        log.info("alert %s (%s) pushed", receipt.alert_id, alert.category, extra={"marker": logs.OK})
        await request.respond(encoder.encode(receipt))
