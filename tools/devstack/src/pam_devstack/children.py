"""The service processes ``pam-stack`` runs: started in their own process groups, always stopped.

A child in its own process group does not get the terminal's Ctrl-C; the runner decides
when and in which order each one stops, and kills the whole group if it will not.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal

from pam_devstack.console import Console

STOP_TIMEOUT_SECONDS = 10.0


class Child:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], ready: str, console: Console) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.ready_pattern = re.compile(ready)
        self.console = console
        self.ready = asyncio.Event()
        self.proc: asyncio.subprocess.Process | None = None
        self._pump: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        self._pump = asyncio.create_task(self._print_output(self.proc))

    async def _print_output(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.console.line(self.name, line)
            if not self.ready.is_set() and self.ready_pattern.search(line):
                self.ready.set()

    async def wait_ready(self, timeout: float) -> bool:
        """True once the child printed its ready line; False if it exited or took too long first."""
        assert self.proc is not None
        ready = asyncio.create_task(self.ready.wait())
        exited = asyncio.create_task(self.proc.wait())
        try:
            await asyncio.wait({ready, exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            exited.cancel()
        return self.ready.is_set() and self.proc.returncode is None

    async def wait_exit(self) -> int:
        assert self.proc is not None
        return await self.proc.wait()

    async def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it after a grace period, then finish printing its output."""
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self._signal_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT_SECONDS)
            except TimeoutError:
                self.console.say("❌", f"{self.name} did not stop in {STOP_TIMEOUT_SECONDS:g}s; killing it")
                self._signal_group(signal.SIGKILL)
                await self.proc.wait()
        if self._pump is not None:
            await self._pump

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
