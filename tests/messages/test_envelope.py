"""Service Bus envelopes without I/O: where a reply goes, how it is correlated, and the message
ids that let duplicate detection keep one outcome per request."""

from __future__ import annotations

import pytest

from shared.messages.envelope import Inbound, body_envelopes, derived_id, reply_envelope, reply_queue
from shared.messages.replies import RegistrationReply

OWN = ("app-registration-requests", "app-credential-rotation", "app-credential-events")
NAMESPACE = "contoso-tickets.servicebus.windows.net"


def reply(status: str = "succeeded") -> RegistrationReply:
    return RegistrationReply(request_id="SNOW-1", status=status)  # type: ignore[arg-type]


def test_the_reply_is_correlated_to_the_request() -> None:
    request = Inbound(message_id="m-1", reply_to="ticket-replies", reply_to_session_id="s-9")
    envelope = reply_envelope(request, reply(), results_queue="results", namespace=NAMESPACE, own_queues=OWN)
    assert envelope.queue == "ticket-replies"
    assert envelope.correlation_id == "m-1"
    assert envelope.session_id == "s-9"
    assert envelope.subject == "succeeded"
    assert envelope.application_properties == {"status": "succeeded", "requestId": "SNOW-1"}
    assert envelope.message_id == derived_id("reply", "m-1") != "m-1"


def test_a_redelivery_replies_under_the_same_message_id() -> None:
    first = reply_envelope(Inbound("m-1"), reply("failed"), results_queue="results")
    again = reply_envelope(Inbound("m-1"), reply("succeeded"), results_queue="results")
    other = reply_envelope(Inbound("m-2"), reply("succeeded"), results_queue="results")
    assert first.message_id == again.message_id != other.message_id


@pytest.mark.parametrize(
    ("reply_to", "queue"),
    [
        (None, "results"),
        ("", "results"),
        ("ticket-replies", "ticket-replies"),
        (f"sb://{NAMESPACE}/ticket-replies", "ticket-replies"),
        (f"https://{NAMESPACE.upper()}/ticket-replies/", "ticket-replies"),
        ("sb://elsewhere.servicebus.windows.net/ticket-replies", "results"),  # not this namespace
        ("app-credential-rotation", "results"),  # the service's own queue: never
        ("APP-REGISTRATION-REQUESTS", "results"),
        ("bad name with spaces", "results"),
    ],
)
def test_where_a_reply_goes(reply_to: str | None, queue: str) -> None:
    assert reply_queue(reply_to, "results", NAMESPACE, OWN) == queue


def test_a_rejection_without_a_request_id_still_says_its_status() -> None:
    envelope = reply_envelope(
        Inbound("m-3"), RegistrationReply(request_id=None, status="rejected"), results_queue="results"
    )
    assert envelope.application_properties == {"status": "rejected"}
    assert envelope.session_id is None


def test_bodies_get_ids_from_their_content() -> None:
    [a, b, c] = body_envelopes("events", "credential-event", ['{"x": 1}', '{"x": 1}', '{"x": 2}'])
    assert a.message_id == b.message_id != c.message_id
    assert (a.queue, a.subject, a.body) == ("events", "credential-event", b'{"x": 1}')
