"""Helpers shared by the test modules (not part of the installed package)."""
