"""CUDA kernels of the engine, on CuPy arrays: the loader and the GPU twins of the CPU kernels.

The kernel sources live in ``cuda/*.cu`` (shipped inside the wheel) and are compiled at run time
by CuPy. Importing this package never imports CuPy; only calling into it does.
"""
