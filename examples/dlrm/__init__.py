"""DLRM on Criteo-shaped data."""
