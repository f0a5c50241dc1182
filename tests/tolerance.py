"""Tolerances that follow from the arithmetic: units of the dtype's round-off at the scale of the values compared.

A floating-point result is known only to within its dtype's precision relative to the size of what went into it:
each rounding moves a value x by at most half an ulp, at most eps |x| / 2. A comparison that allows less than
that tests the CPU (its summation order, its SIMD width), not the code. So a tolerance here is

    ulps * eps(dtype) * scale

where `scale` is the magnitude of the quantities the computation added or subtracted (not of the result: a
difference of two values of size S that should cancel is known to eps S, not to eps times the difference), and
`ulps` counts the roundings that can pile up (a sum or dot product of n terms: n, to first order).

Tests import it as `from tolerance import tol`: pytest puts tests/ on sys.path when it loads tests/conftest.py
(a directory without __init__.py, in the default `prepend` import mode), from any test file and working directory.
"""

import numpy as np
import torch


def eps(dtype) -> float:
    """Machine epsilon of a torch or NumPy floating dtype (float32: 2^-23 ~ 1.19e-7, float64: 2^-52 ~ 2.22e-16)."""
    if isinstance(dtype, torch.dtype):
        return torch.finfo(dtype).eps
    return float(np.finfo(dtype).eps)


def tol(dtype, scale: float = 1.0, ulps: float = 4) -> float:
    """Absolute tolerance of a quantity computed in `dtype` from terms of magnitude `scale`: `ulps` eps * scale.

    Args:
        dtype (torch.dtype | np.dtype | type):
            The dtype the compared values were computed in.
        scale (float):
            Magnitude of the terms that were summed or subtracted (e.g. max |x|, or the sum of |terms|).
        ulps (float):
            Roundings allowed to accumulate, each at most eps * scale (e.g. n for a sum of n terms).

    Returns:
        float: the tolerance.
    """
    return float(ulps) * eps(dtype) * float(scale)
