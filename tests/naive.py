"""Slow, obvious twins of the numba kernels in sim/: each kernel's test compares the two."""
