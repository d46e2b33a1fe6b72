"""serialize."""
