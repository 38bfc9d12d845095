"""Settings of the community service alone (`TRELLIS_COMMUNITY_*`), beside the platform's.

Per-program choices (attendance threshold, offer time, continuing-education rule) live on the
program; these are the platform-wide defaults and limits.
"""

from __future__ import annotations

from functools import cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommunitySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRELLIS_COMMUNITY_", env_file=".env", extra="ignore")

    offer_hours: int = Field(24, ge=1, le=24 * 14, description="Default time a waiting-list offer is held")
    attendance_threshold: float = Field(0.75, gt=0, le=1, description="Default share of a session to count as attended")
    case_retention_days: int = Field(365, ge=1, description="Case texts are kept this long after closing")
    expand_horizon_days: int = Field(400, ge=7, le=3660, description="How far ahead a recurrence is expanded")


@cache
def community_settings() -> CommunitySettings:
    return CommunitySettings()
