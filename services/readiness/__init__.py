"""Readiness: agencies and their roster, readiness assessment, the implementation plan and stages."""
