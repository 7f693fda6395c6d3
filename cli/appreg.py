"""``appreg``: what an integrator does with the registration service, from a shell.

- ``submit FILE [--wait]``: send a request to the registration queue with the request-reply
  pattern (``ReplyTo`` and, with ``--wait``, a ``ReplyToSessionId`` of its own on the session
  reply queue), and wait for the reply correlated to it;
- ``dead-letters``: the dead-lettered messages of a queue with their reasons (never a body);
- ``resubmit MESSAGE_ID``: send a dead-lettered message back to its queue, then remove it from
  the dead-letter queue;
- ``inventory``: the managed applications, their credentials and the days to expiry.

Readable output for a person; ``--json`` for scripts. It reads the same settings as the
service (the environment, or ``--settings`` with local.settings.json or a KEY=VALUE file):
``ServiceBusConnection`` (a connection string, e.g. the emulator's) or
``ServiceBusConnection__fullyQualifiedNamespace`` with your Azure login, and the queue names.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPLY_SESSION_QUEUE = "app-registration-replies-session"


def _settings(path: Path | None) -> dict[str, str]:
    values = dict(os.environ)
    if path is not None:
        if path.suffix == ".json":
            values.update(json.loads(path.read_text()).get("Values", {}))
        else:
            for line in path.read_text().splitlines():
                key, sep, value = line.partition("=")
                if sep and not line.startswith("#"):
                    values[key.strip()] = value
    return values


def _client(settings: dict[str, str]) -> Any:
    from azure.servicebus.aio import ServiceBusClient

    connection = settings.get("ServiceBusConnection")
    if connection:
        return ServiceBusClient.from_connection_string(connection)
    namespace = settings.get("ServiceBusConnection__fullyQualifiedNamespace")
    if not namespace:
        raise SystemExit("set ServiceBusConnection or ServiceBusConnection__fullyQualifiedNamespace")
    from azure.identity.aio import DefaultAzureCredential

    return ServiceBusClient(namespace, DefaultAzureCredential())


def _queue(settings: dict[str, str], name: str, default: str) -> str:
    return settings.get(name) or default


async def submit(settings: dict[str, str], body: bytes, wait: bool, wait_seconds: float) -> dict[str, Any]:
    from azure.servicebus import ServiceBusMessage

    message_id = str(uuid.uuid4())
    requests = _queue(settings, "REGISTRATION_QUEUE", "app-registration-requests")
    reply_queue = _queue(settings, "REPLY_SESSION_QUEUE", REPLY_SESSION_QUEUE) if wait else None
    session = str(uuid.uuid4()) if wait else None
    async with _client(settings) as client:
        async with client.get_queue_sender(requests) as sender:
            await sender.send_messages(
                ServiceBusMessage(
                    body,
                    message_id=message_id,
                    content_type="application/json",
                    reply_to=reply_queue,
                    reply_to_session_id=session,
                )
            )
        result: dict[str, Any] = {"messageId": message_id, "queue": requests}
        if not wait:
            return result
        async with client.get_queue_receiver(
            reply_queue, session_id=session, max_wait_time=wait_seconds
        ) as receiver:
            async for reply in receiver:
                await receiver.complete_message(reply)
                if reply.correlation_id == message_id:
                    result["reply"] = json.loads(b"".join(reply.body))
                    return result
        result["reply"] = None
        return result


async def dead_letters(settings: dict[str, str], queue: str) -> list[dict[str, Any]]:
    from azure.servicebus import ServiceBusSubQueue

    found = []
    async with _client(settings) as client:
        async with client.get_queue_receiver(queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER) as receiver:
            while True:
                batch = await receiver.peek_messages(max_message_count=100)
                if not batch:
                    break
                for message in batch:
                    found.append(
                        {
                            "messageId": message.message_id,
                            "requestId": _request_id(message),
                            "reason": message.dead_letter_reason,
                            "description": message.dead_letter_error_description,
                            "deliveryCount": message.delivery_count,
                            "enqueuedTime": message.enqueued_time_utc.isoformat()
                            if message.enqueued_time_utc
                            else None,
                            "sequenceNumber": message.sequence_number,
                        }
                    )
                if len(batch) < 100:
                    break
    return found


def _request_id(message: Any) -> str | None:
    """The requestId of a request message (its body's), without printing the body."""
    try:
        value = json.loads(b"".join(message.body)).get("requestId")
    except (ValueError, AttributeError, TypeError):
        return None
    return value if isinstance(value, str) else None


async def resubmit(
    settings: dict[str, str], queue: str, message_id: str, wait_seconds: float
) -> dict[str, Any]:
    from azure.servicebus import ServiceBusMessage, ServiceBusSubQueue

    async with _client(settings) as client:
        async with client.get_queue_receiver(
            queue, sub_queue=ServiceBusSubQueue.DEAD_LETTER, max_wait_time=wait_seconds
        ) as receiver:
            held: list[Any] = []  # locked while the search goes on, then given back
            try:
                while True:
                    batch = await receiver.receive_messages(max_message_count=100, max_wait_time=wait_seconds)
                    if not batch:
                        break
                    match = next((m for m in batch if m.message_id == message_id), None)
                    held.extend(m for m in batch if m is not match)
                    if match is None:
                        continue
                    copy = ServiceBusMessage(
                        b"".join(match.body),
                        message_id=f"{message_id}-resubmitted-{uuid.uuid4().hex[:8]}",
                        content_type=match.content_type,
                        correlation_id=match.correlation_id,
                        reply_to=match.reply_to,
                        reply_to_session_id=match.reply_to_session_id,
                        application_properties=dict(match.application_properties or {}),
                    )
                    async with client.get_queue_sender(queue) as sender:
                        await sender.send_messages(copy)
                    await receiver.complete_message(match)
                    return {"resubmitted": message_id, "as": copy.message_id, "queue": queue}
            finally:
                for message in held:
                    await receiver.abandon_message(message)
    raise SystemExit(f"no dead-lettered message {message_id} on {queue}")


async def inventory(settings: dict[str, str]) -> list[dict[str, Any]]:
    os.environ.update(settings)
    from shared import bootstrap
    from shared.services.inventory import inventory as rows

    try:
        found = await rows(bootstrap.dependencies())
    finally:
        await bootstrap.close()
    return [
        {
            "uniqueName": r.unique_name,
            "displayName": r.display_name,
            "clientId": r.client_id,
            "owner": r.owner,
            "daysLeft": r.days_left,
            "credentials": [
                {
                    "keyId": c.key_id,
                    "description": c.description,
                    "end": c.end.isoformat(),
                    "daysLeft": c.days_left,
                }
                for c in r.credentials
            ],
        }
        for r in found
    ]


def _print_table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> None:
    cells = [[str("" if v is None else v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="appreg", description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", type=Path, help="local.settings.json or a KEY=VALUE file")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("submit", help="send a request; with --wait, wait for its reply")
    p.add_argument("file", type=Path)
    p.add_argument("--wait", action="store_true")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the reply")
    p = commands.add_parser("dead-letters", help="dead-lettered messages and why")
    p.add_argument("--queue", help="default: REGISTRATION_QUEUE")
    p = commands.add_parser("resubmit", help="send a dead-lettered message back to its queue")
    p.add_argument("message_id")
    p.add_argument("--queue", help="default: REGISTRATION_QUEUE")
    p.add_argument("--timeout", type=float, default=5.0)
    commands.add_parser("inventory", help="managed applications and their credentials")
    args = parser.parse_args(argv)
    settings = _settings(args.settings)
    requests = _queue(settings, "REGISTRATION_QUEUE", "app-registration-requests")

    if args.command == "submit":
        result: Any = asyncio.run(submit(settings, args.file.read_bytes(), args.wait, args.timeout))
        if not args.json:
            print(f"sent {args.file.name} as message {result['messageId']} to {result['queue']}")
            reply = result.get("reply")
            if args.wait and reply is None:
                print("no reply within the timeout")
            elif reply is not None:
                print(f"reply: {reply['status']} (request {reply.get('requestId')})")
                app = reply.get("application") or {}
                if app:
                    print(f"  application {app.get('uniqueName')}  client id {app.get('clientId')}")
                if reply.get("credential"):
                    print(f"  secret in Key Vault: {reply['credential']['keyVaultSecretId']}")
                for access in reply.get("dataAccess", []):
                    print(
                        f"  {access['service']}: {', '.join(access['roles'])} (token scope {access['scope']})"
                    )
                for error in reply.get("errors", []):
                    print(f"  {error['field']}: {error['code']}: {error['message']}")
    elif args.command == "dead-letters":
        result = asyncio.run(dead_letters(settings, args.queue or requests))
        if not args.json:
            _print_table(
                [
                    (m["messageId"], m["requestId"], m["reason"], m["description"], m["enqueuedTime"])
                    for m in result
                ],
                ("MESSAGE ID", "REQUEST ID", "REASON", "DESCRIPTION", "ENQUEUED"),
            )
    elif args.command == "resubmit":
        result = asyncio.run(resubmit(settings, args.queue or requests, args.message_id, args.timeout))
        if not args.json:
            print(f"resubmitted {result['resubmitted']} to {result['queue']} as {result['as']}")
    else:
        result = asyncio.run(inventory(settings))
        if not args.json:
            _print_table(
                [
                    (r["uniqueName"], r["clientId"], r["owner"], len(r["credentials"]), r["daysLeft"])
                    for r in result
                ],
                ("UNIQUE NAME", "CLIENT ID", "OWNER", "CREDENTIALS", "DAYS LEFT"),
            )
    if args.json:
        json.dump(result, sys.stdout, indent=2, default=str)
        print()
