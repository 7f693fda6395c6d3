"""Who may use the emulated namespace, and the REST send: SAS tokens and Entra tokens through
azure-servicebus (CBS put-token), links refused as Service Bus refuses them (seen with a second
AMQP client, proton's), and ``POST /{queue}/messages`` with SAS or Bearer, received by the SDK
like any other message."""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import json
import time
import urllib.parse

import httpx
import pytest
from azure.core.credentials import AzureSasCredential
from azure.servicebus import ServiceBusMessage, ServiceBusReceivedMessage
from azure.servicebus.aio import ServiceBusClient
from azure.servicebus.exceptions import ServiceBusAuthenticationError
from proton import Message
from proton.utils import BlockingConnection, LinkDetached

from emulator.launcher import RunningEmulator
from emulator.servicebus.auth import Grant, Rejected, verify_sas
from tests.emulator.clients import credential, sas_token, servicebus_client

QUEUE = "app-credential-events"


def namespace(emulator: RunningEmulator) -> str:
    return emulator.settings["ServiceBusConnection__fullyQualifiedNamespace"]


def key(emulator: RunningEmulator) -> tuple[str, str]:
    return emulator.settings["SERVICE_BUS_SAS_KEY_NAME"], emulator.settings["SERVICE_BUS_SAS_KEY"]


async def receive_all(emulator: RunningEmulator, queue: str = QUEUE) -> list[ServiceBusReceivedMessage]:
    async with servicebus_client(emulator.settings) as client, client.get_queue_receiver(queue) as receiver:
        messages = await receiver.receive_messages(max_message_count=10, max_wait_time=5)
        for message in messages:
            await receiver.complete_message(message)
        return list(messages)


async def send_one(client: ServiceBusClient, queue: str = QUEUE) -> None:
    async with client.get_queue_sender(queue) as sender:
        await sender.send_messages(ServiceBusMessage("x"))


# -- AMQP: CBS ---------------------------------------------------------------------------------


async def test_a_wrong_key_is_refused(emulator: RunningEmulator) -> None:
    wrong = base64.b64encode(b"0" * 32).decode()
    connection = emulator.settings["ServiceBusConnection"].replace(
        emulator.settings["SERVICE_BUS_SAS_KEY"], wrong
    )
    async with ServiceBusClient.from_connection_string(connection, retry_total=0) as client:
        with pytest.raises(ServiceBusAuthenticationError) as refused:
            await send_one(client)
    assert "401" in str(refused.value.inner_exception) and "InvalidSignature" in str(
        refused.value.inner_exception
    )


async def test_an_unknown_queue_fails_its_put_token_with_404(emulator: RunningEmulator) -> None:
    """The service checks the audience's entity at put-token: "Put token failed. status-code:
    404 … could not be found" (azure-service-bus#451), which this SDK raises as an
    authentication error."""
    async with servicebus_client(emulator.settings, retry_total=0) as client:
        with pytest.raises(ServiceBusAuthenticationError) as refused:
            await send_one(client, "no-such-queue")
    assert "404" in str(refused.value.inner_exception)
    assert "The messaging entity 'sb://" in str(refused.value.inner_exception)
    assert "no-such-queue' could not be found" in str(refused.value.inner_exception)


async def test_a_sas_token_covers_its_resource_and_what_lies_under_it(emulator: RunningEmulator) -> None:
    host = namespace(emulator)
    whole = AzureSasCredential(sas_token(f"sb://{host}/", *key(emulator)))
    async with ServiceBusClient(host, whole, use_tls=False) as client:
        await send_one(client)
        await send_one(client, "app-credential-rotation")
    other_queue = AzureSasCredential(sas_token(f"sb://{host}/app-credential-rotation", *key(emulator)))
    async with ServiceBusClient(host, other_queue, use_tls=False, retry_total=0) as client:
        with pytest.raises(ServiceBusAuthenticationError) as refused:
            await send_one(client)
    assert "InvalidAudience" in str(refused.value.inner_exception)
    expired = AzureSasCredential(sas_token(f"sb://{host}/", *key(emulator), ttl_seconds=-60))
    async with ServiceBusClient(host, expired, use_tls=False, retry_total=0) as client:
        with pytest.raises(ServiceBusAuthenticationError) as late:
            await send_one(client)
    assert "ExpiredToken" in str(late.value.inner_exception)
    assert len(await receive_all(emulator)) == 1


async def test_an_entra_identity_connects_without_tls(emulator: RunningEmulator) -> None:
    """``ServiceBusClient(fully_qualified_namespace, credential, use_tls=False)``: the SDK keeps
    the port and puts a ``jwt`` token for https://servicebus.azure.net on $cbs."""
    async with (
        credential(emulator.settings) as cred,
        ServiceBusClient(namespace(emulator), cred, use_tls=False) as client,
    ):
        await send_one(client)
        async with client.get_queue_receiver(QUEUE) as receiver:
            [message] = await receiver.receive_messages(max_wait_time=5)
            await receiver.complete_message(message)


# -- AMQP: links, seen by proton's client ----------------------------------------------------------


class Cbs:
    """put-token on $cbs, as a client speaks it: a request link and a reply link."""

    def __init__(self, connection: BlockingConnection) -> None:
        self.sender = connection.create_sender("$cbs")
        self.receiver = connection.create_receiver("$cbs")
        self.requests = 0

    def put_token(self, audience: str, token: str) -> int:
        self.requests += 1
        request_id = f"req-{self.requests}"
        self.sender.send(
            Message(
                id=request_id,
                reply_to="$cbs",
                body=token,
                properties={
                    "operation": "put-token",
                    "type": "servicebus.windows.net:sastoken",
                    "name": audience,
                },
            )
        )
        reply = self.receiver.receive(timeout=10)  # pre-settled by the service
        assert reply.correlation_id == request_id
        return int(reply.properties["status-code"])


def test_links_need_a_token_and_an_existing_entity(emulator: RunningEmulator) -> None:
    host = namespace(emulator)
    connection = BlockingConnection(f"amqp://{host}", timeout=10, allowed_mechs="ANONYMOUS")
    try:
        with pytest.raises(LinkDetached) as unauthorized:
            connection.create_sender(QUEUE)
        assert unauthorized.value.condition == "amqp:unauthorized-access"
        assert f"Resource: 'sb://{host}/{QUEUE}'" in str(unauthorized.value)
        cbs = Cbs(connection)
        assert cbs.put_token(f"sb://{host}/{QUEUE}", "SharedAccessSignature sr=x&sig=y&se=1&skn=z") == 401
        assert cbs.put_token(f"sb://{host}/nope", sas_token(f"sb://{host}/", *key(emulator))) == 404
        assert cbs.put_token(f"sb://{host}/", sas_token(f"sb://{host}/", *key(emulator))) == 202
        with pytest.raises(LinkDetached) as missing:
            connection.create_receiver("nope")
        assert missing.value.condition == "amqp:not-found"
        sender = connection.create_sender(QUEUE)
        sender.send(Message(body="from proton", id="p-1"))
    finally:
        connection.close()


# -- REST send -----------------------------------------------------------------------------------


def rest(emulator: RunningEmulator, queue: str, body: bytes, **headers: str) -> httpx.Response:
    s = emulator.settings
    return httpx.post(
        f"{s['SERVICE_BUS_REST_URL']}/{queue}/messages",
        content=body,
        headers=headers,
        verify=s["PLATFORM_CA_FILE"],
    )


def rest_sas(emulator: RunningEmulator, queue: str) -> str:
    return sas_token(f"{emulator.settings['SERVICE_BUS_REST_URL']}/{queue}", *key(emulator))


async def test_rest_send_with_sas_is_received_by_the_sdk(emulator: RunningEmulator) -> None:
    at = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    broker_properties = {
        "MessageId": "rest-1",
        "CorrelationId": "req-9",
        "SessionId": "s-1",
        "ReplyTo": "app-registration-replies-session",
        "ReplyToSessionId": "caller-9",
        "Label": "registered",
        "To": "caller",
        "TimeToLive": 120,
    }
    sent = rest(
        emulator,
        QUEUE,
        b'{"appId": "x"}',
        Authorization=rest_sas(emulator, QUEUE),
        BrokerProperties=json.dumps(broker_properties),
        **{"Content-Type": "application/json", "Priority": '"High"', "Attempt": "3", "Customer": "12345,ABC"},
    )
    assert sent.status_code == 201, sent.text
    assert sent.content == b""
    later = rest(
        emulator,
        QUEUE,
        b"scheduled",
        Authorization=rest_sas(emulator, QUEUE),
        BrokerProperties=json.dumps(
            {"ScheduledEnqueueTimeUtc": email.utils.format_datetime(at, usegmt=True)}
        ),
    )
    assert later.status_code == 201
    [message] = await receive_all(emulator)
    assert b"".join(message.body) == b'{"appId": "x"}'
    assert (message.message_id, message.correlation_id, message.session_id) == ("rest-1", "req-9", "s-1")
    assert (message.reply_to, message.reply_to_session_id) == ("app-registration-replies-session", "caller-9")
    assert (message.subject, message.to, message.content_type) == ("registered", "caller", "application/json")
    assert message.time_to_live == dt.timedelta(seconds=120)
    assert message.application_properties == {b"priority": b"High", b"attempt": 3, b"customer": b"12345,ABC"}
    emulator.admin.advance("PT6M")
    [scheduled] = await receive_all(emulator)
    assert b"".join(scheduled.body) == b"scheduled"
    assert scheduled.message_id  # the gateway gave it one


async def test_rest_send_with_an_entra_token(emulator: RunningEmulator) -> None:
    async with credential(emulator.settings) as cred:
        token = (await cred.get_token("https://servicebus.azure.net/.default")).token
    sent = rest(emulator, QUEUE, b"bearer", Authorization=f"Bearer {token}")
    assert sent.status_code == 201, sent.text
    assert [b"".join(m.body) for m in await receive_all(emulator)] == [b"bearer"]


def test_rest_errors_are_service_bus_xml(emulator: RunningEmulator) -> None:
    missing = rest(emulator, QUEUE, b"x")
    assert missing.status_code == 401
    assert missing.headers["content-type"].startswith("application/xml")
    assert missing.text.startswith("<Error><Code>401</Code><Detail>MissingToken: ")
    wrong = sas_token(
        f"{emulator.settings['SERVICE_BUS_REST_URL']}/{QUEUE}", "RootManageSharedAccessKey", "bm90IGl0"
    )
    assert "<Detail>InvalidSignature: " in rest(emulator, QUEUE, b"x", Authorization=wrong).text
    other = rest(emulator, QUEUE, b"x", Authorization=rest_sas(emulator, "app-credential-rotation"))
    assert other.status_code == 401 and "InvalidAudience" in other.text
    unknown = rest(emulator, "no-such-queue", b"x", Authorization=rest_sas(emulator, "no-such-queue"))
    assert unknown.status_code == 404
    assert "<Code>404</Code>" in unknown.text and "could not be found" in unknown.text
    bad = rest(emulator, QUEUE, b"x", Authorization=rest_sas(emulator, QUEUE), BrokerProperties="{not json")
    assert bad.status_code == 400 and "<Code>400</Code>" in bad.text
    sessionless = rest(
        emulator,
        "app-registration-replies-session",
        b"x",
        Authorization=rest_sas(emulator, "app-registration-replies-session"),
    )
    assert sessionless.status_code == 400 and "SessionId" in sessionless.text
    assert emulator.admin.servicebus_messages(QUEUE) == []


def test_the_sas_signature_is_over_the_encoded_uri_and_expiry(emulator: RunningEmulator) -> None:
    """What the SAS token format means, checked by hand: changing ``se`` breaks the signature."""
    token = rest_sas(emulator, QUEUE)
    fields = dict(part.split("=", 1) for part in token.removeprefix("SharedAccessSignature ").split("&"))
    assert urllib.parse.unquote_plus(fields["sr"]) == f"{emulator.settings['SERVICE_BUS_REST_URL']}/{QUEUE}"
    tampered = token.replace(f"se={fields['se']}", f"se={int(time.time()) + 9999}")
    assert rest(emulator, QUEUE, b"x", Authorization=tampered).status_code == 401
    assert rest(emulator, QUEUE, b"x", Authorization=token).status_code == 201


# -- the SAS rules themselves -------------------------------------------------------------------


def test_a_grant_covers_its_resource_and_below_it_only() -> None:
    later = time.time() + 60
    grant = Grant("app-registration", later)
    assert grant.covers("app-registration") and grant.covers("APP-Registration/$DeadLetterQueue")
    assert not grant.covers("app-registration-requests")  # a longer name is another entity
    assert Grant("", later).covers("any-queue")  # the namespace
    assert not Grant("", time.time() - 1).covers("any-queue")


def test_sas_resource_uris_compare_by_host_and_path() -> None:
    secret = base64.b64encode(b"k" * 32).decode()
    hosts = {"ns.example:5672", "ns.example:443"}
    token = sas_token("sb://ns.example:5672/", "policy", secret)
    assert (
        verify_sas(token, "https://NS.example:443/q1", key_name="policy", key=secret, hosts=hosts).path == ""
    )
    schemeless = sas_token("ns.example:443/q1", "policy", secret)
    assert verify_sas(
        schemeless, "sb://ns.example:5672/q1/$management", key_name="policy", key=secret, hosts=hosts
    )
    for bad, code in (
        (sas_token("sb://elsewhere:5672/", "policy", secret), "InvalidAudience"),
        (sas_token("sb://ns.example:5672/", "other-policy", secret), "InvalidSignature"),
        (sas_token("sb://ns.example:5672/", "policy", secret, ttl_seconds=-1), "ExpiredToken"),
        ("Bearer abc", "MalformedToken"),
    ):
        with pytest.raises(Rejected) as refused:
            verify_sas(bad, "sb://ns.example:5672/q1", key_name="policy", key=secret, hosts=hosts)
        assert refused.value.code == code
