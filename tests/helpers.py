"""Input generators that keep finite differences away from kinks."""

import numpy as np


def away_from_zero(rng, shape, margin=0.05):
    """Random values with |x| >= margin, so that ReLU's kink at 0 is never within the step."""
    x = rng.standard_normal(shape)
    return np.sign(x) * (margin + np.abs(x)) + 0.0 * (x == 0)


def distinct_values(rng, shape, gap=0.01):
    """All-distinct values at least ``gap`` apart, shuffled, so max-pool winners never tie or swap."""
    size = int(np.prod(shape))
    return (rng.permutation(size).astype(np.float64) * gap - size * gap / 2).reshape(shape)
