"""Name resolution for outbound HTTP, and the guard that checks every address before connecting.

``Resolver`` is the seam (``SystemResolver`` asks the system, ``runback.testing.StaticResolver``
answers from a table). ``GuardedResolver`` is what aiohttp's connector is given: it resolves,
checks each address with ``UrlPolicy.check_address`` and answers aiohttp only the addresses
that passed, so the connection goes to an address that was checked, never to a fresh lookup
of the name (no DNS-rebinding window). aiohttp's DNS cache then holds checked addresses only.

aiohttp 3.14 skips the resolver for hosts that look like IP literals (dotted decimal, or
anything with a colon) and refuses non-canonical numeric IPv4 forms itself; other spellings
(``0x7f.1``) reach the resolver. Literals are therefore checked by ``UrlPolicy.check`` before
any request, as every caller does. The connector wraps what a resolver raises in
``aiohttp.ClientConnectorDNSError``; ``os_error`` is the ``ResolutionError`` or
``BlockedAddressError`` below, which is how callers tell the two apart.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from collections.abc import Sequence
from typing import Protocol

from aiohttp.abc import AbstractResolver, ResolveResult

from runback.core.urlpolicy import IPAddress, UrlPolicy
from runback.errors import UrlRefusedError


class ResolutionError(OSError):
    """A host name does not resolve (no such name, no address, or the lookup failed)."""

    def __init__(self, host: str, why: str) -> None:
        super().__init__(errno.EHOSTUNREACH, f"{host} does not resolve: {why}")
        self.host = host


class BlockedAddressError(OSError):
    """Every address a host name resolved to is refused by the URL policy."""

    def __init__(self, host: str, addresses: Sequence[IPAddress], refusal: str) -> None:
        listed = ", ".join(str(a) for a in addresses)
        if len(addresses) > 1:  # the refusal names one address: say there were others
            refusal = f"{host} resolved only to refused addresses ({listed}); {refusal}"
        super().__init__(errno.EACCES, refusal)
        self.host = host
        self.addresses = tuple(addresses)


class Resolver(Protocol):
    """Resolves a host name; raises ``ResolutionError`` when it cannot."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]: ...


class SystemResolver:
    """The system's resolver, through ``loop.getaddrinfo``."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ResolutionError(host, exc.strerror or str(exc)) from exc
        except (OSError, UnicodeError) as exc:  # UnicodeError: a label IDNA cannot encode
            raise ResolutionError(host, str(exc) or type(exc).__name__) from exc
        addresses: list[IPAddress] = []
        for family, *_, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            text = str(sockaddr[0])
            if len(sockaddr) == 4 and sockaddr[3]:  # IPv6 with a zone: keep it
                text = f"{text.partition('%')[0]}%{sockaddr[3]}"
            address = ipaddress.ip_address(text)
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise ResolutionError(host, "no address")
        return addresses


class ResolverAdapter(AbstractResolver):
    """Answers aiohttp from a ``Resolver``, every address as it came."""

    def __init__(self, resolver: Resolver) -> None:
        self._resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = [a for a in await self._resolver.resolve(host, port) if _fits(a, family)]
        if not addresses:
            raise ResolutionError(host, "no address of the wanted family")
        return [_result(host, address, port) for address in self._admit(host, addresses)]

    def _admit(self, host: str, addresses: list[IPAddress]) -> list[IPAddress]:
        return addresses

    async def close(self) -> None:
        pass


class GuardedResolver(ResolverAdapter):
    """Answers aiohttp only the resolved addresses that ``policy`` admits."""

    def __init__(self, resolver: Resolver, policy: UrlPolicy) -> None:
        super().__init__(resolver)
        self._policy = policy

    def _admit(self, host: str, addresses: list[IPAddress]) -> list[IPAddress]:
        admitted: list[IPAddress] = []
        refusal: UrlRefusedError | None = None
        for address in addresses:
            try:
                self._policy.check_address(address, host=host)
            except UrlRefusedError as exc:
                refusal = refusal or exc
            else:
                admitted.append(address)
        if not admitted:
            raise BlockedAddressError(host, addresses, str(refusal))
        return admitted


def _fits(address: IPAddress, family: socket.AddressFamily) -> bool:
    wanted = {socket.AF_INET: 4, socket.AF_INET6: 6}.get(family)
    return wanted is None or address.version == wanted


def _result(host: str, address: IPAddress, port: int) -> ResolveResult:
    return ResolveResult(
        hostname=host,
        host=str(address),
        port=port,
        family=socket.AF_INET6 if address.version == 6 else socket.AF_INET,
        proto=0,
        flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
    )
