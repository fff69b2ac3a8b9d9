"""A bounded history of recent samples addressed by absolute stream index.

Streaming stages that look back (the QRS detector locating R, the windower
cutting a beat) keep the last few seconds of a signal here. Appending is
amortised O(1) per sample, so feeding one sample at a time stays linear.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike, NDArray


class SampleHistory:
    """The most recent ``keep`` samples of a signal, at least.

    Parameters
    ----------
    keep : int
        Samples that must stay readable behind the newest one.
    dtype : numpy dtype
        Element type.
    start : int
        Stream index of the first sample that will be appended.
    """

    def __init__(self, keep: int, dtype: DTypeLike = np.float64, start: int = 0):
        self.keep = int(keep)
        self._data = np.zeros(max(4 * self.keep, 1024), dtype=dtype)
        self._len = 0
        self.start = int(start)  # stream index of self._data[0]

    @property
    def end(self) -> int:
        """Stream index one past the newest sample."""
        return self.start + self._len

    @property
    def first(self) -> int:
        """Stream index of the oldest sample still held."""
        return self.start

    def reset(self, start: int) -> None:
        """Drop everything; the next sample appended has index ``start``."""
        self._len = 0
        self.start = int(start)

    def append(self, x: NDArray) -> None:
        """Append samples, dropping the oldest beyond ``keep`` as needed."""
        n = len(x)
        if n == 0:
            return
        if self._len + n > len(self._data):
            drop = max(0, self._len - self.keep)
            kept = self._data[drop : self._len].copy()
            size = max(len(self._data), 2 * (len(kept) + n))
            if size > len(self._data):
                self._data = np.zeros(size, dtype=self._data.dtype)
            self._data[: len(kept)] = kept
            self._len = len(kept)
            self.start += drop
        self._data[self._len : self._len + n] = x
        self._len += n

    def get(self, a: int, b: int) -> NDArray:
        """Samples with stream indices ``a`` to ``b - 1`` (a view).

        Raises
        ------
        IndexError
            If part of the range is no longer (or not yet) held.
        """
        if a < self.start or b > self.end or a > b:
            raise IndexError(
                f"samples {a}..{b} not held (history has {self.start}..{self.end})"
            )
        return self._data[a - self.start : b - self.start]

    def holds(self, a: int, b: int) -> bool:
        """Whether the range ``a`` to ``b - 1`` is readable."""
        return self.start <= a <= b <= self.end


class HoldLast:
    """Replace non-finite samples by the last finite one, across chunks.

    Parameters
    ----------
    initial : float
        Value used before any finite sample has been seen.
    """

    def __init__(self, initial: float = 0.0) -> None:
        self.initial = float(initial)
        self.reset()

    def reset(self) -> None:
        """Forget the last finite value."""
        self._last = self.initial

    def __call__(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """``x`` with every NaN or inf replaced by the last finite sample."""
        finite = np.isfinite(x)
        if finite.all():
            out = np.array(x, dtype=np.float64)
        else:
            idx = np.where(finite, np.arange(len(x)), -1)
            np.maximum.accumulate(idx, out=idx)
            out = np.where(idx >= 0, x[np.maximum(idx, 0)], self._last)
        if len(out):
            self._last = float(out[-1])
        return out
