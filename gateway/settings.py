"""The gateway's limits, `TRELLIS_GATEWAY_*`: every request does bounded work, whatever the document asks."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    # Same prefix as the gateway's ServiceSettings (port, host): extra="ignore" lets both read it.
    model_config = SettingsConfigDict(env_prefix="TRELLIS_GATEWAY_", env_file=".env", extra="ignore")

    max_depth: int = Field(default=10, ge=1, description="Deepest selection nesting (introspection not counted)")
    max_aliases: int = Field(default=30, ge=0, description="Aliases in one document")
    max_tokens: int = Field(default=2000, ge=10, description="Tokens in one document; parsing stops past it")
    max_list: int = Field(default=200, ge=1, description="Items in any list argument or variable, e.g. `ids`")
    upstream_budget: int = Field(default=50, ge=1, description="Service calls one GraphQL request may make")
    upstream_timeout_s: float = Field(default=10.0, gt=0, description="Read, write and pool timeout of one call")
    upstream_connect_timeout_s: float = Field(default=3.0, gt=0)
    upstream_max_connections: int = Field(default=100, ge=1, description="Open connections to all services")
    upstream_max_keepalive: int = Field(default=20, ge=0)
