"""Trellis services. They never import each other (an import-linter contract)."""
