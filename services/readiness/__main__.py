"""`python -m services.readiness`"""

from trellis.cli import serve

serve("readiness", "services.readiness.app:create_app")
