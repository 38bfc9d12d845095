"""`python -m services.coaching`"""

from trellis.cli import serve

serve("coaching", "services.coaching.app:create_app")
