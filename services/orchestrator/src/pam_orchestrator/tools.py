"""The functions the model may call; each call becomes a ``ui_actions`` entry for the frontend."""

from __future__ import annotations

import json
import logging

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
    log.warning("model called unknown or malformed tool %s", name)
    return None


def describe(actions: list[UiAction]) -> str:
    """Words for an answer that consisted only of actions."""
    parts = []
    for action in actions:
        if action.type == "navigate":
            parts.append(f"Opening {action.target} for you.")
        else:
            verb = "Recording" if action.type == "create" else "Updating"
            parts.append(f"{verb} your {action.target}.")
    return " ".join(parts)
