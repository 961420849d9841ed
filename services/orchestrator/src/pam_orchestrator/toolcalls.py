"""Tool calls put together from their streamed fragments, so parallel calls never merge.

A fragment belongs to a call by ``index``, else by ``id``, else by order of arrival.  Providers
differ: OpenAI numbers calls and sends the id once; Gemini sends no index (each call whole,
maybe with an empty id); Ollama sends every parallel call with ``index: 0`` and its own id, so
an index that comes back with a new id starts a new call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec
from pam_shared.protocol import UiAction

from pam_orchestrator import tools
from pam_orchestrator.completions import FunctionDelta, ToolCallDelta


@dataclass
class _Call:
    id: str | None
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class ToolCalls:
    """The calls of one answer, in the order they began."""

    def __init__(self) -> None:
        self._calls: list[_Call] = []
        self._by_id: dict[str, _Call] = {}
        self._by_index: dict[int, _Call] = {}

    def add(self, delta: ToolCallDelta) -> None:
        call = self._call_for(delta.id or None, delta.index, delta.function)
        function = delta.function
        if function is None:
            return
        if function.name:
            call.name = function.name
        if isinstance(function.arguments, dict):
            call.arguments.append(msgspec.json.encode(function.arguments).decode())
        elif function.arguments:
            call.arguments.append(function.arguments)

    def assembled(self) -> list[tuple[str, str]]:
        """Each call's name and whole arguments."""
        return [(call.name, "".join(call.arguments)) for call in self._calls]

    def actions(self) -> list[UiAction]:
        found = (tools.to_action(name, arguments) for name, arguments in self.assembled())
        return [action for action in found if action is not None]

    def _call_for(self, call_id: str | None, index: int | None, function: FunctionDelta | None) -> _Call:
        if call_id is not None and (known := self._by_id.get(call_id)) is not None:
            return known
        if index is not None:
            known = self._by_index.get(index)
            if known is not None and (call_id is None or known.id is None):
                return self._named(known, call_id)
        elif call_id is None and self._calls and not _begins_call(self._calls[-1], function):
            return self._calls[-1]
        return self._new(call_id, index)

    def _named(self, call: _Call, call_id: str | None) -> _Call:
        if call_id is not None:
            call.id = call_id
            self._by_id[call_id] = call
        return call

    def _new(self, call_id: str | None, index: int | None) -> _Call:
        call = _Call(call_id)
        self._calls.append(call)
        if call_id is not None:
            self._by_id[call_id] = call
        if index is not None:
            self._by_index[index] = call
        return call


def _begins_call(last: _Call, function: FunctionDelta | None) -> bool:
    """Without index or id, a fragment naming a function after a named call is a new call."""
    return function is not None and bool(function.name) and bool(last.name)
