"""`python -m services.fidelity`"""

from trellis.service import serve

serve("fidelity", "services.fidelity.app:create_app")
