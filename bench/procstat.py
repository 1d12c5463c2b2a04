"""CPU seconds from /proc: how the benchmarks tell where the CPU went on a shared machine."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ProcessCpu:
    pid: int
    session: int  # a benchmark starts each server in a session of its own: its processes share this
    cmdline: str
    seconds: float  # user + system CPU so far


def processes() -> Iterator[ProcessCpu]:
    """Every process still there to be read (one may end while the list is walked)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after the command name, which may hold spaces
        yield ProcessCpu(int(entry.name), int(fields[3]), cmdline, (int(fields[11]) + int(fields[12])) / _TICK)


def machine_busy() -> float:
    """The machine's busy CPU seconds since boot, every core: all but idle and iowait (guest is in user)."""
    cpu = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(cpu[:8]) - cpu[3] - cpu[4]) / _TICK
