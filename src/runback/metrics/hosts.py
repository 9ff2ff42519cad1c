"""Destination labels: a host, never a URL, and only so many of them.

Callback URLs are chosen by API clients, so a label taken from them is a cardinality (and
memory) hazard, and their paths and query strings carry tokens. A label is therefore a
destination's ``host:port`` as runback already keys it (``core.destinations.destination_of``),
checked to hold nothing else; the first ``max_hosts`` distinct ones keep their name for the
life of the process, every later one is ``other``.
"""

from __future__ import annotations

import re

OTHER = "other"
"""The label of every host past the cap, and of anything that is not a plain host:port."""

MAX_HOSTS = 100
"""Distinct hosts a process labels by name."""

# A DNS name or an IP address (IPv6 as urlsplit gives it, unbracketed), with its port; 253
# is DNS's own limit. Nothing of a URL's path, query or credentials can match.
_HOST = re.compile(r"(?:[a-z0-9_.\-]{1,253}|[0-9a-f:.]{2,45}):[0-9]{1,5}")


class HostLabels:
    """Maps destinations to bounded label values; O(1) once a host has been seen."""

    def __init__(self, max_hosts: int = MAX_HOSTS) -> None:
        self.max_hosts = max_hosts
        self._labels: dict[str, str] = {}
        self._named = 0

    def __call__(self, destination: str) -> str:
        """The label of ``destination`` (a ``host:port``)."""
        found = self._labels.get(destination)
        if found is not None:
            return found
        if self._named < self.max_hosts and _HOST.fullmatch(destination):
            self._named += 1
            self._labels[destination] = destination
            return destination
        # Remember refusals too, but not without bound: past that, each new host costs a
        # regular expression and nothing more.
        if len(self._labels) < 4 * self.max_hosts:
            self._labels[destination] = OTHER
        return OTHER
