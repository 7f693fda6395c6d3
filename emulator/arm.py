"""Azure Resource Manager, as much of it as role assignments need: the
``Microsoft.Authorization/roleAssignments`` API (api-version 2022-04-01, what
azure-mgmt-authorization 4.0's ``v2022_04_01`` client sends), Azure RBAC's decision of who may
do what where, and the role definitions both this API and the Health Data Services data planes
(emulator.healthdata) decide by.

Imitated as Azure documents it (role-assignments-rest, delegate-role-assignments-examples,
conditions-format, troubleshooting; platform-facts.md "Azure RBAC on FHIR and DICOM services"):

- ``PUT {scope}/providers/Microsoft.Authorization/roleAssignments/{guid}`` creates (201). A
  re-PUT of the same name with the same scope, role and principal succeeds again (201) and may
  change ``description`` and ``condition``; another role, principal or scope under that name is
  409 ``RoleAssignmentUpdateNotPermitted``; the same scope, role and principal under another
  name is 409 ``RoleAssignmentExists``. At most 4,000 assignments per subscription.
- the principal must exist in the directory. One created less than
  ``PRINCIPAL_REPLICATION_LAG`` seconds ago (emulator clock) has not replicated to Azure RBAC
  yet: without ``principalType`` the PUT is 400 ``PrincipalNotFound``; with it ARM takes the
  caller's word (the documented way past the delay). A ``principalType`` that contradicts a
  visible principal is 400 ``UnmatchedPrincipalType``.
- ``GET``/``DELETE`` one assignment (DELETE: 200 with it, 204 when there is none), and list at
  a scope: no filter gives assignments at, above and below it; ``atScope()`` at or above;
  ``principalId eq '{id}'`` and ``assignedTo('{id}')`` narrow to a principal.
- scopes are the subscription, its resource groups and the resources seeded in them
  (404 ``SubscriptionNotFound`` / ``ResourceGroupNotFound`` / ``ResourceNotFound``); ids compare
  case-insensitively, as ARM's do.
- authentication: a bearer token for https://management.azure.com (401 ``AuthenticationFailed``,
  ``InvalidAuthenticationTokenAudience``, ``ExpiredAuthenticationToken``, with ARM's
  ``WWW-Authenticate`` challenge); authorization: the action
  ``Microsoft.Authorization/roleAssignments/read|write|delete`` must be granted to the caller by
  a role assigned at the scope or above it (``actions`` minus ``notActions``), and that
  assignment's ABAC condition (version 2.0) must hold: for a write against
  ``@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId|PrincipalId|PrincipalType]``,
  for a delete against ``@Resource[...]``. Else 403 ``AuthorizationFailed``.

The control plane sees every change at once; the data planes see an assignment only
``propagation_seconds`` after it was made and keep honouring a deleted one as long
(``ResourceManager.data_permitted``), as Azure documents that role assignments take minutes to
apply. Errors are ARM's ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from emulator.clock import Clock, iso, parse_iso
from emulator.errors import ARM_PREFIX, PlatformError, request_id_of
from emulator.identity import MANAGEMENT_AUDIENCE, Principal, TokenRejected

if TYPE_CHECKING:
    from emulator.directory import Directory
    from emulator.identity import IdentityPlatform

Json = dict[str, Any]

API_VERSION = "2022-04-01"
ASSIGNMENT_TYPE = "Microsoft.Authorization/roleAssignments"
# Seconds before a new principal is visible to Azure RBAC (emulator clock).
PRINCIPAL_REPLICATION_LAG = 60
# Seconds before a role assignment change reaches the data planes (emulator clock).
DEFAULT_PROPAGATION_SECONDS = 300
MAX_ASSIGNMENTS_PER_SUBSCRIPTION = 4000
# The audiences ARM accepts (its InvalidAuthenticationTokenAudience message lists them).
MANAGEMENT_AUDIENCES = (
    "https://management.core.windows.net/",
    "https://management.core.windows.net",
    f"{MANAGEMENT_AUDIENCE}/",
    MANAGEMENT_AUDIENCE,
)
PRINCIPAL_TYPES = ("User", "Group", "ServicePrincipal", "ForeignGroup", "Device")

READ = "Microsoft.Authorization/roleAssignments/read"
WRITE = "Microsoft.Authorization/roleAssignments/write"
DELETE = "Microsoft.Authorization/roleAssignments/delete"

# -- role definitions: the one table Resource Manager and the data planes decide by ------------------

FHIR_RESOURCES = "Microsoft.HealthcareApis/workspaces/fhirservices/resources"
DICOM_RESOURCES = "Microsoft.HealthcareApis/workspaces/dicomservices/resources"
# Azure API for FHIR's data actions, which the built-in FHIR roles also list.
_API_FOR_FHIR = "Microsoft.HealthcareApis/services/fhir/resources"
FHIR_READ = f"{FHIR_RESOURCES}/read"
DICOM_READ = f"{DICOM_RESOURCES}/read"

OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
READER = "acdd72a7-3c48-4ba9-8f71-ed9a3bc3fc8b"
USER_ACCESS_ADMINISTRATOR = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
RBAC_ADMINISTRATOR = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"
FHIR_DATA_READER = "4c8d0bbc-75d3-4935-991f-5f3c56d81508"
FHIR_DATA_WRITER = "3f88fce4-5892-4214-ae73-ba5294559913"
FHIR_DATA_CONTRIBUTOR = "5a1fc7df-4bf1-4951-a576-89034ee01acd"
FHIR_DATA_EXPORTER = "3db33094-8700-4567-8da5-1501d4e7e843"
FHIR_DATA_IMPORTER = "4465e953-8ced-4406-a58e-0f6e3f3b530b"
FHIR_DATA_CONVERTER = "a1705bd2-3a8f-45a5-8683-466fcfd5cc24"
FHIR_SMART_USER = "4ba50f17-9666-485c-a643-ff00808643f0"
DICOM_DATA_OWNER = "58a3b984-7adf-4c20-983a-32417c86fbc8"
DICOM_DATA_READER = "e89c7a3c-2f64-4fa1-a847-3e4c9ba4283a"

FHIR_DATA_ROLES = (
    FHIR_DATA_READER,
    FHIR_DATA_WRITER,
    FHIR_DATA_CONTRIBUTOR,
    FHIR_DATA_EXPORTER,
    FHIR_DATA_IMPORTER,
    FHIR_DATA_CONVERTER,
    FHIR_SMART_USER,
)
DICOM_DATA_ROLES = (DICOM_DATA_OWNER, DICOM_DATA_READER)
HEALTH_DATA_ROLES = FHIR_DATA_ROLES + DICOM_DATA_ROLES


def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.IGNORECASE)


def action_matches(pattern: str, action: str) -> bool:
    """Azure's action patterns: case-insensitive, ``*`` standing for any characters."""
    return bool(_wildcard(pattern).fullmatch(action))


@dataclass(frozen=True)
class RoleDefinition:
    """A built-in role: what it grants on the control plane (``actions``) and on data planes
    (``data_actions``), each minus its ``not_`` counterpart."""

    id: str
    role_name: str
    description: str
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()

    def permits(self, action: str, *, data: bool = False) -> bool:
        granted, denied = (
            (self.data_actions, self.not_data_actions) if data else (self.actions, self.not_actions)
        )
        return any(action_matches(p, action) for p in granted) and not any(
            action_matches(p, action) for p in denied
        )


ROLE_DEFINITIONS: dict[str, RoleDefinition] = {
    role.id: role
    for role in (
        RoleDefinition(OWNER, "Owner", "Grants full access to manage all resources.", actions=("*",)),
        RoleDefinition(
            CONTRIBUTOR,
            "Contributor",
            "Grants full access to manage all resources, but does not allow you to assign roles.",
            actions=("*",),
            not_actions=(
                "Microsoft.Authorization/*/Delete",
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/elevateAccess/Action",
            ),
        ),
        RoleDefinition(READER, "Reader", "View all resources.", actions=("*/read",)),
        RoleDefinition(
            USER_ACCESS_ADMINISTRATOR,
            "User Access Administrator",
            "Lets you manage user access to Azure resources.",
            actions=("*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"),
        ),
        RoleDefinition(
            RBAC_ADMINISTRATOR,
            "Role Based Access Control Administrator",
            "Manage access to Azure resources by assigning roles using Azure RBAC.",
            actions=(
                "Microsoft.Authorization/roleAssignments/write",
                "Microsoft.Authorization/roleAssignments/delete",
                "*/read",
                "Microsoft.Support/*",
            ),
        ),
        RoleDefinition(
            FHIR_DATA_READER,
            "FHIR Data Reader",
            "Role allows user or principal to read FHIR Data",
            data_actions=(f"{_API_FOR_FHIR}/read", f"{FHIR_RESOURCES}/read"),
        ),
        RoleDefinition(
            FHIR_DATA_WRITER,
            "FHIR Data Writer",
            "Role allows user or principal to read and write FHIR Data",
            data_actions=(
                f"{_API_FOR_FHIR}/read",
                f"{_API_FOR_FHIR}/write",
                f"{FHIR_RESOURCES}/read",
                f"{FHIR_RESOURCES}/write",
            ),
        ),
        RoleDefinition(
            FHIR_DATA_CONTRIBUTOR,
            "FHIR Data Contributor",
            "Role allows user or principal full access to FHIR Data",
            data_actions=(f"{_API_FOR_FHIR}/*", f"{FHIR_RESOURCES}/*"),
        ),
        RoleDefinition(
            FHIR_DATA_EXPORTER,
            "FHIR Data Exporter",
            "Role allows user or principal to read and export FHIR Data",
            data_actions=(
                f"{_API_FOR_FHIR}/read",
                f"{_API_FOR_FHIR}/export/action",
                f"{FHIR_RESOURCES}/read",
                f"{FHIR_RESOURCES}/export/action",
            ),
        ),
        RoleDefinition(
            FHIR_DATA_IMPORTER,
            "FHIR Data Importer",
            "Role allows user or principal to read and import FHIR Data",
            data_actions=(f"{FHIR_RESOURCES}/read", f"{FHIR_RESOURCES}/import/action"),
        ),
        RoleDefinition(
            FHIR_DATA_CONVERTER,
            "FHIR Data Converter",
            "Role allows user or principal to convert data from legacy format to FHIR",
            data_actions=(f"{_API_FOR_FHIR}/convertData/action", f"{FHIR_RESOURCES}/convertData/action"),
        ),
        RoleDefinition(
            FHIR_SMART_USER,
            "FHIR SMART User",
            "Role allows user to access FHIR Service according to SMART on FHIR specification",
            data_actions=(f"{FHIR_RESOURCES}/read", f"{FHIR_RESOURCES}/write"),
        ),
        RoleDefinition(
            DICOM_DATA_OWNER,
            "DICOM Data Owner",
            "Full access to DICOM data.",
            data_actions=(f"{DICOM_RESOURCES}/*",),
        ),
        RoleDefinition(
            DICOM_DATA_READER,
            "DICOM Data Reader",
            "Read and search DICOM data.",
            data_actions=(f"{DICOM_RESOURCES}/read",),
        ),
    )
}


def role_definition_id(subscription_id: str, role_id: str) -> str:
    return f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role_id}"


def constrained_delegation_condition(role_ids: Iterable[str]) -> str:
    """The documented condition that lets a Role Based Access Control Administrator assign and
    remove only the roles ``role_ids`` (delegate-role-assignments-examples)."""
    ids = ", ".join(role_ids)
    return (
        "((!(ActionMatches{'Microsoft.Authorization/roleAssignments/write'})) OR "
        f"(@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {{{ids}}})) "
        "AND ((!(ActionMatches{'Microsoft.Authorization/roleAssignments/delete'})) OR "
        f"(@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {{{ids}}}))"
    )


# -- ABAC conditions (conditionVersion 2.0) --------------------------------------------------------


class ConditionError(ValueError):
    """A condition outside the grammar this emulator knows (the PUT answers InvalidCondition)."""


_CONDITION_TOKEN = re.compile(
    r"\s*(?:(?P<op>&&|\|\||[(){},!])|(?P<string>'[^']*')|(?P<attr>@\w+\[[^\]]*\])|(?P<word>[\w.:/\-]+))"
)
_ATTRIBUTE_PREFIX = "microsoft.authorization/roleassignments:"
_GUID_ATTRIBUTES = ("roledefinitionid", "principalid")
_STRING_ATTRIBUTES = ("principaltype",)
_QUANTIFIERS = ("foranyofanyvalues", "foranyofallvalues", "forallofanyvalues", "forallofallvalues")
_GUID_OPERATORS = ("guidequals", "guidnotequals")
_STRING_OPERATORS = ("stringequals", "stringnotequals", "stringequalsignorecase", "stringnotequalsignorecase")


@dataclass(frozen=True)
class _Not:
    operand: _Node


@dataclass(frozen=True)
class _All:
    operands: tuple[_Node, ...]


@dataclass(frozen=True)
class _Any:
    operands: tuple[_Node, ...]


@dataclass(frozen=True)
class _ActionMatches:
    pattern: str


@dataclass(frozen=True)
class _Compare:
    source: Literal["request", "resource"]
    attribute: str  # roledefinitionid | principalid | principaltype
    quantifier: str | None
    operator: str
    values: tuple[str, ...]


_Node = _Not | _All | _Any | _ActionMatches | _Compare


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos, text = 0, text.strip()
    while pos < len(text):
        match = _CONDITION_TOKEN.match(text, pos)
        if match is None or match.lastgroup is None:
            raise ConditionError(f"unexpected text at position {pos}: {text[pos : pos + 20]!r}")
        out.append(match.group(match.lastgroup))
        pos = match.end()
    return out


class _Parser:
    """Recursive descent over ``expr := term (OR term)*; term := unary (AND unary)*;
    unary := (NOT | !) unary | '(' expr ')' | ActionMatches{'…'} | @Source[attr] op values``."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise ConditionError("the condition ends too early")
        self.pos += 1
        return token

    def _expect(self, token: str) -> None:
        got = self._take()
        if got != token:
            raise ConditionError(f"expected {token!r}, found {got!r}")

    def _at(self, *words: str) -> bool:
        token = self._peek()
        return token is not None and token.upper() in words

    def parse(self) -> _Node:
        node = self._or()
        if self._peek() is not None:
            raise ConditionError(f"unexpected {self._peek()!r}")
        return node

    def _or(self) -> _Node:
        operands = [self._and()]
        while self._at("OR", "||"):
            self._take()
            operands.append(self._and())
        return operands[0] if len(operands) == 1 else _Any(tuple(operands))

    def _and(self) -> _Node:
        operands = [self._unary()]
        while self._at("AND", "&&"):
            self._take()
            operands.append(self._unary())
        return operands[0] if len(operands) == 1 else _All(tuple(operands))

    def _unary(self) -> _Node:
        if self._at("NOT", "!"):
            self._take()
            return _Not(self._unary())
        token = self._take()
        if token == "(":
            node = self._or()
            self._expect(")")
            return node
        if token.lower() == "actionmatches":
            self._expect("{")
            pattern = self._take()
            if not pattern.startswith("'"):
                raise ConditionError("ActionMatches wants a quoted action")
            self._expect("}")
            return _ActionMatches(pattern[1:-1])
        if token.startswith("@"):
            return self._compare(token)
        raise ConditionError(f"unexpected {token!r}")

    def _compare(self, attribute: str) -> _Compare:
        source, _, name = attribute[1:-1].partition("[")
        if source.lower() not in ("request", "resource"):
            raise ConditionError(f"unsupported attribute source @{source}")
        if not name.lower().startswith(_ATTRIBUTE_PREFIX):
            raise ConditionError(f"unsupported attribute {name!r}")
        short = name.lower().removeprefix(_ATTRIBUTE_PREFIX)
        if short not in _GUID_ATTRIBUTES + _STRING_ATTRIBUTES:
            raise ConditionError(f"unsupported attribute {name!r}")
        quantifier, _, operator = self._take().lower().rpartition(":")
        if quantifier and quantifier not in _QUANTIFIERS:
            raise ConditionError(f"unsupported operator {quantifier!r}")
        guid = short in _GUID_ATTRIBUTES
        if operator not in (_GUID_OPERATORS if guid else _STRING_OPERATORS):
            raise ConditionError(f"operator {operator!r} does not apply to {name}")
        values = self._values(guid)
        if not quantifier and len(values) != 1:
            raise ConditionError(f"{operator} compares with one value; a set needs ForAnyOf/ForAllOf")
        return _Compare(
            "request" if source.lower() == "request" else "resource",
            short,
            quantifier or None,
            operator,
            values,
        )

    def _values(self, guid: bool) -> tuple[str, ...]:
        def value() -> str:
            token = self._take()
            if guid:
                try:
                    return str(uuid.UUID(token))
                except ValueError:
                    raise ConditionError(f"{token!r} is not a GUID") from None
            if not token.startswith("'"):
                raise ConditionError(f"{token!r} is not a quoted string")
            return token[1:-1]

        if self._peek() != "{":
            return (value(),)
        self._take()
        values = [value()]
        while self._peek() == ",":
            self._take()
            values.append(value())
        self._expect("}")
        return tuple(values)


def _compare(operator: str, left: str, right: str) -> bool:
    if operator.startswith("guid"):
        equal = left.lower() == right.lower()
    elif operator.endswith("ignorecase"):
        equal = left.casefold() == right.casefold()
    else:
        equal = left == right
    return equal if "notequals" not in operator else not equal


@dataclass(frozen=True)
class Condition:
    """A parsed ABAC condition, evaluated for one action against the request's and the
    resource's attributes (``{"roledefinitionid": [...], ...}``; absent: no value)."""

    text: str
    root: _Node

    @classmethod
    def parse(cls, text: str) -> Condition:
        return cls(text, _Parser(text).parse())

    def evaluate(
        self,
        action: str,
        request: Mapping[str, Sequence[str]],
        resource: Mapping[str, Sequence[str]],
    ) -> bool:
        def run(node: _Node) -> bool:
            if isinstance(node, _Not):
                return not run(node.operand)
            if isinstance(node, _All):
                return all(run(n) for n in node.operands)
            if isinstance(node, _Any):
                return any(run(n) for n in node.operands)
            if isinstance(node, _ActionMatches):
                return action_matches(node.pattern, action)
            values = (request if node.source == "request" else resource).get(node.attribute, ())
            match = node.quantifier
            if match is None or match == "foranyofanyvalues":
                return any(_compare(node.operator, v, r) for v in values for r in node.values)
            if match == "foranyofallvalues":
                return any(all(_compare(node.operator, v, r) for r in node.values) for v in values)
            if match == "forallofanyvalues":
                return all(any(_compare(node.operator, v, r) for r in node.values) for v in values)
            return all(all(_compare(node.operator, v, r) for r in node.values) for v in values)

        return run(self.root)


# -- state ----------------------------------------------------------------------------------------


def arm_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> PlatformError:
    return PlatformError(status, code, message, service="arm", headers=headers)


def _guid(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def covers(outer: str, inner: str) -> bool:
    """Whether an assignment at scope ``outer`` applies at scope ``inner`` (itself or below)."""
    outer, inner = outer.lower().rstrip("/"), inner.lower().rstrip("/")
    return inner == outer or inner.startswith(outer + "/")


@dataclass
class RoleAssignment:
    name: str
    scope: str
    role_id: str
    principal_id: str
    principal_type: str
    created_on: dt.datetime
    updated_on: dt.datetime
    created_by: str | None
    updated_by: str | None
    description: str | None = None
    condition: Condition | None = None
    condition_version: str | None = None
    deleted_on: dt.datetime | None = None

    @property
    def id(self) -> str:
        return f"{self.scope}/providers/{ASSIGNMENT_TYPE}/{self.name}"

    def attributes(self) -> dict[str, list[str]]:
        return {
            "roledefinitionid": [self.role_id],
            "principalid": [self.principal_id],
            "principaltype": [self.principal_type],
        }

    def to_json(self, subscription_id: str) -> Json:
        return {
            "id": self.id,
            "name": self.name,
            "type": ASSIGNMENT_TYPE,
            "properties": {
                "roleDefinitionId": role_definition_id(subscription_id, self.role_id),
                "principalId": self.principal_id,
                "principalType": self.principal_type,
                "scope": self.scope,
                "condition": self.condition.text if self.condition else None,
                "conditionVersion": self.condition_version,
                "createdOn": iso(self.created_on),
                "updatedOn": iso(self.updated_on),
                "createdBy": self.created_by,
                "updatedBy": self.updated_by,
                "delegatedManagedIdentityResourceId": None,
                "description": self.description,
            },
        }


class ResourceManager:
    """One subscription: its resource groups and resources (the scopes), its role assignments,
    live and deleted, and the data planes' propagation delay. Reads the directory for
    principals; a reset replaces the whole object."""

    def __init__(self, clock: Clock, directory: Directory, tenant_id: str, subscription_id: str) -> None:
        self.clock = clock
        self.directory = directory
        self.tenant_id = tenant_id
        self.subscription_id = subscription_id
        self.propagation_seconds = DEFAULT_PROPAGATION_SECONDS
        subscription = f"/subscriptions/{subscription_id}"
        self.scopes: dict[str, str] = {subscription.lower(): subscription}  # lower -> as created
        self.assignments: dict[str, RoleAssignment] = {}  # by name
        self.deleted: list[RoleAssignment] = []
        # Principals present before any test ran have long replicated.
        self._replicated = set(directory.service_principals) | set(directory.users)

    # -- scopes -----------------------------------------------------------------------------------

    def add_scope(self, scope: str) -> str:
        self.scopes[scope.lower()] = scope
        return scope

    def resolve_scope(self, scope: str) -> str:
        """The scope as it was created, or ARM's 404 for what does not exist."""
        known = self.scopes.get(scope.lower().rstrip("/"))
        if known is not None:
            return known
        parts = scope.strip("/").split("/")
        if len(parts) < 2 or parts[0].lower() != "subscriptions":
            raise arm_error(404, "NotFound", "The requested resource was not found.")
        if parts[1].lower() != self.subscription_id:
            raise arm_error(404, "SubscriptionNotFound", f"The subscription '{parts[1]}' could not be found.")
        if len(parts) < 4 or parts[2].lower() != "resourcegroups":
            raise arm_error(404, "NotFound", "The requested resource was not found.")
        group = "/" + "/".join(parts[:4])
        if group.lower() not in self.scopes:
            raise arm_error(404, "ResourceGroupNotFound", f"Resource group '{parts[3]}' could not be found.")
        resource = "/".join(parts[5:]) if len(parts) > 5 else "/".join(parts[4:])
        raise arm_error(
            404,
            "ResourceNotFound",
            f"The Resource '{resource}' under resource group '{parts[3]}' was not found. For more "
            "details please go to https://aka.ms/ARMResourceNotFoundFix",
        )

    # -- principals -------------------------------------------------------------------------------

    def _principal(self, object_id: str) -> tuple[str | None, bool]:
        """(the principal's type, whether Azure RBAC sees it yet)."""
        directory = self.directory
        obj = directory.service_principals.get(object_id)
        kind = "ServicePrincipal"
        if obj is None:
            obj, kind = directory.users.get(object_id), "User"
        if obj is None:
            return None, False
        if object_id in self._replicated:
            return kind, True
        created = obj.get("createdDateTime")
        lagging = created is not None and self.clock.now() < parse_iso(created) + dt.timedelta(
            seconds=PRINCIPAL_REPLICATION_LAG
        )
        return kind, directory.is_replicated(object_id) and not lagging

    def principal_type(self, principal_id: str, given: str | None) -> str:
        """The principalType to store, or ARM's refusal."""
        kind, visible = self._principal(principal_id)
        if given is None:
            if not visible or kind is None:
                raise arm_error(
                    400,
                    "PrincipalNotFound",
                    f"Principal {principal_id.replace('-', '')} does not exist in the directory "
                    f"{self.tenant_id}. Check that you have the correct principal ID. If you are "
                    "creating this principal and then immediately assigning a role, this error might "
                    "be related to a replication delay. In this case, set the role assignment "
                    "principalType property to a value, such as ServicePrincipal, User, or Group.  "
                    "See https://aka.ms/docs-principaltype",
                )
            return kind
        if visible and kind != given:
            raise arm_error(
                400,
                "UnmatchedPrincipalType",
                f"The PrincipalId '{principal_id.replace('-', '')}' has type '{kind}' , which is "
                f"different from specified PrincipalType '{given}'.",
            )
        return given

    # -- assignments ------------------------------------------------------------------------------

    def get(self, scope: str, name: str) -> RoleAssignment | None:
        found = self.assignments.get(name)
        return found if found is not None and found.scope.lower() == scope.lower() else None

    def put(
        self,
        *,
        scope: str,
        name: str,
        role_id: str,
        principal_id: str,
        principal_type: str,
        caller: str | None,
        description: str | None = None,
        condition: Condition | None = None,
        condition_version: str | None = None,
    ) -> RoleAssignment:
        """Create or (same scope, role and principal) update an assignment, as ARM decides."""
        now = self.clock.now()
        existing = self.assignments.get(name)
        if existing is not None:
            if (
                existing.scope.lower() != scope.lower()
                or existing.role_id != role_id
                or existing.principal_id != principal_id
            ):
                raise arm_error(
                    409,
                    "RoleAssignmentUpdateNotPermitted",
                    "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
                )
            existing.description, existing.condition = description, condition
            existing.condition_version = condition_version
            existing.updated_on, existing.updated_by = now, caller
            return existing
        for other in self.assignments.values():
            if (
                other.scope.lower() == scope.lower()
                and other.role_id == role_id
                and other.principal_id == principal_id
            ):
                raise arm_error(409, "RoleAssignmentExists", "The role assignment already exists.")
        if len(self.assignments) >= MAX_ASSIGNMENTS_PER_SUBSCRIPTION:
            raise arm_error(400, "RoleAssignmentLimitExceeded", "No more role assignments can be created.")
        assignment = RoleAssignment(
            name=name,
            scope=scope,
            role_id=role_id,
            principal_id=principal_id,
            principal_type=principal_type,
            created_on=now,
            updated_on=now,
            created_by=caller,
            updated_by=caller,
            description=description,
            condition=condition,
            condition_version=condition_version,
        )
        self.assignments[name] = assignment
        return assignment

    def delete(self, assignment: RoleAssignment) -> None:
        del self.assignments[assignment.name]
        assignment.deleted_on = self.clock.now()
        self.deleted.append(assignment)

    def list(self, scope: str, *, at_scope: bool, principal_id: str | None) -> list[RoleAssignment]:
        """Assignments at and above ``scope`` and, unless ``at_scope``, below it."""
        found = [
            a
            for a in self.assignments.values()
            if (covers(a.scope, scope) or (not at_scope and covers(scope, a.scope)))
            and (principal_id is None or a.principal_id.lower() == principal_id.lower())
        ]
        return sorted(found, key=lambda a: (a.created_on, a.name))

    # -- decisions --------------------------------------------------------------------------------

    def permitted(
        self,
        principal_id: str,
        action: str,
        scope: str,
        *,
        request: Mapping[str, Sequence[str]] | None = None,
        resource: Mapping[str, Sequence[str]] | None = None,
        conditions: bool = True,
    ) -> bool:
        """Whether a control-plane ``action`` at ``scope`` is granted to ``principal_id`` now:
        by a role assigned at the scope or above whose actions include it, and whose assignment's
        condition holds (``conditions=False``: there is nothing to judge it against)."""
        for assignment in self.assignments.values():
            if assignment.principal_id != principal_id or not covers(assignment.scope, scope):
                continue
            role = ROLE_DEFINITIONS.get(assignment.role_id)
            if role is None or not role.permits(action):
                continue
            if (
                not conditions
                or assignment.condition is None
                or assignment.condition.evaluate(action, request or {}, resource or {})
            ):
                return True
        return False

    def data_permitted(self, principal_id: str, data_action: str, scope: str) -> bool:
        """Whether the data planes let ``principal_id`` do ``data_action`` at ``scope`` now:
        assignments count from ``propagation_seconds`` after their creation until as long after
        their deletion."""
        now = self.clock.now()
        delay = dt.timedelta(seconds=self.propagation_seconds)
        for assignment in [*self.assignments.values(), *self.deleted]:
            if assignment.principal_id != principal_id or not covers(assignment.scope, scope):
                continue
            if now < assignment.created_on + delay:
                continue
            if assignment.deleted_on is not None and now >= assignment.deleted_on + delay:
                continue
            role = ROLE_DEFINITIONS.get(assignment.role_id)
            if role is None or not role.permits(data_action, data=True):
                continue
            if assignment.condition is None or assignment.condition.evaluate(data_action, {}, {}):
                return True
        return False

    # -- the control plane's view -----------------------------------------------------------------

    def describe(self) -> Json:
        """Every assignment, live and deleted, for tests."""
        deleted = []
        for assignment in self.deleted:
            item = assignment.to_json(self.subscription_id)
            item["deletedOn"] = iso(assignment.deleted_on) if assignment.deleted_on else None
            deleted.append(item)
        return {
            "propagationSeconds": self.propagation_seconds,
            "value": [a.to_json(self.subscription_id) for a in self.assignments.values()],
            "deleted": deleted,
        }


# -- the REST API -----------------------------------------------------------------------------------

_MARKER = f"/providers/{ASSIGNMENT_TYPE}".lower()
_FILTER_TERMS = (
    ("atScope", re.compile(r"atScope\(\)", re.IGNORECASE)),
    ("principalId", re.compile(r"principalId\s+eq\s+'([^']*)'", re.IGNORECASE)),
    ("assignedTo", re.compile(r"assignedTo\('([^']*)'\)", re.IGNORECASE)),
)


def _unsupported_filter(text: str) -> PlatformError:
    return arm_error(
        400,
        "UnsupportedQuery",
        f"The filter '{text}' is not supported. Supported filters are either 'atScope()' or "
        "'principalId eq '{value}' or assignedTo('{value}')'.",
    )


def _parse_filter(text: str | None) -> tuple[bool, str | None]:
    """(atScope(), the principal named) of a list's ``$filter``."""
    if not text or not text.strip():
        return False, None
    at_scope, principal = False, None
    for term in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        for kind, pattern in _FILTER_TERMS:
            match = pattern.fullmatch(term.strip())
            if match is None:
                continue
            if kind == "atScope" and not at_scope:
                at_scope = True
            elif kind != "atScope" and principal is None:
                principal = match.group(1)
            else:
                raise _unsupported_filter(text)
            break
        else:
            raise _unsupported_filter(text)
    return at_scope, principal


def _role_of(value: object, subscription_id: str) -> str:
    """The role GUID of a ``roleDefinitionId``, which must name a role this emulator knows."""
    if not isinstance(value, str) or not value:
        raise arm_error(400, "InvalidRoleDefinitionId", "The role definition ID '' is not valid.")
    match = re.fullmatch(
        r"(?:/subscriptions/(?P<sub>[^/]+))?/providers/Microsoft\.Authorization/roleDefinitions/(?P<id>[^/]+)",
        value,
        re.IGNORECASE,
    )
    role_id = _guid(match.group("id")) if match else None
    if match is None or role_id is None:
        raise arm_error(400, "InvalidRoleDefinitionId", f"The role definition ID '{value}' is not valid.")
    sub = match.group("sub")
    if role_id not in ROLE_DEFINITIONS or (sub is not None and sub.lower() != subscription_id):
        raise arm_error(
            400,
            "RoleDefinitionDoesNotExist",
            f"The specified role definition with ID '{role_id.replace('-', '')}' does not exist.",
        )
    return role_id


def _challenge(identity: IdentityPlatform, rejected: TokenRejected) -> PlatformError:
    if rejected.reason == "missing":
        code = "AuthenticationFailed"
        message = "Authentication failed. The 'Authorization' header is missing."
        description = "The authentication failed because of missing 'Authorization' header."
    elif rejected.reason == "audience":
        code = "InvalidAuthenticationTokenAudience"
        audiences = ",".join(f"'{a}'" for a in MANAGEMENT_AUDIENCES)
        message = (
            f"The access token has been obtained for wrong audience or resource "
            f"'{rejected.claims.get('aud')}'. It should exactly match with one of the allowed "
            f"audiences {audiences}."
        )
        description = "The access token has been obtained for wrong audience or resource."
    elif rejected.reason == "expired":
        code = "ExpiredAuthenticationToken"
        exp = rejected.claims.get("exp")
        expiry = (
            dt.datetime.fromtimestamp(exp, dt.UTC).strftime("%m/%d/%Y %H:%M:%S")
            if isinstance(exp, int | float)
            else "unknown"
        )
        now = dt.datetime.now(dt.UTC).strftime("%m/%d/%Y %H:%M:%S")
        message = f"The access token expiry UTC time '{expiry}' is earlier than current UTC time '{now}'."
        description = "The access token has expired."
    else:
        code = "InvalidAuthenticationToken"
        message = "The access token is invalid."
        description = "The access token is invalid."
    authority = f"{identity.base_url}/{identity.tenant_id}"
    return arm_error(
        401,
        code,
        message,
        {
            "WWW-Authenticate": f'Bearer authorization_uri="{authority}", error="invalid_token", '
            f'error_description="{description}"',
            "x-ms-failure-cause": "gateway",
        },
    )


def _denied(principal: Principal, action: str, scope: str) -> PlatformError:
    return arm_error(
        403,
        "AuthorizationFailed",
        f"The client '{principal.app_id}' with object id '{principal.service_principal_id}' does not "
        f"have authorization or an ABAC condition not fulfilled to perform action '{action}' over "
        f"scope '{scope}' or the scope is invalid. If access was recently granted, please refresh "
        "your credentials.",
        {"x-ms-failure-cause": "gateway"},
    )


@dataclass
class _Call:
    request: Request
    arm: ResourceManager
    principal: Principal
    scope: str
    name: str | None
    headers: dict[str, str] = field(default_factory=dict)

    def answer(self, status: int, body: Json | None = None) -> Response:
        if body is None:
            return Response(status_code=status, headers=self.headers)
        return JSONResponse(body, status_code=status, headers=self.headers)


def routes(identity: IdentityPlatform, current: Callable[[], ResourceManager]) -> list[BaseRoute]:
    """Role assignments under ``/subscriptions/...``, authenticated by ``identity``; ``current``
    gives the Resource Manager of the moment (a reset replaces it)."""

    async def endpoint(request: Request) -> Response:
        arm = current()
        try:
            principal = identity.verify(request, MANAGEMENT_AUDIENCES)
        except TokenRejected as rejected:
            raise _challenge(identity, rejected) from None
        version = request.query_params.get("api-version")
        if not version:
            raise arm_error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if version != API_VERSION:
            raise arm_error(
                400,
                "InvalidApiVersionParameter",
                f"The api-version '{version}' is invalid. The supported versions are '{API_VERSION}'.",
            )
        path = request.url.path
        at = path.lower().rfind(_MARKER)
        if at < 0:
            raise arm_error(404, "NotFound", "The requested resource was not found.")
        rest = path[at + len(_MARKER) :]
        if rest and (not rest.startswith("/") or "/" in rest[1:] or len(rest) == 1):
            raise arm_error(404, "NotFound", "The requested resource was not found.")
        name = rest[1:] or None
        rid = request_id_of(request)
        call = _Call(
            request,
            arm,
            principal,
            arm.resolve_scope(path[:at]),
            name,
            {"x-ms-request-id": rid, "x-ms-correlation-request-id": rid},
        )
        handlers: dict[str, Callable[[_Call], Awaitable[Response]]] = (
            {"GET": list_assignments} if name is None else {"GET": get, "PUT": put, "DELETE": delete}
        )
        handler = handlers.get(request.method)
        if handler is None:
            raise arm_error(405, "MethodNotAllowed", f"The HTTP method '{request.method}' is not supported.")
        return await handler(call)

    def checked_name(call: _Call) -> str:
        name = _guid(call.name)
        if name is None:
            raise arm_error(
                400,
                "InvalidRoleAssignmentId",
                f"The role assignment ID '{call.name}' is not valid. The role assignment ID must be a GUID.",
            )
        return name

    def assignment_id(call: _Call, name: str) -> str:
        return f"{call.scope}/providers/{ASSIGNMENT_TYPE}/{name}"

    async def get(call: _Call) -> Response:
        name = checked_name(call)
        if not call.arm.permitted(call.principal.service_principal_id, READ, call.scope):
            raise _denied(call.principal, READ, assignment_id(call, name))
        found = call.arm.get(call.scope, name)
        if found is None:
            raise arm_error(404, "RoleAssignmentNotFound", f"The role assignment '{name}' is not found.")
        return call.answer(200, found.to_json(call.arm.subscription_id))

    async def list_assignments(call: _Call) -> Response:
        at_scope, principal_id = _parse_filter(call.request.query_params.get("$filter"))
        if not call.arm.permitted(call.principal.service_principal_id, READ, call.scope):
            raise _denied(call.principal, READ, call.scope)
        found = call.arm.list(call.scope, at_scope=at_scope, principal_id=principal_id)
        return call.answer(200, {"value": [a.to_json(call.arm.subscription_id) for a in found]})

    async def put(call: _Call) -> Response:
        arm, name = call.arm, checked_name(call)
        raw = await call.request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError as exc:
            raise arm_error(
                400,
                "InvalidRequestContent",
                f"The request content was invalid and could not be deserialized: '{exc}'.",
            ) from None
        properties = body.get("properties") if isinstance(body, dict) else None
        if not isinstance(properties, dict):
            raise arm_error(
                400,
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized: 'properties' is required.",
            )
        role_id = _role_of(properties.get("roleDefinitionId"), arm.subscription_id)
        principal_id = _guid(properties.get("principalId"))
        if principal_id is None:
            raise arm_error(
                400, "InvalidPrincipalId", "A valid principal ID must be provided for role assignment."
            )
        given_type = properties.get("principalType")
        if given_type is not None and given_type not in PRINCIPAL_TYPES:
            raise arm_error(
                400,
                "InvalidPrincipalType",
                f"The PrincipalType property '{given_type}' is not valid. It must be 'User', 'Group' "
                "or 'ServicePrincipal'.",
            )
        condition, version = None, None
        text = properties.get("condition")
        if text:
            version = properties.get("conditionVersion") or "2.0"
            if not isinstance(text, str) or version != "2.0":
                raise arm_error(
                    400, "InvalidCondition", f"The condition version '{version}' is not supported: use '2.0'."
                )
            try:
                condition = Condition.parse(text)
            except ConditionError as exc:
                raise arm_error(
                    400, "InvalidCondition", f"The role assignment condition '{text}' is invalid: {exc}."
                ) from None
        description = properties.get("description")
        caller = call.principal.service_principal_id
        requested = {"roledefinitionid": [role_id], "principalid": [principal_id]}
        if given_type is not None:
            requested["principaltype"] = [given_type]
        if not arm.permitted(caller, WRITE, call.scope, request=requested):
            raise _denied(call.principal, WRITE, assignment_id(call, name))
        principal_type = arm.principal_type(principal_id, given_type)
        assignment = arm.put(
            scope=call.scope,
            name=name,
            role_id=role_id,
            principal_id=principal_id,
            principal_type=principal_type,
            caller=caller,
            description=description if isinstance(description, str) else None,
            condition=condition,
            condition_version=version,
        )
        return call.answer(201, assignment.to_json(arm.subscription_id))

    async def delete(call: _Call) -> Response:
        arm, name = call.arm, checked_name(call)
        caller = call.principal.service_principal_id
        found = arm.get(call.scope, name)
        if found is None:
            if not arm.permitted(caller, DELETE, call.scope, conditions=False):
                raise _denied(call.principal, DELETE, assignment_id(call, name))
            return call.answer(204)
        if not arm.permitted(caller, DELETE, call.scope, resource=found.attributes()):
            raise _denied(call.principal, DELETE, assignment_id(call, name))
        arm.delete(found)
        return call.answer(200, found.to_json(arm.subscription_id))

    return [Route(ARM_PREFIX + "{rest:path}", endpoint, methods=["GET", "PUT", "DELETE"])]
