"""Trellis kernel: the small shared base every service is built on. No domain rules here."""
