"""Slow, obvious twins of the numba kernels in sim/: each kernel's test compares the two."""


# sim/fleet_state.py


def scatter(rows, values, out):  # type: ignore[no-untyped-def]
    """out[:, rows] = values, one element at a time."""
    for j, row in enumerate(rows):
        for lane in range(values.shape[0]):
            out[lane][row] = values[lane][j]
