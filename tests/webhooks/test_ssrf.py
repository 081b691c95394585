import ipaddress
import socket

import pytest

from webhooks import ssrf

REFUSED = [
    "http://127.0.0.1/",
    "http://127.1/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
    "http://0x7f.1/",
    "http://localhost:8000/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::127.0.0.1]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[64:ff9b::a00:1]/",
    "http://[64:ff9b:1::a9fe:a9fe]/",
    "http://[2002:7f00:1::]/",
    "http://[2002:a9fe:a9fe::]/",
    "http://10.0.0.5/",
    "http://172.16.3.4/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/",
    "http://100.64.0.1/",
    "http://100.100.100.200/",
    "http://192.0.0.192/",
    "http://224.0.0.1/",
    "http://[ff02::1]/",
    "http://0.0.0.0/",
    "http://0/",
    "http://[::]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://198.18.0.1/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_private_addresses_are_refused(url):
    with pytest.raises(ssrf.UnsafeUrl):
        ssrf.check_url(url, allow_private=False)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://93.184.215.14/",
        "file:///etc/passwd",
        "http:///path",
        "http://user:pw@93.184.215.14/",
        "http://93.184.215.14:99999/",
        "gopher://93.184.215.14/",
        "not a url",
    ],
)
def test_malformed_urls_are_refused(url):
    with pytest.raises(ssrf.UnsafeUrl):
        ssrf.check_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://93.184.215.14/hooks",
        "http://[2606:4700:4700::1111]:8080/x",
        "http://[::ffff:93.184.215.14]/",
        "http://[64:ff9b::5db8:d70e]/",
    ],
)
def test_public_addresses_are_allowed(url):
    ssrf.check_url(url, allow_private=False)


def test_the_setting_allows_private_addresses():
    ssrf.check_url("http://127.0.0.1:8000/", allow_private=True)


def test_a_name_resolving_to_any_private_address_is_refused(monkeypatch):
    def resolve(host, port, *args, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(ssrf.UnsafeUrl, match=r"10\.1\.2\.3"):
        ssrf.check_url("https://hooks.example.com/", allow_private=False)


def test_an_unresolvable_name_is_refused(monkeypatch):
    def resolve(*args, **kwargs):
        raise socket.gaierror("no such host")

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(ssrf.UnsafeUrl, match="does not resolve"):
        ssrf.check_url("https://nowhere.example.com/", allow_private=False)


def test_the_target_connects_to_the_checked_address_under_the_original_name(monkeypatch):
    answers = iter(["93.184.215.14", "127.0.0.1"])  # a rebinding resolver

    def resolve(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    target = ssrf.resolve_target("https://Hooks.Example.com/in?x=1", allow_private=False)
    assert target.address == ipaddress.ip_address("93.184.215.14")
    assert target.connect_url == "https://93.184.215.14:443/in?x=1"
    assert target.host_header == "hooks.example.com"
    assert target.hostname == "hooks.example.com"


def test_ipv6_targets_are_bracketed():
    target = ssrf.resolve_target("http://[2606:4700:4700::1111]:8080/x", allow_private=False)
    assert target.connect_url == "http://[2606:4700:4700::1111]:8080/x"
    assert target.host_header == "[2606:4700:4700::1111]:8080"
