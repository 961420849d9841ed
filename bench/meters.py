"""What a process costs, read from /proc: resident memory and CPU time."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

_TICKS = os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident set size (VmRSS) of ``pid``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def nats_server_pid(url: str) -> int | None:
    """The ``nats-server`` process listening on ``url``'s port (``-p PORT`` on its command line)."""
    port = str(urlparse(url).port or 4222)
    for pid in pids_named("nats-server"):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        pairs = zip(argv, argv[1:], strict=False)
        if any(flag in (b"-p", b"--port") and value.decode() == port for flag, value in pairs):
            return pid
    return None


def pids_named(name: str) -> list[int]:
    """Processes whose command name is ``name``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def machine_cpu_seconds() -> float:
    """CPU time every process on the machine has used so far (``/proc/stat``, all cores, idle and iowait left out)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICKS


class CpuMeter:
    """CPU seconds used by a set of processes between ``start`` and ``stop``, and by everything
    else on the machine meanwhile (``others``: other people's work on a shared box shows there)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._before: dict[str, float] = {}
        self._machine_before = 0.0
        self.used: dict[str, float] = {}
        self.others = 0.0

    def start(self) -> None:
        self._before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._machine_before = machine_cpu_seconds()

    def stop(self) -> dict[str, float]:
        machine = machine_cpu_seconds() - self._machine_before
        self.used = {name: round(cpu_seconds(pid) - self._before[name], 2) for name, pid in self.pids.items()}
        self.others = round(max(0.0, machine - sum(self.used.values())), 2)
        return self.used


def scenario_meter(pids: dict[str, int]) -> CpuMeter:
    """A meter over ``pids``, this load generator and the shared NATS server."""
    extra = {"load_generator": os.getpid()}
    if (pid := nats_server_pid(os.environ.get("NATS_URL") or "nats://127.0.0.1:4222")) is not None:
        extra["nats_server"] = pid
    return CpuMeter({**pids, **extra})
