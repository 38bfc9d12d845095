"""`python -m services.readiness`"""

from trellis.service import serve

serve("readiness", "services.readiness.app:create_app")
