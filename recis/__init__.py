"""RecIS: training of ultra-large sparse models with growable hash-table embeddings."""

__version__ = "0.1.0"
