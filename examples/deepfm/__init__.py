"""DeepFM on Criteo-shaped data."""
