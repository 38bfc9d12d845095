"""The gateway's settings, `TRELLIS_GATEWAY_*`: its limits (every request does bounded work, whatever the
document asks), and the web portal it serves."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The repo's portal build (`make portal`); an installed gateway points TRELLIS_GATEWAY_PORTAL_DIR at its own.
PORTAL_DIST = Path(__file__).resolve().parents[1] / "portal" / "dist"


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
    portal_dir: Path = Field(default=PORTAL_DIST, description="The built web portal served at `/` (index.html, "
                                                              "assets/)")
    public_url: str = Field(default="", description="The gateway's public base URL (https://trellis.example.org) "
                                                    "for the links it gives out, e.g. calendar feeds; default: "
                                                    "the URL the request came in on")
    portal_client_id: str = Field(default="trellis-portal", min_length=1,
                                  description="The portal's OIDC client id at the issuer (authorization code + PKCE)")
