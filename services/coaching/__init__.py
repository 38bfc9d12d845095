"""Coaching: structured, skill-based coaching tasks, sessions and plans."""
