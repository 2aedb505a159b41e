"""The simulation core: fleet state, numba kernels, control plane and core service."""
