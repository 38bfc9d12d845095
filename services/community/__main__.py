"""`python -m services.community`"""

from trellis.service import serve

serve("community", "services.community.app:create_app")
