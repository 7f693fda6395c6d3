"""Which application permission (app role in the token) allows which Graph operation, after
the least-privilege tables of learn.microsoft.com/graph/api/* and the permissions reference.

``Application.ReadWrite.OwnedBy`` reads every application and service principal (the
permissions reference says so explicitly) but creates, changes and deletes only what its
caller owns; it becomes owner of what it creates. Adding owners needs
``Application.ReadWrite.All``.
"""

from __future__ import annotations

from emulator.graph.common import Call, denied

READ_ALL = "Application.Read.All"
READ_WRITE_ALL = "Application.ReadWrite.All"
OWNED_BY = "Application.ReadWrite.OwnedBy"
DIRECTORY_READ = "Directory.Read.All"
DIRECTORY_WRITE = "Directory.ReadWrite.All"
APP_ROLE_ASSIGNMENT = "AppRoleAssignment.ReadWrite.All"
DELEGATED_GRANT = "DelegatedPermissionGrant.ReadWrite.All"

APPLICATION_READERS = (READ_ALL, READ_WRITE_ALL, OWNED_BY, DIRECTORY_READ, DIRECTORY_WRITE)
APPLICATION_CREATORS = (OWNED_BY, READ_WRITE_ALL)
APPLICATION_WRITERS = (OWNED_BY, READ_WRITE_ALL)
OWNER_WRITERS = (READ_WRITE_ALL, DIRECTORY_WRITE)
ASSIGNMENT_READERS = (*APPLICATION_READERS, APP_ROLE_ASSIGNMENT)
ASSIGNMENT_WRITERS = (APP_ROLE_ASSIGNMENT,)
GRANT_READERS = (DELEGATED_GRANT, DIRECTORY_READ, DIRECTORY_WRITE, "DelegatedPermissionGrant.Read.All")
GRANT_WRITERS = (DELEGATED_GRANT, DIRECTORY_WRITE)
USER_READERS = ("User.Read.All", "User.ReadWrite.All", DIRECTORY_READ, DIRECTORY_WRITE)


def require(call: Call, *roles: str) -> None:
    """403 unless the token carries one of ``roles``."""
    if not call.principal.has_any(*roles):
        raise denied()


def require_write(call: Call, object_id: str) -> None:
    """Changing an application or service principal: ``Application.ReadWrite.All``, or
    ``Application.ReadWrite.OwnedBy`` on an object the caller owns."""
    if call.principal.has_any(READ_WRITE_ALL):
        return
    if call.principal.has_any(OWNED_BY) and call.directory.owns(call.caller, object_id):
        return
    raise denied()
