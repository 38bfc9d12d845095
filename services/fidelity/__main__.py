"""`python -m services.fidelity`"""

from trellis.cli import serve

serve("fidelity", "services.fidelity.app:create_app")
