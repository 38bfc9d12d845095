"""Fidelity event handlers: the roster read model (learning's events come with that service)."""

from services.fidelity.models import ROSTER
from trellis.bus import Handlers

handlers = Handlers()
ROSTER.register(handlers)
