"""Seeded `digits` inputs for load tests: images from scikit-learn's bundled data set.

Each request gets a distinct input (so no cache answers it): the n-th input is a
data-set image whose four corner pixels, blank in almost every image, encode n.
"""

from __future__ import annotations

import random
from functools import cache

CORNERS = (0, 7, 56, 63)
LEVELS = 17  # pixel values 0..16


@cache
def images(seed: int, count: int = 256) -> tuple[tuple[int, ...], ...]:
    """`count` images drawn from the data set with `seed`, as 64 ints each."""
    from sklearn.datasets import load_digits

    data = load_digits().data.astype(int)
    picks = random.Random(seed).sample(range(len(data)), count)
    return tuple(tuple(int(v) for v in data[i]) for i in picks)


def unique_pixels(seed: int, n: int) -> list[int]:
    """The n-th distinct input of a run (distinct for n below 256 x 17^4, 21 million)."""
    pool = images(seed)
    pixels = list(pool[n % len(pool)])
    mark = n // len(pool)
    for corner in CORNERS:
        pixels[corner], mark = mark % LEVELS, mark // LEVELS
    return pixels
