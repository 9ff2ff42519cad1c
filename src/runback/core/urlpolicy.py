"""The one URL policy every outbound URL passes: callbacks, model input and receiver fetches.

Rules: ``http`` or ``https`` only, a host, at most 2048 characters; a host that is a literal
internal address (loopback, private, link-local and cloud metadata, carrier-grade NAT, unique-
and site-local, multicast, unspecified, reserved; in any IPv4 spelling ``getaddrinfo``
accepts) or a ``localhost`` name is refused unless the allow-list admits it. A host is judged
in the form the client connects to (IDNA / UTS-46, as ``yarl`` encodes it): full-width
digits or dots are the ASCII they map to. IPv6 forms that
embed an IPv4 address (mapped, compatible, 6to4, NAT64, Teredo) are judged by the embedded
address. ``check_address`` applies the same rules to the addresses a name resolved to, for
the resolver that guards every connection. The allow-list holds CIDR networks and host names
and is the only way to reach internal addresses. The query string is never touched:
receivers may authenticate by it. Pure: nothing here resolves or connects."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Final
from urllib.parse import SplitResult, urlsplit

import idna

from runback.errors import ConfigError, UrlRefusedError

MAX_URL_LENGTH: Final = 2048
_SCHEMES: Final = frozenset({"http", "https"})

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NUMERIC_IPV4: Final = re.compile(
    r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}", re.IGNORECASE
)

_IPV4_COMPATIBLE: Final = ipaddress.IPv6Network("::/96")
_NAT64: Final = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))

# Internal ranges named for the message, or missing from (or varying across Python versions
# in) ``ipaddress``'s own tables; everything else is judged by ``ipaddress``.
_NAMED: Final[tuple[tuple[IPNetwork, str], ...]] = tuple(
    (ipaddress.ip_network(network), kind)
    for network, kind in (
        ("169.254.169.254/32", "the cloud metadata address"),
        ("fd00:ec2::254/128", "the cloud metadata address (IPv6)"),
        ("100.64.0.0/10", "a carrier-grade NAT address"),
        ("fc00::/7", "a unique-local address"),
        ("fec0::/10", "a site-local address"),
        ("64:ff9b:1::/48", "a local-use NAT64 address"),
    )
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
                hosts.add(_host_key(entry))
        return cls(allowed_networks=tuple(networks), allowed_hosts=frozenset(hosts))

    def describe(self) -> str:
        """The allow list, as an operator wrote it (empty when only public addresses)."""
        return ", ".join([*map(str, self.allowed_networks), *sorted(self.allowed_hosts)])

    def check(self, url: str) -> SplitResult:
        """The parsed URL if runback may call it; else ``UrlRefusedError`` saying why."""
        # Cached: every attempt of every delivery checks its URL again, and most go to a
        # few receivers. (A refusal raises, so it is not cached; those are rare.)
        return _checked(self, url)

    def _check(self, url: str) -> SplitResult:
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
        self._check_host(normalised_host(host).rstrip("."))
        return parts

    def check_address(self, ip: IPAddress, *, host: str) -> None:
        """Refuse ``ip`` (what ``host`` names or resolved to) unless it is public or allowed.

        An IPv6 form that embeds an IPv4 address is judged by the embedded address, and the
        allow-list admits it if it admits either. A host name on the allow-list admits every
        address it resolves to: the operator vouched for the name.
        """
        if _host_key(host) in self.allowed_hosts:
            return
        embedded = _embedded_ipv4(ip)
        if self._allows(ip) or (embedded is not None and self._allows(embedded[1])):
            return
        kind = _internal_kind(ip)
        if kind is None:
            return
        if ":" in host or _host_key(host) == str(ip):
            raise _internal(host, f"is {kind}")
        if _NUMERIC_IPV4.fullmatch(host):
            raise _internal(host, f"means {ip}, {kind}")
        raise _internal(host, f"resolves to {ip}, {kind}")

    def _allows(self, ip: IPAddress) -> bool:
        return any(ip in network for network in self.allowed_networks)

    def _check_host(self, host: str) -> None:
        if host in self.allowed_hosts:
            return
        address = _literal_address(host)
        if address is None:
            if host == "localhost" or host.endswith(".localhost"):
                raise _internal(host, "is a loopback name")
            return
        self.check_address(address, host=host)


def normalised_host(host: str) -> str:
    """``host`` as the HTTP client will connect to it: lowercase ASCII, an international
    name in its IDNA (UTS-46) form, so 127.0.0.1 in full-width digits is judged as the
    ``127.0.0.1`` it becomes; ``UrlRefusedError`` when it has no such form."""
    if host.isascii():
        return host.lower()
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise UrlRefusedError(
            f"host {host!r} is not a valid international domain name: {exc}",
            reason="malformed",
        ) from None


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


def _embedded_ipv4(ip: IPAddress) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 form carries (and the form's name), if it carries one.

    Each of these reaches (or may reach, through a relay or translator) the embedded IPv4
    host, so it is that host that decides whether runback may connect.
    """
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    last32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        return "IPv4-mapped", ip.ipv4_mapped
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:  # :: and ::1 are themselves, not IPv4
        return "IPv4-compatible", last32
    if ip.sixtofour is not None:
        return "6to4", ip.sixtofour
    if any(ip in prefix for prefix in _NAT64):
        return "NAT64", last32
    if ip.teredo is not None:
        return "Teredo", ip.teredo[1]  # the client; ``teredo`` undoes the XOR already
    return None


def _internal_kind(ip: IPAddress) -> str | None:
    """What makes ``ip`` internal, as a phrase ("a loopback address"); None if it is public."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        form, inner = embedded
        kind = _own_kind(inner)
        if kind is not None:
            return f"{kind} ({form}, embedding {inner})"
        # ``ipaddress`` calls every embedding prefix reserved or private, which says nothing
        # of where the packet goes; only ``_NAMED`` (the local-use NAT64 /48) judges it.
        return next((kind for net, kind in _NAMED if ip in net), None)
    return _own_kind(ip)


def _own_kind(ip: IPAddress) -> str | None:
    named = next((kind for net, kind in _NAMED if ip in net), None)
    if named is not None:
        return named
    checks = (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("private", ip.is_private),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("reserved", ip.is_reserved),
        ("non-public", not ip.is_global),
    )
    return next((f"a {kind} address" for kind, hit in checks if hit), None)


def _internal(host: str, what: str) -> UrlRefusedError:
    return UrlRefusedError(
        f"host {host} {what}; add it to RUNBACK_CALLBACK_ALLOW (or --callback-allow) to allow it",
        reason="internal_address",
    )


def _host_key(host: str) -> str:
    return host.lower().rstrip(".")


def _is_host_name(entry: str) -> bool:
    labels = entry.rstrip(".").split(".")
    return all(label and len(label) <= 63 for label in labels) and all(
        c.isalnum() or c in "-." for c in entry
    )


@lru_cache(maxsize=4096)
def _checked(policy: UrlPolicy, url: str) -> SplitResult:
    return policy._check(url)
