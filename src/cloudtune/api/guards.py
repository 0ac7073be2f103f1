"""Guards at the HTTP edge, run before any route, authentication included.

- `HostGuard`: the server answers only the Host names it serves (`CLOUDTUNE_ALLOWED_HOSTS`),
  so a page on a DNS-rebinding domain cannot reach it through the user's browser, and it refuses
  cross-origin browser requests (an `Origin` that is not this server, `Sec-Fetch-Site:
  cross-site`). We serve no cross-origin clients: scripts, the SDK, trainers and providers send
  no `Origin`, so one rule fits every route, webhooks included.
- `ProxyHeaders`: the client address (and scheme) comes from `X-Forwarded-For` /
  `X-Forwarded-Proto` only when the direct peer is one of `CLOUDTUNE_TRUSTED_PROXIES`; anyone
  else could pick an address and with it a fresh login budget or a place on a webhook
  allowlist. uvicorn's own proxy handling is turned off wherever the server starts.

Both are checks the one edge middleware (cloudtune.api.edge) runs on every request, before
anything else; they make no per-request objects.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import Receive, Scope, Send

from cloudtune.api.errors import envelope
from cloudtune.settings import Settings

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_WILDCARD_BINDS = ("", "0.0.0.0", "::")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalize_host(name: str) -> str:
    """`[::1]` and `::1` are one host; names compare lowercased without a trailing dot."""
    name = name.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    return name[:-1] if name.endswith(".") else name


def split_host(value: str) -> tuple[str, int | None] | None:
    """A Host header (`name`, `name:port`, `[v6]:port`) as (host, port); None if malformed."""
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else None
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    else:  # a bare name, or a bare IPv6 address (not valid HTTP, but unambiguous)
        host, port_text = value, None
    if not host:
        return None
    if port_text is None:
        return normalize_host(host), None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    return normalize_host(host), int(port_text)


def allowed_hosts(settings: Settings) -> frozenset[str] | None:
    """The Host names this server answers; None means any (`*`)."""
    if settings.allowed_hosts is not None:
        if "*" in settings.allowed_hosts:
            return None
        return frozenset(normalize_host(h) for h in settings.allowed_hosts if h.strip())
    names = set(LOOPBACK_NAMES)
    if settings.host not in _WILDCARD_BINDS:
        names.add(normalize_host(settings.host))
    if settings.public_url and (public := urlsplit(settings.public_url).hostname):
        names.add(normalize_host(public))
    return frozenset(names)


def _public_origin(settings: Settings) -> tuple[str, str, int] | None:
    if not settings.public_url:
        return None
    return _origin_tuple(settings.public_url)


def _origin_tuple(origin: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a serialized origin such as `https://example.com:8443`."""
    try:
        parts = urlsplit(origin.strip())
        scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
    except ValueError:
        return None
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    return scheme, normalize_host(host), port or _DEFAULT_PORTS[scheme]


class HostGuard:
    """400 `host_not_allowed` for a Host this server does not serve; 403 `cross_origin_refused`
    for a request a browser sent from another origin.

    An `Origin` passes when it is this very server as the browser addressed it (same host and
    port as the Host header, which has itself passed the check) or the origin of
    `CLOUDTUNE_PUBLIC_URL` (a reverse proxy that rewrites Host). A page on another port of
    localhost is another origin, and is refused too, even though `Sec-Fetch-Site` calls it
    "same-site".
    """

    def __init__(self, settings: Settings) -> None:
        self.hosts = allowed_hosts(settings)
        self.public_origin = _public_origin(settings)

    def refusal(
        self, host: str | None, origin: str | None, fetch_site: str | None
    ) -> tuple[int, str, str] | None:
        """(status, code, detail) of the refusal for these headers' values; None: they pass."""
        # HTTP/1.0 may omit Host; a browser never does, so such a request is no rebinding page.
        addressed = split_host(host) if host is not None else None
        if host is not None and (
            addressed is None or (self.hosts is not None and addressed[0] not in self.hosts)
        ):
            return (
                400,
                "host_not_allowed",
                f"this server does not answer to the host {host!r}; add it to "
                "CLOUDTUNE_ALLOWED_HOSTS if it is one of this server's names",
            )
        if fetch_site == "cross-site" or (
            origin is not None and not self._same_origin(origin, addressed)
        ):
            return (
                403,
                "cross_origin_refused",
                "requests from another web origin are refused; scripts and the SDK send no "
                "Origin header",
            )
        return None

    def _same_origin(self, origin: str, addressed: tuple[str, int | None] | None) -> bool:
        parsed = _origin_tuple(origin)  # "null" (sandboxed frames, file: pages) is None
        if parsed is None:
            return False
        if parsed == self.public_origin:
            return True
        if addressed is None:
            return False
        scheme, origin_host, origin_port = parsed
        host, port = addressed
        return origin_host == host and origin_port == (port or _DEFAULT_PORTS[scheme])

    @staticmethod
    async def refuse(
        scope: Scope, receive: Receive, send: Send, status: int, code: str, detail: str
    ) -> None:
        log.debug("refused %s %s: %s", scope.get("method", "WS"), scope["path"], code)
        if scope["type"] == "websocket":
            # Closing before accepting makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": 1008, "reason": code})
            return
        await envelope(status, code, detail)(scope, receive, send)


def parse_networks(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"CLOUDTUNE_TRUSTED_PROXIES: {entry!r} is not an address or network"
            ) from None
    return tuple(networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d; compare them as IPv4.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class ProxyHeaders:
    """Rewrites the scope's `client` (and `scheme`) from `X-Forwarded-For` (and
    `X-Forwarded-Proto`) when, and only when, the direct peer is a trusted proxy.

    The client is the right-most address in `X-Forwarded-For` that is not itself a trusted
    proxy: each proxy appends the peer it saw, so everything left of that entry was written by
    the client and proves nothing. A value that is not an IP address leaves the peer in place.
    """

    def __init__(self, settings: Settings) -> None:
        self.proxies = parse_networks(settings.trusted_proxies or ())

    def _trusted(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        return address is not None and any(address in network for network in self.proxies)

    def apply(self, scope: Scope) -> None:
        """Rewrite an http or websocket scope in place."""
        client = scope.get("client")
        if self.proxies and client and self._trusted(_address(client[0])):
            self._resolve(scope)

    def _resolve(self, scope: Scope) -> None:
        forwarded: list[str] = []
        proto: str | None = None
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                forwarded.extend(value.decode("latin-1").split(","))
            elif name == b"x-forwarded-proto":
                proto = value.decode("latin-1").split(",")[-1].strip().lower()
        if forwarded:
            chosen = None
            for entry in reversed(forwarded):
                chosen = _address(entry)
                if chosen is None or not self._trusted(chosen):
                    break
            if chosen is not None:  # every hop a trusted proxy: the left-most is the client
                scope["client"] = (str(chosen), 0)
        if proto in ("http", "https"):
            if scope["type"] == "websocket":
                proto = "wss" if proto == "https" else "ws"
            scope["scheme"] = proto
