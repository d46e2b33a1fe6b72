"""Example training scripts (run them as modules, e.g. ``python -m examples.deepfm.train``)."""
