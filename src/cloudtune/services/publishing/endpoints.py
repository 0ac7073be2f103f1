"""Where a submit may have this server send a job's outputs: an S3 endpoint a caller without
`provider.manage` names must be a public address. Otherwise the server would PUT into its own
network (a cloud's metadata service, a database on loopback, a LAN host) and the publish
error would tell the caller what answered there. Admins keep any endpoint (a LAN MinIO)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from cloudtune.errors import InvalidInputError

FIELD = "publish.s3.endpoint_url"
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def require_public_endpoint(endpoint_url: str) -> None:
    """400 invalid_publish unless every address the endpoint's host has now is public.

    Names are resolved here and each address checked. A name may resolve differently when
    the publish is made (DNS rebinding, or a record changed meanwhile): the runner checks
    again just before it uploads, which leaves only the moments between that check and the
    client's own lookup."""
    parts = urlsplit(endpoint_url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise _refused("must name a host that resolves") from None
    addresses = {str(info[4][0]) for info in found}
    if not addresses:
        raise _refused("must name a host that resolves")
    for text in addresses:
        if not is_public(ipaddress.ip_address(text.partition("%")[0])):
            raise _refused(
                "must be a public address: loopback, link-local, private, unspecified, "
                "multicast and reserved addresses (and names resolving to one) are refused; "
                "an admin may save such an endpoint in the publishing defaults"
            )


def is_public(address: IpAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        # ::ffff:127.0.0.1 and the like reach the IPv4 address they carry.
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return is_public(mapped)
    return not (
        address.is_loopback
        or address.is_link_local
        or address.is_private
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
        or not address.is_global  # shared (carrier NAT) space and the like
    )


def _refused(message: str) -> InvalidInputError:
    return InvalidInputError(f"`{FIELD}` {message}", code="invalid_publish", field=FIELD)
