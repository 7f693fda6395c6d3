"""Redirect URIs: only the forms Microsoft documents for each platform, nothing a browser or an
operating system could route somewhere unexpected.

Entra sends authorization codes and tokens to these addresses, so a redirect URI is where an
attacker would aim (learn.microsoft.com/entra/identity-platform/reply-url: https, with
exceptions for loopback; security-best-practices-for-app-registration: few, https, no
wildcards). What each platform accepts here:

- **web and spa**: ``https://`` to a fully qualified domain name, or ``http``/``https`` on
  loopback (``localhost``, ``127.0.0.1``, ``[::1]``) for local development;
- **publicClient** (mobile and desktop), the same, and the forms MSAL and RFC 8252 define for
  native apps: ``msal{clientId}://auth``, ``msauth.{bundleId}://auth`` (iOS/macOS broker),
  ``msauth://{package}/{signatureHash}`` (Android broker),
  ``ms-appx-web://microsoft.aad.brokerplugin/{clientId}`` (the Windows broker, WAM), and
  private-use schemes named by a reversed domain (``com.contoso.app:/auth``, RFC 8252 §7.1).

Refused everywhere: wildcards, fragments, user info, IP literals other than loopback (so
private, link-local and metadata addresses such as 169.254.169.254), single-label hosts
(resolved differently on each network), punycode host names (``xn--``, which can imitate
another name), and every other scheme: ``javascript:``, ``data:``, ``file:``,
``view-source:``, ``blob:``, ``about:``, ``intent:``, ``jar:``, ``myapp://`` and the
deprecated ``urn:ietf:wg:oauth:2.0:oob``.
"""

from __future__ import annotations

import ipaddress
import re

from pydantic_core import PydanticCustomError

from shared.messages.base import rule

# RFC 3986 characters, less the three the rules forbid: ' (breaks quoting), * (wildcard), # (fragment).
_URI_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?\[\]@!$&()+,;=%]+")
_HTTP_URI = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<host>\[[0-9A-Fa-f:.]+\]|[^/?:@\[\]]+)"
    r"(?::(?P<port>\d{1,5}))?(?P<rest>[/?].*)?"
)
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_MSAL = re.compile(r"(?i:msal)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}://auth/?")
_MSAUTH_APPLE = re.compile(r"(?i:msauth)\.[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+://auth/?")
_MSAUTH_ANDROID = re.compile(
    r"(?i:msauth)://[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)+/[A-Za-z0-9%+/=_-]+"
)
_WAM_BROKER = re.compile(
    r"(?i:ms-appx-web://microsoft\.aad\.brokerplugin/)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)
_ANY_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:.+")
_REVERSE_DNS = re.compile(
    r"(?P<scheme>[a-z][a-z0-9-]*(?:\.[a-z][a-z0-9-]*)+):/{1,2}[^/].*|[a-z][a-z0-9-]*(?:\.[a-z][a-z0-9-]*)+:/"
)

WEB_FORMS = (
    "https://host.domain[:port][/path], or http://localhost, http://127.0.0.1 or http://[::1] for development"
)
PUBLIC_CLIENT_FORMS = (
    f"{WEB_FORMS}; or msal{{clientId}}://auth, msauth.{{bundleId}}://auth, msauth://{{package}}/{{signature}}, "
    "ms-appx-web://microsoft.aad.brokerplugin/{clientId}, or a private-use scheme named by a reversed "
    "domain such as com.contoso.app:/auth"
)


def _characters(value: str) -> None:
    if "*" in value:
        raise rule("wildcard_not_allowed", "Redirect URIs must not contain wildcards (*).")
    if "#" in value:
        raise rule("fragment_not_allowed", "Redirect URIs must not contain a fragment (#).")
    if not _URI_CHARACTERS.fullmatch(value):
        raise rule(
            "invalid_character",
            "Redirect URIs may contain only URI characters: no whitespace, quotes or control characters.",
        )


def _host_problem(host: str) -> PydanticCustomError | None:
    """Why ``host`` (lower-cased, not loopback) may not receive tokens, or None."""
    if host.startswith("[") or _is_ip_literal(host):
        return rule(
            "ip_address_not_allowed",
            "Must not be an IP address other than loopback: private, link-local and public addresses "
            "are refused; use a host name.",
        )
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return rule("invalid_host", "The host must be a DNS name of letters, digits, '-' and '.'.")
    if len(labels) < 2:
        return rule(
            "single_label_host",
            "The host must be a fully qualified domain name: single-label names resolve differently on "
            "each network.",
        )
    if any(label.startswith("xn--") for label in labels):
        return rule(
            "punycode_host",
            "Internationalised (punycode, xn--) host names are refused: they can imitate another name.",
        )
    return None


def _is_ip_literal(host: str) -> bool:
    # A top-level domain is never numeric, so a numeric last label means an address in any of
    # the forms resolvers accept (dotted, decimal, octal, hexadecimal).
    try:
        ipaddress.ip_address(host)
    except ValueError:
        last = host.rsplit(".", 1)[-1]
        return last.isdigit() or re.fullmatch(r"0x[0-9a-f]+", last) is not None
    return True


def http_host(value: str) -> str | None:
    """The lower-cased host of an http(s) redirect URI, or None for any other form."""
    match = _HTTP_URI.fullmatch(value)
    if match is None or match["scheme"].lower() not in ("http", "https"):
        return None
    return match["host"].lower()


def is_loopback(host: str) -> bool:
    return host in _LOOPBACK_HOSTS


def _http_uri(value: str) -> bool:
    """Checks an http(s) URI; False when ``value`` is not one."""
    match = _HTTP_URI.fullmatch(value)
    if match is None:
        return False
    scheme = match["scheme"].lower()
    if scheme not in ("http", "https"):
        return False
    if int(match["port"] or 0) > 65535:
        raise rule("invalid_redirect_uri", "The port must be at most 65535.")
    host = match["host"].lower()
    if is_loopback(host):
        return True
    if scheme == "http":
        raise rule(
            "insecure_redirect_uri",
            "http:// is allowed only on loopback (localhost, 127.0.0.1); use https://.",
        )
    problem = _host_problem(host)
    if problem is not None:
        raise problem
    return True


def web_redirect_uri(value: str) -> str:
    """A web or single-page application redirect URI, or a validation error naming the rule."""
    _characters(value)
    if not _http_uri(value):
        raise rule("invalid_redirect_uri", f"Must be {WEB_FORMS}.")
    return value


def public_client_redirect_uri(value: str) -> str:
    """A mobile or desktop (public client) redirect URI, or a validation error naming the rule."""
    _characters(value)
    if _http_uri(value):
        return value
    native = (_MSAL, _MSAUTH_APPLE, _MSAUTH_ANDROID, _WAM_BROKER, _REVERSE_DNS)
    if any(form.fullmatch(value) for form in native):
        return value
    if not _ANY_SCHEME.fullmatch(value) or value.lower().startswith(("http://", "https://")):
        raise rule("invalid_redirect_uri", f"Must be {PUBLIC_CLIENT_FORMS}.")
    raise rule("scheme_not_allowed", f"Must be {PUBLIC_CLIENT_FORMS}.")
