"""Community response bodies: calendar feed URLs."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class FeedOut(BaseModel):
    token: str = Field(description="The secret: anyone holding the URL can read the feed until it is rotated")
    path: str = Field(description="Path of the .ics feed on this service (the gateway serves it at /calendar/...)")
    created_at: datetime
