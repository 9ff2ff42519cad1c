"""The one URL policy every outbound URL passes: callbacks, and later model and receiver fetches.

Rules: ``http`` or ``https`` only, a host, at most 2048 characters; a host that is a literal
loopback, private, link-local, unspecified, multicast or reserved address (or a ``localhost``
name) is refused unless the allow-list admits it. The allow-list holds CIDR networks and host
names and is the only way to reach internal addresses. The query string is never touched:
receivers may authenticate by it.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import SplitResult, urlsplit

from runback.errors import ConfigError, UrlRefusedError

MAX_URL_LENGTH: Final = 2048
_SCHEMES: Final = frozenset({"http", "https"})

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NUMERIC_IPV4: Final = re.compile(
    r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}", re.IGNORECASE
)

LOOPBACK_ALLOW: Final = ("127.0.0.0/8", "::1", "localhost")
"""The allow-list entries that admit this machine's own loopback receivers."""


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """Which outbound URLs runback may call."""

    allowed_networks: tuple[IPNetwork, ...] = ()
    allowed_hosts: frozenset[str] = frozenset()
    max_length: int = MAX_URL_LENGTH

    @classmethod
    def from_allow_list(cls, entries: Iterable[str]) -> UrlPolicy:
        """Build a policy from allow-list entries: CIDRs, addresses or host names."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in (e.strip() for e in entries):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                if "/" in entry or not _is_host_name(entry):
                    raise ConfigError(
                        f"allow-list entry {entry!r} is neither a CIDR network nor a host name"
                    ) from None
                hosts.add(entry.lower().rstrip("."))
        return cls(allowed_networks=tuple(networks), allowed_hosts=frozenset(hosts))

    def check(self, url: str) -> SplitResult:
        """The parsed URL if runback may call it; else ``UrlRefusedError`` saying why."""
        if len(url) > self.max_length:
            raise UrlRefusedError(
                f"URL is {len(url)} characters long; at most {self.max_length} are allowed",
                reason="too_long",
            )
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - parsing the port is what validates it
        except ValueError as exc:
            raise UrlRefusedError(f"URL is malformed: {exc}", reason="malformed") from None
        if parts.scheme not in _SCHEMES:
            raise UrlRefusedError(
                "URL must start with http:// or https://", reason="scheme_not_allowed"
            )
        if not host:
            raise UrlRefusedError("URL has no host", reason="malformed")
        if any(c.isspace() for c in url):
            raise UrlRefusedError("URL contains whitespace", reason="malformed")
        self._check_host(host.rstrip("."))
        return parts

    def _check_host(self, host: str) -> None:
        if host in self.allowed_hosts:
            return
        address = _literal_address(host)
        if address is None:
            if host == "localhost" or host.endswith(".localhost"):
                raise _internal(host, "a loopback name")
            return
        if any(address in network for network in self.allowed_networks):
            return
        kind = _internal_kind(address)
        if kind is not None:
            raise _internal(host, kind)


def _literal_address(host: str) -> IPAddress | None:
    """The address a host names without any DNS, in every spelling resolvers accept.

    ``127.1``, ``2130706433``, ``0x7f000001`` and ``0177.0.0.1`` all reach 127.0.0.1 through
    ``getaddrinfo``, although ``ipaddress`` reads none of them.
    """
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if not _NUMERIC_IPV4.fullmatch(host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        raise UrlRefusedError(
            f"host {host} is not a valid IPv4 address", reason="malformed"
        ) from None


def _internal_kind(address: IPAddress) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    checks = (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("reserved", address.is_reserved),
        ("non-public", not address.is_global),  # e.g. CGNAT 100.64.0.0/10
    )
    return next((f"a {kind} address" for kind, hit in checks if hit), None)


def _internal(host: str, kind: str) -> UrlRefusedError:
    return UrlRefusedError(
        f"host {host} is {kind}; add it to RUNBACK_CALLBACK_ALLOW (or --callback-allow) "
        "to allow it",
        reason="internal_address",
    )


def _is_host_name(entry: str) -> bool:
    labels = entry.rstrip(".").split(".")
    return all(label and len(label) <= 63 for label in labels) and all(
        c.isalnum() or c in "-." for c in entry
    )
