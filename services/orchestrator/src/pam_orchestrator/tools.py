"""The functions the model may call; each call becomes a ``ui_actions`` entry for the frontend."""

from __future__ import annotations

import json
import logging
from typing import Literal

from openai.types.chat import ChatCompletionFunctionToolParam
from pam_shared.protocol import UiAction

log = logging.getLogger("pam.orchestrator.tools")

PAGES = [
    "/",
    "/expenses",
    "/budget",
    "/income",
    "/trips",
    "/campgrounds",
    "/fuel",
    "/weather",
    "/maintenance",
    "/social",
    "/profile",
]

TOOLS: list[ChatCompletionFunctionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": "navigate",
            "description": "Open a page of the WHEELS WINS app for the user.",
            "parameters": {
                "type": "object",
                "properties": {"page": {"type": "string", "enum": PAGES}},
                "required": ["page"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "create_expense",
            "description": "Record an expense the user tells you about.",
            "parameters": {
                "type": "object",
                "properties": {
                    "amount": {"type": "number"},
                    "category": {"type": "string"},
                    "description": {"type": "string"},
                },
                "required": ["amount", "category"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "update_budget",
            "description": "Change the user's budget for a category.",
            "parameters": {
                "type": "object",
                "properties": {"category": {"type": "string"}, "amount": {"type": "number"}},
                "required": ["category", "amount"],
            },
        },
    },
]


TOOLS += [
    {
        "type": "function",
        "function": {
            "name": "set_timer",
            "description": "Start a countdown timer for the user; they are told when it goes off.",
            "parameters": {
                "type": "object",
                "properties": {
                    "duration_seconds": {"type": "integer", "minimum": 1},
                    "label": {"type": "string", "description": "What the timer is for, in a few words."},
                },
                "required": ["duration_seconds"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "set_alarm",
            "description": "Set an alarm at a clock time in the user's own time zone (the next such time).",
            "parameters": {
                "type": "object",
                "properties": {
                    "time": {"type": "string", "description": "24-hour local time, HH:MM"},
                    "date": {"type": "string", "description": "Local date YYYY-MM-DD, if not the next such time"},
                    "label": {"type": "string"},
                },
                "required": ["time"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "list_timers",
            "description": "Show the user the timers and alarms they have set.",
            "parameters": {"type": "object", "properties": {}},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "cancel_timer",
            "description": "Cancel one of the user's timers or alarms, by its id or its label.",
            "parameters": {
                "type": "object",
                "properties": {"timer_id": {"type": "string"}, "label": {"type": "string"}},
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "raise_alert",
            "description": "Alert the user to something needing attention (fuel, weather, budget, safety).",
            "parameters": {
                "type": "object",
                "properties": {
                    "category": {"type": "string", "enum": ["fuel", "weather", "budget", "safety", "maintenance"]},
                    "priority": {"type": "string", "enum": ["low", "medium", "high", "urgent"]},
                    "message": {"type": "string"},
                },
                "required": ["category", "message"],
            },
        },
    },
]

EFFECTS: dict[str, tuple[Literal["update", "create"], str]] = {
    "set_timer": ("create", "timer"),
    "set_alarm": ("create", "alarm"),
    "list_timers": ("update", "timers"),
    "cancel_timer": ("update", "timer"),
    "raise_alert": ("create", "alert"),
}
"""Tools whose action is also carried out by the orchestrator (``pam_orchestrator.effects``)."""


def to_action(name: str, arguments: str) -> UiAction | None:
    """Turn one tool call into a UI action; a malformed call is logged and dropped."""
    try:
        args = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        log.warning("tool call %s had invalid JSON arguments", name)
        return None
    if not isinstance(args, dict):
        return None
    if name == "navigate" and isinstance(args.get("page"), str):
        return UiAction(type="navigate", target=args["page"])
    if name == "create_expense":
        return UiAction(type="create", target="expense", data=args)
    if name == "update_budget":
        return UiAction(type="update", target="budget", data=args)
    if name in EFFECTS:
        kind, target = EFFECTS[name]
        return UiAction(type=kind, target=target, data={**args, "tool": name})
    log.warning("model called unknown or malformed tool %s", name)
    return None


def describe(actions: list[UiAction]) -> str:
    """Words for an answer that consisted only of actions."""
    parts = []
    for action in actions:
        tool = action.data.get("tool") if isinstance(action.data, dict) else None
        if tool in SAID:
            parts.append(SAID[tool])
        elif action.type == "navigate":
            parts.append(f"Opening {action.target} for you.")
        else:
            verb = "Recording" if action.type == "create" else "Updating"
            parts.append(f"{verb} your {action.target}.")
    return " ".join(parts)


SAID = {
    "set_timer": "Timer set.",
    "set_alarm": "Alarm set.",
    "list_timers": "Here are your timers.",
    "cancel_timer": "Cancelled.",
    "raise_alert": "I have flagged that for you.",
}
