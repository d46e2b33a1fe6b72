"""Profiling helpers of the torch backend: the memory traffic of RecIS's ops."""
