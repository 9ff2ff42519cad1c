"""What a process costs, read from ``/proc``: CPU seconds and resident memory.

CPU is ``utime + stime`` of ``/proc/<pid>/stat``; PostgreSQL's share is the sum over every
``postgres`` process plus what the postmaster collected from children that exited (a
backend closed mid-run keeps counting), so a difference of two readings is what the server
spent between them.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _fields(pid: int) -> list[str]:
    # The command name may hold spaces: the fields start after its closing parenthesis.
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2 :].split()


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """CPU time of one process (with ``children``, also of its children that exited)."""
    fields = _fields(pid)
    # After the name: state is field 0, utime 11, stime 12, cutime 13, cstime 14.
    used = int(fields[11]) + int(fields[12])
    if children:
        used += int(fields[13]) + int(fields[14])
    return used / _TICKS


def postgres_cpu_seconds() -> float:
    """CPU time of every local ``postgres`` process, exited backends included; 0 if none
    is visible (a server on another host)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            total += cpu_seconds(int(entry.name), children=True)
        except (OSError, ValueError, IndexError):
            continue  # it exited while we looked
    return total


def rss_mb(pid: int) -> float:
    """Resident memory (``VmRSS``) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"process {pid} reports no VmRSS")
