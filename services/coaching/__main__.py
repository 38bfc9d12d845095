"""`python -m services.coaching`"""

from trellis.service import serve

serve("coaching", "services.coaching.app:create_app")
