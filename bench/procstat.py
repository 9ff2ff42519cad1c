"""What a process costs, read from ``/proc``: CPU seconds and resident memory.

CPU is ``utime + stime`` of ``/proc/<pid>/stat``; PostgreSQL's share is the sum over every
``postgres`` process plus what the postmaster collected from children that exited (a
backend closed mid-run keeps counting), so a difference of two readings is what the server
spent between them.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator
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


def own_cpu_seconds() -> float:
    """CPU time of this process, every thread (aiosqlite's included)."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def pids_named(name: str) -> Iterator[int]:
    """The pids of the local processes whose command is ``name``."""
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == name:
                yield int(entry.name)
        except OSError:
            continue  # it exited while we looked


def postgres_cpu_seconds() -> float:
    """CPU time of every local ``postgres`` process, exited backends included; 0 if none
    is visible (a server on another host)."""
    total = 0.0
    for pid in pids_named("postgres"):
        try:
            total += cpu_seconds(pid, children=True)
        except (OSError, ValueError, IndexError):
            continue  # it exited while we looked
    return total


def with_children(pid: int) -> list[int]:
    """A process and its descendants (a Celery pool, say), breadth first."""
    found = [pid]
    for parent in found:  # grows while it is walked
        for listing in Path(f"/proc/{parent}/task").glob("*/children"):
            found.extend(int(child) for child in listing.read_text().split())
    return found


def rss_mb(pid: int) -> float:
    """Resident memory (``VmRSS``) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"process {pid} reports no VmRSS")
