"""The SSRF corpus: URLs runback must never call, and the guard that checks resolved addresses.

Pure: nothing here resolves a name or opens a connection. Literal addresses are refused by
``UrlPolicy.check``; names that resolve to internal addresses are refused by
``GuardedResolver``, fed by a ``StaticResolver``.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest

from runback.core.urlpolicy import UrlPolicy
from runback.errors import UrlRefusedError
from runback.outbound.resolver import BlockedAddressError, GuardedResolver, ResolutionError
from runback.testing import StaticResolver

DEFAULT = UrlPolicy()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        # Odd IPv4 spellings, all of which getaddrinfo reads without any DNS.
        ("http://2130706433/", "internal_address"),  # 127.0.0.1 as one decimal number
        ("http://017700000001/", "internal_address"),  # 127.0.0.1 as one octal number
        ("http://0x7f000001/", "internal_address"),  # 127.0.0.1 as one hex number
        ("http://0177.0.0.1/", "internal_address"),  # octal first octet
        ("http://0x7f.0x0.0x0.0x1/", "internal_address"),  # hex octets
        ("http://0x7F.1/", "internal_address"),  # hex, short form, capitals
        ("http://127.1/", "internal_address"),  # short form: 127.0.0.1
        ("http://127.0.1/", "internal_address"),  # short form with three parts
        ("http://0x7f.0.0.01/", "internal_address"),  # mixed hex, decimal and octal
        ("http://10.1/", "internal_address"),  # short form of 10.0.0.1
        ("http://192.168.1/", "internal_address"),  # short form of 192.168.0.1
        ("http://2852039166/", "internal_address"),  # 169.254.169.254 as one number
        ("http://0251.0376.0251.0376/", "internal_address"),  # metadata, octal octets
        ("http://0/", "internal_address"),  # 0.0.0.0: this machine
        ("http://127.0.0.1./", "internal_address"),  # trailing dot on a literal
        # Cloud metadata, CGNAT, multicast, reserved.
        ("http://169.254.169.254/latest/meta-data/", "internal_address"),  # metadata
        ("http://[fd00:ec2::254]/latest/meta-data/", "internal_address"),  # AWS IPv6 metadata
        ("http://100.64.0.1/", "internal_address"),  # carrier-grade NAT 100.64/10
        ("http://239.255.255.250:1900/", "internal_address"),  # IPv4 multicast (SSDP)
        ("http://255.255.255.255/", "internal_address"),  # broadcast
        ("http://240.0.0.1/", "internal_address"),  # reserved 240/4
        # IPv6 forms, and IPv6 forms that embed an internal IPv4 address.
        ("http://[::]/", "internal_address"),  # IPv6 unspecified
        ("http://[::1]/", "internal_address"),  # IPv6 loopback
        ("http://[0:0:0:0:0:0:0:1]/", "internal_address"),  # ...spelled out
        ("http://[fe80::1]/", "internal_address"),  # link-local fe80::/10
        ("http://[fe80::a%25en0]/", "internal_address"),  # link-local with a zone id
        ("http://[fc00::1]/", "internal_address"),  # unique local fc00::/7
        ("http://[fd12:3456::1]/", "internal_address"),  # unique local, the fd half
        ("http://[fec0::1]/", "internal_address"),  # deprecated site-local
        ("http://[ff02::1]/", "internal_address"),  # IPv6 multicast
        ("http://[::ffff:127.0.0.1]/", "internal_address"),  # IPv4-mapped loopback
        ("http://[::ffff:7f00:1]/", "internal_address"),  # ...in hex
        ("http://[::ffff:169.254.169.254]/", "internal_address"),  # IPv4-mapped metadata
        ("http://[::127.0.0.1]/", "internal_address"),  # IPv4-compatible loopback
        ("http://[::10.0.0.1]/", "internal_address"),  # IPv4-compatible private
        ("http://[2002:7f00:1::]/", "internal_address"),  # 6to4 of 127.0.0.1
        ("http://[2002:a00:1::1]/", "internal_address"),  # 6to4 of 10.0.0.1
        ("http://[64:ff9b::a9fe:a9fe]/", "internal_address"),  # NAT64 of 169.254.169.254
        ("http://[64:ff9b::127.0.0.1]/", "internal_address"),  # NAT64 of loopback
        ("http://[64:ff9b:1::a00:1]/", "internal_address"),  # local-use NAT64 64:ff9b:1::/48
        ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "internal_address"),  # Teredo, 127/8
        # Loopback names.
        ("http://localhost/", "internal_address"),  # the loopback name
        ("http://localhost./", "internal_address"),  # ...fully qualified
        ("http://foo.localhost/", "internal_address"),  # RFC 6761: all of .localhost
        ("http://Foo.LocalHost.:8080/", "internal_address"),  # ...any case, dot and port
        # Schemes other than http(s).
        ("file:///etc/passwd", "scheme_not_allowed"),  # local files
        ("gopher://127.0.0.1:6379/_INFO", "scheme_not_allowed"),  # gopher to Redis
        ("dict://127.0.0.1:11211/stats", "scheme_not_allowed"),  # dict to memcached
        ("ftp://10.0.0.1/", "scheme_not_allowed"),  # ftp
        ("javascript:alert(1)", "scheme_not_allowed"),  # no host at all
    ],
)
def test_forbidden_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(UrlRefusedError) as refused:
        DEFAULT.check(url)

    assert refused.value.reason == reason


@pytest.mark.parametrize(
    "url",
    [
        "http://[::ffff:8.8.8.8]/",  # IPv4-mapped public address
        "http://[2002:808:808::1]/",  # 6to4 of a public address
        "http://[64:ff9b::8.8.8.8]/",  # NAT64 of a public address
        "http://[2001:0:4136:e378:8000:63bf:f7f7:f7f7]/",  # Teredo, client 8.8.8.8
    ],
)
def test_embedding_forms_of_public_addresses_are_allowed(url: str) -> None:
    DEFAULT.check(url)


@pytest.mark.parametrize(
    ("entries", "url"),
    [
        (["127.0.0.0/8"], "http://[::ffff:127.0.0.1]/"),  # the embedded address is allowed
        (["127.0.0.0/8"], "http://[2002:7f00:1::]/"),  # ...in 6to4
        (["::ffff:0:0/96"], "http://[::ffff:10.0.0.1]/"),  # the outer address is allowed
        (["64:ff9b:1::/48"], "http://[64:ff9b:1::a00:1]/"),  # the local NAT64 prefix
    ],
)
def test_the_allow_list_admits_an_embedding_form_by_either_address(
    entries: list[str], url: str
) -> None:
    UrlPolicy.from_allow_list(entries).check(url)


@pytest.mark.parametrize(
    ("host", "addresses"),
    [
        ("evil.example", ["127.0.0.1"]),  # a public-looking name for loopback
        ("rebind.example.", ["127.0.0.1"]),  # ...fully qualified
        ("metadata.example", ["169.254.169.254"]),  # cloud metadata
        ("v6metadata.example", ["fd00:ec2::254"]),  # AWS IPv6 metadata
        ("private.example", ["10.0.0.1", "192.168.0.1"]),  # every address private
        ("v6.example", ["::1"]),  # IPv6 loopback
        ("mapped.example", ["::ffff:10.0.0.1"]),  # IPv4-mapped private
        ("nat64.example", ["64:ff9b::a9fe:a9fe"]),  # NAT64 of the metadata address
        ("teredo.example", ["2001:0:4136:e378:8000:63bf:80ff:fffe"]),  # Teredo of 127.0.0.1
        ("cgnat.example", ["100.64.0.1"]),  # carrier-grade NAT
    ],
)
async def test_names_resolving_only_to_internal_addresses_are_blocked(
    host: str, addresses: list[str]
) -> None:
    url = f"http://{host}/hook"
    DEFAULT.check(url)  # the name alone passes: only its addresses give it away
    guard = GuardedResolver(StaticResolver({host: addresses}), DEFAULT)

    with pytest.raises(BlockedAddressError) as blocked:
        await guard.resolve(host, 80, socket.AF_UNSPEC)

    assert blocked.value.addresses == tuple(ipaddress.ip_address(a) for a in addresses)
    message = str(blocked.value)
    assert host in message
    assert str(ipaddress.ip_address(addresses[0])) in message


async def test_the_guard_answers_only_the_addresses_the_policy_admits() -> None:
    resolver = StaticResolver({"mixed.example": ["10.0.0.1", "8.8.8.8", "::1", "2001:db8::1"]})
    guard = GuardedResolver(resolver, DEFAULT)

    answers = await guard.resolve("mixed.example", 443, socket.AF_UNSPEC)

    assert [(a["host"], a["port"], a["hostname"]) for a in answers] == [
        ("8.8.8.8", 443, "mixed.example")
    ]


async def test_the_guard_admits_internal_addresses_the_allow_list_names() -> None:
    policy = UrlPolicy.from_allow_list(["127.0.0.0/8"])
    guard = GuardedResolver(StaticResolver({"receiver.test": ["127.0.0.1", "10.0.0.1"]}), policy)

    answers = await guard.resolve("receiver.test", 8080, socket.AF_UNSPEC)

    assert [a["host"] for a in answers] == ["127.0.0.1"]
    assert answers[0]["family"] == socket.AF_INET


async def test_a_host_name_on_the_allow_list_admits_whatever_it_resolves_to() -> None:
    policy = UrlPolicy.from_allow_list(["receiver.internal"])
    guard = GuardedResolver(StaticResolver({"receiver.internal": ["10.1.2.3"]}), policy)

    answers = await guard.resolve("Receiver.Internal.", 80, socket.AF_UNSPEC)

    assert [a["host"] for a in answers] == ["10.1.2.3"]


async def test_the_guard_keeps_only_addresses_of_the_family_asked_for() -> None:
    resolver = StaticResolver({"dual.example": ["8.8.8.8", "2001:4860:4860::8888"]})
    guard = GuardedResolver(resolver, DEFAULT)

    answers = await guard.resolve("dual.example", 80, socket.AF_INET6)

    assert [(a["host"], a["family"]) for a in answers] == [
        ("2001:4860:4860::8888", socket.AF_INET6)
    ]


async def test_a_name_that_does_not_resolve_raises_resolution_error() -> None:
    guard = GuardedResolver(StaticResolver({}), DEFAULT)

    with pytest.raises(ResolutionError, match=r"nowhere\.example"):
        await guard.resolve("nowhere.example", 80, socket.AF_UNSPEC)


def test_check_address_says_what_a_name_resolved_to() -> None:
    with pytest.raises(UrlRefusedError, match=r"evil\.example resolves to 127\.0\.0\.1") as refused:
        DEFAULT.check_address(ipaddress.ip_address("127.0.0.1"), host="evil.example")

    assert refused.value.reason == "internal_address"


def test_check_address_admits_public_addresses() -> None:
    DEFAULT.check_address(ipaddress.ip_address("93.184.215.14"), host="example.com")
