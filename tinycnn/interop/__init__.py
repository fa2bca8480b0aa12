"""Bridges to other frameworks. Only this package may import them (and only when called)."""
