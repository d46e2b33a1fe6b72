"""Command-line tools: CSV to ORC conversion and a synthetic Criteo-shaped dataset."""
