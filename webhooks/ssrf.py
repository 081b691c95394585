"""Refuse webhook URLs that reach into our own network, and connect only to what was checked.

A URL's host is resolved once; every address it resolves to must be public. The request is then
sent to that checked address (the Host header and TLS SNI keep the original name), so a DNS
answer that changes between the check and the connect (rebinding) cannot redirect it.

Refused: loopback, private, link-local, CGNAT, multicast, unspecified, reserved and cloud
metadata addresses, also when written as IPv4-mapped/compatible, 6to4, Teredo or NAT64 IPv6, or
in the short and integer IPv4 forms that ``inet_aton`` accepts (``127.1``, ``2130706433``).
"""

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

type IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = {"http", "https"}
DEFAULT_PORTS = {"http": 80, "https": 443}

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
    )
)
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64_PREFIXES = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")

# The dotted, short, octal, hex and integer IPv4 forms that inet_aton (and so many resolvers and
# HTTP clients) accept: 127.1, 0x7f.1, 0177.0.0.1, 2130706433.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}$")


class UnsafeUrl(ValueError):
    """The URL is malformed, does not resolve, or reaches an address that is not public."""


@dataclass(frozen=True)
class Target:
    """Where to send: the checked address, and the names the receiver must still see."""

    scheme: str
    hostname: str
    port: int
    addresses: tuple[IPAddress, ...]
    path: str

    @property
    def address(self) -> IPAddress:
        return self.addresses[0]

    @property
    def connect_url(self) -> str:
        return self.url_for(self.address)

    def url_for(self, address: IPAddress) -> str:
        host = f"[{address}]" if address.version == 6 else str(address)
        return f"{self.scheme}://{host}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        if self.port == DEFAULT_PORTS[self.scheme]:
            return host
        return f"{host}:{self.port}"


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    embedded = []
    if address.ipv4_mapped is not None:
        embedded.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        embedded.append(address.sixtofour)
    if address.teredo is not None:
        embedded.extend(address.teredo)
    if any(address in prefix for prefix in NAT64_PREFIXES) or (
        address in IPV4_COMPATIBLE and int(address) > 1
    ):
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return embedded


def refusal_reason(address: IPAddress) -> str | None:
    """Why this address may not receive webhooks, or None when it is a public address."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            address = ipaddress.IPv6Address(str(address).split("%", 1)[0])
        embedded = _embedded_ipv4(address)
        if embedded:
            for inner in embedded:
                if reason := refusal_reason(inner):
                    return f"{reason} (embedded in {address})"
            return None
    checks = (
        (address.is_loopback, "a loopback address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (isinstance(address, ipaddress.IPv4Address) and address in CGNAT, "a CGNAT address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a public address"),
    )
    for refused, reason in checks:
        if refused:
            return reason
    return None


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_HOST.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            raise UnsafeUrl(f"'{host}' is not a valid IPv4 address.") from None
    return None


def _resolve(host: str, port: int) -> list[IPAddress]:
    if (literal := _literal_address(host)) is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeUrl(f"The host '{host}' does not resolve.") from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeUrl(f"The host '{host}' does not resolve.")
    return addresses


def resolve_target(url: str, *, allow_private: bool) -> Target:
    """Parse, resolve and check ``url``; raise UnsafeUrl naming the problem."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"Not a valid URL: {exc}.") from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise UnsafeUrl("Only http and https URLs are allowed.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("Credentials in the URL are not allowed; put them in the path or query.")
    hostname = (parts.hostname or "").rstrip(".")
    if not hostname:
        raise UnsafeUrl("The URL has no host.")
    try:
        hostname = hostname.encode("idna").decode("ascii")
    except UnicodeError:
        raise UnsafeUrl(f"'{hostname}' is not a valid host name.") from None
    port = port or DEFAULT_PORTS[scheme]
    addresses = _resolve(hostname, port)
    if not allow_private:
        for address in addresses:
            if reason := refusal_reason(address):
                raise UnsafeUrl(f"The host '{hostname}' resolves to {address}: {reason}.")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(
        scheme=scheme, hostname=hostname, port=port, addresses=tuple(addresses), path=path
    )


def check_url(url: str, *, allow_private: bool) -> None:
    resolve_target(url, allow_private=allow_private)
