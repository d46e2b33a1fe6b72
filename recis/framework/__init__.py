"""Training framework: trainer, checkpoints and the global metrics channel (RecIS API)."""
