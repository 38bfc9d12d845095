"""`python -m gateway`"""

from trellis.service import serve

serve("gateway", "gateway.app:create_app")
