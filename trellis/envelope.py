"""CloudEvents 1.0 structured-mode envelope shared by every domain event."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from uuid6 import uuid7

P = TypeVar("P", bound="EventPayload")

TYPE_RE = re.compile(r"^(?P<domain>[a-z]+)\.(?P<name>[A-Z][A-Za-z]+)\.v(?P<major>\d+)$")


class EventPayload(BaseModel):
    """Base for every event's `data`. Subclasses set the three class vars."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    domain: ClassVar[str]
    name: ClassVar[str]
    version: ClassVar[int] = 1

    @classmethod
    def event_type(cls) -> str:
        return f"{cls.domain}.{cls.name}.v{cls.version}"

    @classmethod
    def nats_subject(cls, agency: str) -> str:
        return f"{cls.domain}.{cls.name}.{agency}"


class Envelope(BaseModel):
    """A CloudEvent with the `agency` extension attribute (the tenant)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    specversion: str = "1.0"
    id: str = Field(default_factory=lambda: str(uuid7()))
    source: str
    type: str
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    subject: str
    datacontenttype: str = "application/json"
    agency: str
    data: dict[str, Any]

    @field_validator("specversion")
    @classmethod
    def _spec(cls, v: str) -> str:
        if v != "1.0":
            raise ValueError("only CloudEvents 1.0 is supported")
        return v

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        if not TYPE_RE.match(v):
            raise ValueError("type must look like '<domain>.<EventName>.v<major>'")
        return v

    @classmethod
    def wrap(
        cls,
        payload: EventPayload,
        *,
        source: str,
        subject: str,
        agency: str,
        id: str | None = None,
        time: datetime | None = None,
    ) -> Self:
        extra: dict[str, Any] = {}
        if id is not None:
            extra["id"] = id
        if time is not None:
            extra["time"] = time
        return cls(
            source=source,
            type=payload.event_type(),
            subject=subject,
            agency=agency,
            data=payload.model_dump(mode="json"),
            **extra,
        )

    @property
    def domain(self) -> str:
        return self.type.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.type.split(".")[1]

    @property
    def nats_subject(self) -> str:
        return f"{self.domain}.{self.name}.{self.agency}"

    def payload(self, model: type[P]) -> P:
        if self.type != model.event_type():
            raise ValueError(f"expected {model.event_type()}, got {self.type}")
        return model.model_validate(self.data)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Self:
        return cls.model_validate_json(raw)
