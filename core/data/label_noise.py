"""Symmetric label noise: a fraction eta of the labels flips to a uniformly random *other* class.

The official flooding generator (`synthetic/gaussian.py`) indexes `permutation(n)[int(n * eta)]` and so flips
a single label; here the first `int(n * eta)` indices of a permutation flip, so the realised fraction is
eta within 1/n and no flipped label keeps its class.
"""

import numpy as np


def symmetric_label_noise(labels: np.ndarray, eta: float, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Flip exactly `int(len(labels) * eta)` labels, each to a uniformly drawn different class.

    Args:
        labels (np.ndarray):
            Integer labels in `[0, num_classes)`, shape `[N]`.
        eta (float):
            Noise rate in `[0, 1)`. `0.0` returns a copy.
        num_classes (int):
            Number of classes K, at least 2.
        rng (np.random.Generator):
            Source of randomness (seed it per trial so arms share the noise draw).

    Returns:
        np.ndarray: the noisy labels, shape `[N]`.
    """
    if not 0.0 <= eta < 1.0:
        raise ValueError(f"label noise must lie in [0, 1), got {eta}")
    if num_classes < 2:
        raise ValueError(f"symmetric noise needs at least 2 classes, got {num_classes}")
    noisy = np.array(labels, copy=True)
    flip = rng.permutation(len(noisy))[: int(len(noisy) * eta)]
    noisy[flip] = (noisy[flip] + rng.integers(1, num_classes, size=len(flip))) % num_classes
    return noisy
