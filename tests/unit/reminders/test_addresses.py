"""Where a webhook may go: public addresses only (or an allow-listed network), whatever form the
address takes, and the request is pinned to the address checked."""

from __future__ import annotations

import ipaddress

import pytest

from reminders.delivery.addresses import (
    LOOPBACK,
    AddressGuard,
    RefusedAddress,
    is_public,
    parse_networks,
)

ANSWERS = {
    "hooks.example.vn": ["93.184.216.34"],
    "v6.example.vn": ["2606:2800:220:1:248:1893:25c8:1946"],
    "localhost": ["127.0.0.1", "::1"],
    "intranet.example.vn": ["10.1.2.3"],
    "metadata.example.vn": ["169.254.169.254"],
    "mixed.example.vn": ["93.184.216.34", "192.168.1.10"],
    "2130706433": ["127.0.0.1"],  # what the C resolver makes of a decimal address
}


async def resolve(host: str, port: int) -> list[str]:
    if host not in ANSWERS:
        raise OSError("Name or service not known")
    return ANSWERS[host]


def guard(*allowed: str) -> AddressGuard:
    return AddressGuard(parse_networks(",".join(allowed)), resolve)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.1",
        "192.0.2.1",
        "198.18.0.1",
        "240.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "2001:db8::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::a00:1",
        "2002:a00:1::",
    ],
)
def test_loopback_private_link_local_reserved_and_embedded_forms_are_not_public(address):
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "64:ff9b::808:808"]
)
def test_public_addresses_are_public(address):
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:5672/",
        "http://localhost:15672/api",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://intranet.example.vn/hook",
        "http://metadata.example.vn/latest/meta-data/",
        "https://169.254.169.254/",
        "http://mixed.example.vn/",
        "http://2130706433/",
        "http://0.0.0.0:8001/",
    ],
)
async def test_a_url_reaching_inside_the_network_is_refused(url):
    with pytest.raises(RefusedAddress) as refused:
        await guard().pin(url)
    assert "không được phép" in refused.value.message
    assert not any(a in refused.value.message for a in ("127.0.0.1", "10.1.2.3", "192.168"))


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://hooks.example.vn/x", "http:// hoặc https://"),
        ("https://user:pw@hooks.example.vn/x", "tên đăng nhập hay mật khẩu"),
        ("https://nowhere.example.vn/x", "Không tìm thấy máy chủ 'nowhere.example.vn'"),
        ("http:///x", "thiếu tên máy chủ"),
    ],
)
async def test_a_malformed_or_unknown_url_is_refused_saying_why(url, says):
    with pytest.raises(RefusedAddress) as refused:
        await guard().pin(url)
    assert says in refused.value.message


async def test_a_public_url_is_pinned_to_its_checked_address():
    pinned = await guard().pin("https://hooks.example.vn:8443/lhpn?x=1")
    assert pinned.url == "https://93.184.216.34:8443/lhpn?x=1"
    assert pinned.host == "hooks.example.vn:8443"
    assert pinned.extensions() == {"sni_hostname": "hooks.example.vn"}
    v6 = await guard().pin("http://v6.example.vn/x")
    assert v6.url == "http://[2606:2800:220:1:248:1893:25c8:1946]/x"
    literal = await guard().pin("http://93.184.216.34/x")
    assert literal.extensions() == {} and literal.host == "93.184.216.34"


async def test_an_allow_listed_network_serves_tests_and_development():
    assert (await guard("127.0.0.0/8", "::1").pin("http://localhost:9000/x")).url == (
        "http://127.0.0.1:9000/x"
    )
    assert (await guard("10.1.2.0/24").pin("http://intranet.example.vn/x")).url.startswith(
        "http://10.1.2.3"
    )
    with pytest.raises(RefusedAddress):
        await guard("10.1.2.0/24").pin("http://metadata.example.vn/")
    assert parse_networks("127.0.0.0/8, ::1") == LOOPBACK
