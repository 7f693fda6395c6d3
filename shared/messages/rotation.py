"""The rotation queue's message (one application to look at) and the events queue's event (one
action taken or planned, or one problem), as the scheduler and the worker send them."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from shared.messages.fields import SCHEMA_VERSION

# What the service does about a credential; ``report`` is a problem or a fact, not a change.
Action = Literal["rotate", "retire", "cleanup", "report"]


class Message(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class EventApp(Message):
    unique_name: str | None
    app_id: str | None
    object_id: str | None


class RotationEvent(Message):
    """One action taken (or, in a dry run, planned) or one problem, on the events queue."""

    schema_version: Literal[1] = SCHEMA_VERSION
    app: EventApp
    key_id: str | None = None
    action: Action
    reason: str
    dry_run: bool
    at: dt.datetime


class RotationMessage(Message):
    """The scheduler's message to the rotation queue: one application to look at."""

    schema_version: Literal[1] = SCHEMA_VERSION
    object_id: str
    app_id: str
    unique_name: str
    reasons: list[str]
