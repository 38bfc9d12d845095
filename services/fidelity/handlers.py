"""Fidelity event handlers (none yet: roster and learning events come with later services)."""

from trellis.bus import Handlers

handlers = Handlers()
