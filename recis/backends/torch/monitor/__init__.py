"""The torch side of ``recis.monitor``: timing on the current CUDA stream."""
