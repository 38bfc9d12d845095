"""`python -m gateway`"""

from trellis.cli import serve

serve("gateway", "gateway.app:create_app")
