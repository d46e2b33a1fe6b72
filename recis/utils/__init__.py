"""Utilities shared by the framework layers (logging)."""
