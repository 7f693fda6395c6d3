"""Who may use the namespace: shared access signatures and Microsoft Entra tokens.

SAS (service-bus-sas): ``SharedAccessSignature sr={url-encoded resource URI}&sig={url-encoded
base64 HMAC-SHA256}&se={expiry, Unix seconds}&skn={key name}``, the signature computed with the
key over ``{sr as it appears in the token}\\n{se}``. A token grants access to its resource URI
and everything under it (``sr`` the namespace grants every entity). The namespace has one key,
``RootManageSharedAccessKey`` (Manage, Send, Listen), random per emulator run. Expiry is judged
on real time, like every token lifetime in the emulator (emulator.clock).

Entra (service-bus-authentication-and-authorization): a JWT from the emulated identity platform
for ``https://servicebus.azure.net`` (azure-servicebus asks for the scope
``https://servicebus.azure.net//.default``, so the audience may carry a trailing slash). Any
service principal of the tenant is accepted: the data-plane roles (Azure Service Bus Data
Sender/Receiver/Owner) are not modelled.

The namespace answers to its AMQP host and its HTTPS host (both 127.0.0.1, on two ports), so a
resource URI names either.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, unquote_plus

from emulator.identity import SERVICE_BUS_AUDIENCES, TokenRejected

if TYPE_CHECKING:
    from emulator.identity import IdentityPlatform

SAS_TOKEN_TYPE = "servicebus.windows.net:sastoken"
JWT_TOKEN_TYPE = "jwt"
KEY_NAME = "RootManageSharedAccessKey"

# verify_jwt(token) -> the token's expiry (Unix seconds), or raises Rejected
JwtVerifier = Callable[[str], float]


class Rejected(Exception):
    """A token refused; ``code`` is Service Bus's (``MalformedToken``, ``InvalidSignature``,
    ``ExpiredToken``, ``InvalidAudience``, ``MissingToken``), ``detail`` its wording."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = f"{code}: {detail}"


def split_uri(uri: str) -> tuple[str, str]:
    """(host, path) of a resource URI, lower-cased, the path without outer slashes; a URI
    without a scheme starts with its host (``sr=ns.servicebus.windows.net/queue``)."""
    rest = uri.split("://", 1)[1] if "://" in uri else uri
    host, _, path = rest.partition("/")
    return host.lower(), path.strip("/").lower()


@dataclass(frozen=True)
class Grant:
    """What a verified token allows: the resource path under the namespace ('' for all of it)
    until ``expires`` (Unix seconds)."""

    path: str
    expires: float

    def covers(self, path: str, now: float | None = None) -> bool:
        if (now if now is not None else time.time()) >= self.expires:
            return False
        path = path.strip("/").lower()
        return not self.path or path == self.path or path.startswith(self.path + "/")


def _fields(token: str) -> dict[str, str]:
    prefix = "SharedAccessSignature "
    if not token.startswith(prefix):
        raise Rejected(
            "MalformedToken",
            "The credentials contained in the authorization header are not in the correct format.",
        )
    fields: dict[str, str] = {}
    for part in token[len(prefix) :].strip().split("&"):
        name, sep, value = part.partition("=")
        if sep:
            fields[name.strip()] = value.strip()
    if not {"sr", "sig", "se", "skn"} <= set(fields):
        raise Rejected(
            "MalformedToken",
            "The credentials contained in the authorization header are not in the correct format.",
        )
    return fields


def verify_sas(token: str, resource: str, *, key_name: str, key: str, hosts: set[str]) -> Grant:
    """The grant of a SAS ``token`` presented for ``resource`` (a URI), or ``Rejected``."""
    fields = _fields(token)
    try:
        expiry = int(fields["se"])
    except ValueError:
        raise Rejected(
            "MalformedToken",
            "The credentials contained in the authorization header are not in the correct format.",
        ) from None
    expected = base64.b64encode(
        hmac.new(key.encode(), f"{fields['sr']}\n{expiry}".encode(), hashlib.sha256).digest()
    ).decode()
    if unquote(fields["skn"]) != key_name or not hmac.compare_digest(unquote(fields["sig"]), expected):
        raise Rejected("InvalidSignature", "The token has an invalid signature.")
    if expiry <= time.time():
        moment = dt.datetime.fromtimestamp(expiry, dt.UTC).strftime("%m/%d/%Y %H:%M:%S")
        raise Rejected("ExpiredToken", f"The token is expired. Expiration time: '{moment}'")
    host, path = split_uri(unquote_plus(fields["sr"]))
    grant = Grant(path, float(expiry))
    resource_host, resource_path = split_uri(resource)
    if host not in hosts or resource_host not in hosts or not grant.covers(resource_path):
        raise Rejected(
            "InvalidAudience",
            f"The token's audience '{unquote_plus(fields['sr'])}' does not grant access to '{resource}'.",
        )
    return grant


def verify_jwt(token: str, resource: str, *, verifier: JwtVerifier, hosts: set[str]) -> Grant:
    """The grant of an Entra token presented for ``resource``: all of it, until the token's
    ``exp``."""
    expires = verifier(token)
    host, path = split_uri(resource)
    if host not in hosts:
        raise Rejected("InvalidAudience", f"The resource '{resource}' is not in this namespace.")
    return Grant(path, expires)


def entra_verifier(identity: IdentityPlatform) -> JwtVerifier:
    """Checks an Entra token for Service Bus with the emulated identity platform; a refusal
    worded as Service Bus words it."""

    def verify(token: str) -> float:
        try:
            return float(identity.verify_token(token, SERVICE_BUS_AUDIENCES).expires_on)
        except TokenRejected as rejected:
            if rejected.reason == "expired":
                raise Rejected("ExpiredToken", "The token is expired.") from None
            if rejected.reason == "audience":
                raise Rejected(
                    "InvalidAudience", "The audience of the token is not valid for Service Bus."
                ) from None
            raise Rejected("MalformedToken", "The token could not be validated.") from None

    return verify
