"""Community: cross-agency learning sessions, continuing education and ECHO-style case consultation."""
