"""RecIS's functional ops (``recis.nn.functional.*``) over the engine, on torch tensors.

Each module matches one of RecIS's: :mod:`.hash_ops` (string hashes), :mod:`.fused_ops` (many
columns per call), :mod:`.array_ops`, :mod:`.ragged_ops` and :mod:`.embedding_ops`. CPU tensors
run the engine's CPU kernels; CUDA tensors run its CUDA kernels where it has them.
"""
