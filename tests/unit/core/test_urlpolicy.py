"""The URL policy: which outbound URLs runback may call. Pure: no connection is ever opened."""

from __future__ import annotations

import pytest

from runback.core.urlpolicy import LOOPBACK_ALLOW, MAX_URL_LENGTH, UrlPolicy
from runback.errors import ConfigError, UrlRefusedError

DEFAULT = UrlPolicy()


@pytest.mark.parametrize(
    "url",
    [
        "https://receiver.example.com/hook",  # the ordinary case
        "http://receiver.example.com/hook",  # plain http is allowed
        "https://receiver.example.com/hook?token=s3cr%2Ft&x=1",  # authenticated by the query
        "https://receiver.example.com:8443/hook",  # explicit port
        "HTTPS://Receiver.Example.COM/hook",  # scheme and host are case-insensitive
        "https://receiver.example.com./hook",  # fully qualified, trailing dot
        "https://8.8.8.8/hook",  # a public IPv4 literal
        "https://[2001:4860:4860::8888]/hook",  # a public IPv6 literal
        "https://172.32.0.1/hook",  # just outside 172.16.0.0/12
    ],
)
def test_public_urls_are_allowed(url: str) -> None:
    DEFAULT.check(url)


def test_check_keeps_the_query_string_byte_for_byte() -> None:
    parts = DEFAULT.check("https://receiver.example.com/hook?token=s3cr%2Ft&b=2&a=1")

    assert parts.query == "token=s3cr%2Ft&b=2&a=1"


def test_a_url_of_exactly_the_maximum_length_is_allowed() -> None:
    prefix = "https://receiver.example.com/"
    url = prefix + "a" * (MAX_URL_LENGTH - len(prefix))

    DEFAULT.check(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://receiver.example.com/file", "scheme_not_allowed"),  # not http(s)
        ("receiver.example.com/hook", "scheme_not_allowed"),  # no scheme at all
        ("https:///hook", "malformed"),  # no host
        ("https://receiver.example.com/" + "a" * MAX_URL_LENGTH, "too_long"),  # over 2048
        ("https://receiver.example.com/a b", "malformed"),  # space in the path
        ("https://receiver.example.com/a\tb", "malformed"),  # tab, which urlsplit drops
        (" https://receiver.example.com/", "malformed"),  # leading space
        ("https://receiver.example.com:99999/", "malformed"),  # port out of range
        ("https://receiver.example.com:http/", "malformed"),  # port not a number
        ("http://127.0.0.1/hook", "internal_address"),  # loopback
        ("http://127.8.9.10:8080/hook", "internal_address"),  # anywhere in 127.0.0.0/8
        ("http://[::1]/hook", "internal_address"),  # IPv6 loopback
        ("http://localhost/hook", "internal_address"),  # loopback name
        ("http://LOCALHOST./hook", "internal_address"),  # ...in capitals, fully qualified
        ("http://foo.localhost/hook", "internal_address"),  # RFC 6761: all of .localhost
        ("http://10.1.2.3/hook", "internal_address"),  # private 10/8
        ("http://192.168.1.1/hook", "internal_address"),  # private 192.168/16
        ("http://172.16.0.1/hook", "internal_address"),  # private 172.16/12
        ("http://169.254.169.254/latest/meta-data/", "internal_address"),  # cloud metadata
        ("http://[fe80::1%25eth0]/hook", "internal_address"),  # link-local with a zone id
        ("http://0.0.0.0/hook", "internal_address"),  # unspecified: reaches this machine
        ("http://[::]/hook", "internal_address"),  # IPv6 unspecified
        ("http://[::ffff:127.0.0.1]/hook", "internal_address"),  # IPv4-mapped loopback
        ("http://[::ffff:10.0.0.1]/hook", "internal_address"),  # IPv4-mapped private
        ("http://224.0.0.1/hook", "internal_address"),  # IPv4 multicast
        ("http://[ff02::1]/hook", "internal_address"),  # IPv6 multicast
        ("http://240.0.0.1/hook", "internal_address"),  # reserved 240/4
    ],
)
def test_refused_urls_say_why(url: str, reason: str) -> None:
    with pytest.raises(UrlRefusedError) as refused:
        DEFAULT.check(url)

    assert refused.value.reason == reason


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://\uff11\uff12\uff17.0.0.1/hook", "internal_address"),  # full-width digits
        ("http://127\u30020\u30020\u30021/hook", "internal_address"),  # ideographic dots
        ("http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/", "internal_address"),
        ("http://\u2603.net/hook", "malformed"),  # not a name IDNA 2008 allows
    ],
)
def test_hosts_are_judged_as_the_client_will_connect_to_them(url: str, reason: str) -> None:
    # Once accepted, 127.0.0.1 in full-width digits failed DNS and was retried for 45 h: its
    # host is 127.0.0.1 once normalised (IDNA / UTS-46), as the HTTP client encodes it.
    with pytest.raises(UrlRefusedError) as refused:
        DEFAULT.check(url)

    assert refused.value.reason == reason


def test_an_international_name_is_allowed_in_either_form() -> None:
    DEFAULT.check("https://b\u00fccher.example/hook")
    DEFAULT.check("https://xn--bcher-kva.example/hook")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.1/hook",  # inet_aton shorthand for 127.0.0.1
        "http://2130706433/hook",  # 127.0.0.1 as one decimal number
        "http://0x7f000001/hook",  # 127.0.0.1 as one hex number
        "http://0177.0.0.1/hook",  # octal first octet: 127.0.0.1
        "http://0/hook",  # 0.0.0.0, which reaches this machine
    ],
)
def test_shorthand_ipv4_literals_of_internal_addresses_are_refused(url: str) -> None:
    # getaddrinfo (what aiohttp's resolver calls) parses these forms as the loopback or
    # unspecified address without any DNS lookup, so they are literals as much as 127.0.0.1.
    with pytest.raises(UrlRefusedError) as refused:
        DEFAULT.check(url)

    assert refused.value.reason == "internal_address"


def test_refusal_of_an_internal_address_names_the_allow_list_setting() -> None:
    with pytest.raises(UrlRefusedError, match="RUNBACK_CALLBACK_ALLOW"):
        DEFAULT.check("http://127.0.0.1/hook")


@pytest.mark.parametrize(
    ("entries", "url"),
    [
        (["127.0.0.0/8"], "http://127.0.0.1:8080/hook"),  # a CIDR admits its addresses
        (["127.0.0.0/8"], "http://127.5.6.7/hook"),  # ...all of them
        (["10.0.0.0/8"], "http://10.20.30.40/hook"),  # a private network
        (["10.1.2.3"], "http://10.1.2.3/hook"),  # a single address
        (["::1"], "http://[::1]:9000/hook"),  # IPv6 loopback
        (["localhost"], "http://localhost:8000/hook"),  # a host name
        (["Receiver.Localhost."], "http://receiver.localhost/hook"),  # names fold case and dot
        (list(LOOPBACK_ALLOW), "http://127.0.0.1/hook"),  # the loopback preset: IPv4
        (list(LOOPBACK_ALLOW), "http://[::1]/hook"),  # ...IPv6
        (list(LOOPBACK_ALLOW), "http://localhost/hook"),  # ...and the name
    ],
)
def test_allow_list_admits_internal_destinations(entries: list[str], url: str) -> None:
    UrlPolicy.from_allow_list(entries).check(url)


@pytest.mark.parametrize(
    ("entries", "url"),
    [
        (["127.0.0.0/8"], "http://10.0.0.1/hook"),  # other private networks stay refused
        (["127.0.0.0/8"], "http://localhost/hook"),  # a network does not admit the name
        (["localhost"], "http://foo.localhost/hook"),  # a name does not admit its subdomains
        (["10.1.2.3"], "http://10.1.2.4/hook"),  # one address admits only itself
    ],
)
def test_allow_list_admits_nothing_beyond_its_entries(entries: list[str], url: str) -> None:
    with pytest.raises(UrlRefusedError):
        UrlPolicy.from_allow_list(entries).check(url)


def test_allow_list_ignores_blank_entries() -> None:
    assert UrlPolicy.from_allow_list(["", "  "]) == UrlPolicy()


@pytest.mark.parametrize(
    "entry",
    [
        "10.0.0.0/33",  # prefix length out of range
        "example.com/24",  # a slash on a name
        "http://example.com",  # a URL, not a host
        "not a host",  # spaces
        "*.example.com",  # wildcards are not supported
        "exa_mple.com",  # underscore
        "a" * 64 + ".example.com",  # a label over 63 characters
        "..",  # empty labels
    ],
)
def test_allow_list_rejects_garbage_entries(entry: str) -> None:
    with pytest.raises(ConfigError):
        UrlPolicy.from_allow_list([entry])
