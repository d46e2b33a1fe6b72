"""The RecIS-style script runs in its own process; it is not a module to import here."""

collect_ignore = ["recis_style_script.py"]
