"""`python -m gateway.sdl [PATH]`: the gateway's GraphQL schema as SDL, printed or written to PATH.

`make sdl` writes portal/schema.graphql, from which the portal's TypeScript types are generated
(tests/unit/test_gateway_sdl.py fails when it is stale)."""

from __future__ import annotations

import sys
from pathlib import Path

from gateway.schema import build_schema
from gateway.settings import GatewaySettings


def sdl() -> str:
    # The limits shape validation, not the schema: defaults give the same SDL as any deployment.
    return build_schema(GatewaySettings()).as_str() + "\n"


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print("usage: python -m gateway.sdl [PATH]", file=sys.stderr)
        return 2
    text = sdl()
    if not argv:
        sys.stdout.write(text)
        return 0
    path = Path(argv[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
