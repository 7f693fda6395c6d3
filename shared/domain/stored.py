"""Every format the service writes into the platform and reads back: one place for each.

- **Credential marker.** A credential the service creates ends its display name with
  ``[managed:{origin}]`` (origin: the request id, or ``rotation:{date}``), so the service can
  tell its own credentials from ones people added by hand, even when a crash left one
  without its value in Key Vault.
- **Federated credential mark.** A federated identity credential the service makes starts its
  description with ``[managed]``: only those are ever updated or removed.
- **Application tags.** The service tag (a setting), ``request:{requestId}``,
  ``requested-by:{requestedBy}`` and ``credential-lifetime:{ISO duration}`` (the lifetime
  rotation issues again). The owner reference is Graph's own ``serviceManagementReference``.
- **Key Vault.** One secret per application, ``app-{uniqueName}``; each credential's value is
  a version of it, tagged with the names below (``keyId`` links the version to its credential).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
from collections.abc import Iterable, Mapping

from shared.domain.durations import parse_duration

# -- the credential marker ------------------------------------------------------------------

_MARKER = re.compile(r"\[managed:(?P<origin>[^\]]*)\]$")
ROTATION_ORIGIN = "rotation"
DEFAULT_DESCRIPTION = "client secret"


def credential_name(description: str, origin: str) -> str:
    """The display name of a credential the service creates."""
    return f"{description} [managed:{origin}]"


def origin_of(display_name: str) -> str | None:
    """The origin of a credential the service created; None for any other credential."""
    match = _MARKER.search(display_name)
    return match["origin"] if match else None


def description_of(display_name: str) -> str:
    """The description a managed credential was created with, without its marker."""
    match = _MARKER.search(display_name)
    bare = display_name[: match.start()] if match else display_name
    return bare.strip() or DEFAULT_DESCRIPTION


def rotation_origin(now: dt.datetime) -> str:
    """Scheduled rotations of one day share an origin, so two concurrent workers' duplicates
    are settled and a redelivery recognises its own orphan."""
    return f"{ROTATION_ORIGIN}:{now.date().isoformat()}"


# -- the federated credential marker ---------------------------------------------------------

# Federated identity credentials have no display name or tags: the service's start their
# description with this mark (Graph keeps 600 characters; requests leave room for it).
FEDERATED_MARK = "[managed]"


def federated_description(description: str | None) -> str:
    """The description of a federated credential the service makes: the mark, then the request's."""
    return f"{FEDERATED_MARK} {description}" if description else FEDERATED_MARK


def is_service_federated(description: str | None) -> bool:
    """Whether a federated credential is the service's (made by it), by its description's mark."""
    return (description or "").startswith(FEDERATED_MARK)


# -- application tags -----------------------------------------------------------------------

REQUEST_TAG = "request:"
REQUESTED_BY_TAG = "requested-by:"
# The delivery that last wrote the application's properties: a new value at every write, so
# that a delivery which created an application before its lease was held can tell whether
# another delivery converged it meanwhile (shared.services.registration).
DELIVERY_TAG = "delivery:"
LIFETIME_TAG = "credential-lifetime:"
CREDENTIAL_TYPE_TAG = "credential-type:"
CERTIFICATE = "certificate"


def application_tags(
    service_tag: str,
    request_id: str,
    requested_by: str,
    lifetime: str | None,
    credential_type: str = "secret",
    delivery: str | None = None,
) -> tuple[str, ...]:
    """The tags a registration puts on its application: the service's, the last request that
    converged it and who asked; ``lifetime`` None: no credential. A certificate's application
    also says so (``credential-type:certificate``): rotation issues a certificate again. And
    ``delivery``, the delivery that writes them (``DELIVERY_TAG``)."""
    tags = [service_tag, f"{REQUEST_TAG}{request_id}", f"{REQUESTED_BY_TAG}{requested_by}"]
    if lifetime is not None:
        tags.append(f"{LIFETIME_TAG}{lifetime}")
        if credential_type != "secret":
            tags.append(f"{CREDENTIAL_TYPE_TAG}{credential_type}")
    if delivery is not None:
        tags.append(f"{DELIVERY_TAG}{delivery}")
    return tuple(tags)


def delivery_tag(tags: Iterable[str]) -> str | None:
    """The delivery that last wrote an application's properties (``DELIVERY_TAG``)."""
    return next((t[len(DELIVERY_TAG) :] for t in tags if t.startswith(DELIVERY_TAG)), None)


def credential_type_tag(tags: Iterable[str]) -> str | None:
    """The credential an application was registered with: ``secret``, ``certificate``, or None
    (no credential)."""
    if lifetime_tag(tags) is None:
        return None
    return next((t[len(CREDENTIAL_TYPE_TAG) :] for t in tags if t.startswith(CREDENTIAL_TYPE_TAG)), "secret")


def lifetime_tag(tags: Iterable[str]) -> str | None:
    """The secret lifetime recorded on an application, if it was registered with a secret."""
    return next((t[len(LIFETIME_TAG) :] for t in tags if t.startswith(LIFETIME_TAG)), None)


def lifetime_label(start: dt.datetime, end: dt.datetime) -> str:
    """A secret's lifetime as an ISO duration, recorded so that rotation issues the same."""
    for months in (3, 6, 12, 24):  # the portal's choices, in calendar months
        if parse_duration(f"P{months}M").add_to(start) == end:
            return f"P{months}M"
    return f"P{max((end - start).days, 1)}D"


# -- Key Vault --------------------------------------------------------------------------------

SECRET_CONTENT_TYPE = "application/vnd.ms-entra.client-secret"
SECRET_PREFIX = "app-"
# A certificate also makes a key and a secret of its name in the vault: its prefix keeps them
# apart from the ``app-`` secrets (``app-x-cert`` could be the secret of an app named ``x-cert``).
CERTIFICATE_PREFIX = "cert-"

# Tag names on each version of an application's secret.
KEY_ID = "keyId"
APP_ID = "appId"
UNIQUE_NAME = "uniqueName"
ORIGIN = "origin"
LIFETIME = "lifetime"
MANAGED_BY = "managedBy"
REQUESTED_BY = "requestedBy"
OWNER = "serviceManagementReference"
# Who asks for a scheduled rotation.
SCHEDULER = "rotation-scheduler"
# Added by decommission, so that a redelivery answers like the first delivery.
DECOMMISSIONED_BY = "decommissionedBy"
KIND = "kind"
RECORD = "decommission-record"
RECORD_VALUE = "decommissioned"  # not a secret: the value of a record version
OBJECT_ID = "objectId"
DISPLAY_NAME = "displayName"
ROLE_ASSIGNMENTS = "roleAssignmentsRemoved"
# On a certificate's versions besides the above: what rotation makes again.
EXPORTABLE = "exportable"
SUBJECT = "subject"


def secret_name(unique_name: str) -> str:
    """The Key Vault secret of an application (uniqueName is already a valid secret name)."""
    return f"{SECRET_PREFIX}{unique_name}"


def certificate_name(unique_name: str) -> str:
    """The Key Vault certificate of an application (its key and secret have the same name)."""
    return f"{CERTIFICATE_PREFIX}{unique_name}"


LEASE_PREFIX = "lease-"
LEASE_BLOBS = 1024


def lease_name(unique_name: str) -> str:
    """The blob whose lease makes one delivery at a time act on an application: one of
    ``LEASE_BLOBS`` fixed blobs, chosen by a hash of the uniqueName (case-insensitive in Entra,
    so both spellings share one lease). Fixed blobs exist before an application does, so even
    a new application's lease is one round trip; the price is that two applications whose
    names share a blob wait for each other (1 in ``LEASE_BLOBS``)."""
    digest = hashlib.sha256(unique_name.lower().encode()).digest()
    return lease_names()[int.from_bytes(digest[:4], "big") % LEASE_BLOBS]


@functools.cache
def lease_names() -> tuple[str, ...]:
    """Every lease blob, in the order Storage lists them."""
    return tuple(f"{LEASE_PREFIX}{n:03x}" for n in range(LEASE_BLOBS))


def version_tags(
    *,
    key_id: str | None,
    app_id: str,
    unique_name: str,
    origin: str,
    lifetime: str,
    service_tag: str,
    requested_by: str,
    owner: str | None,
) -> dict[str, str]:
    """The tags of a new version holding credential ``key_id``'s value (None for a certificate,
    which its thumbprint ties to its key credential). ``origin`` is the request id (or
    ``rotation:{date}``), ``requested_by`` who asked, ``owner`` the application's
    serviceManagementReference."""
    tags = {
        APP_ID: app_id,
        UNIQUE_NAME: unique_name,
        ORIGIN: origin,
        LIFETIME: lifetime,
        MANAGED_BY: service_tag.split(":", 1)[-1],
        REQUESTED_BY: requested_by,
    }
    if key_id is not None:
        tags[KEY_ID] = key_id
    if owner is not None:
        tags[OWNER] = owner
    return tags


def decommission_record(
    tags: Mapping[str, str],
    request_id: str,
    object_id: str,
    app_id: str,
    display_name: str,
    owner: str,
    role_assignments: int = 0,
) -> dict[str, str]:
    """A version's tags plus what a redelivered decommission needs to answer alike (and to
    refuse a copy with another owner reference, or leave alone a later application of the
    same name, once the application is gone)."""
    return {
        **tags,
        DECOMMISSIONED_BY: request_id,
        OBJECT_ID: object_id,
        APP_ID: app_id,
        DISPLAY_NAME: display_name,
        OWNER: owner,
        ROLE_ASSIGNMENTS: str(role_assignments),
    }


def removed_role_assignments(tags: Mapping[str, str]) -> int:
    """How many data-role assignments the decommission recorded in ``tags`` removed."""
    value = tags.get(ROLE_ASSIGNMENTS, "0")
    return int(value) if value.isdigit() else 0


def is_record(tags: Mapping[str, str]) -> bool:
    """A version written only to carry a decommission record (an application without a stored
    secret): its value is no secret, and it was never a credential's."""
    return tags.get(KIND) == RECORD
