"""Beat-by-beat matching of detected beats against reference annotations.

The EC57 convention: a detection matches a reference beat when it lies
within 150 ms of it, each detection matches at most one reference beat and
vice versa, and the first minutes of a record (5 by default) are not
scored because detectors are allowed to learn there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Match:
    """How detections line up with reference beats in the scored span.

    Attributes
    ----------
    ref_index : NDArray[np.int64], shape (tp,)
        Index into the reference array of each matched reference beat.
    det_index : NDArray[np.int64], shape (tp,)
        Index into the detection array of its matching detection.
    unmatched_ref : NDArray[np.int64], shape (fn,)
        Indices of scored reference beats with no detection (missed).
    unmatched_det : NDArray[np.int64], shape (fp,)
        Indices of scored detections with no reference beat (false).
    """

    ref_index: NDArray[np.int64]
    det_index: NDArray[np.int64]
    unmatched_ref: NDArray[np.int64]
    unmatched_det: NDArray[np.int64]

    @property
    def tp(self) -> int:
        return int(len(self.ref_index))

    @property
    def fn(self) -> int:
        return int(len(self.unmatched_ref))

    @property
    def fp(self) -> int:
        return int(len(self.unmatched_det))

    @property
    def se(self) -> float:
        """Sensitivity TP / (TP + FN), a fraction (NaN with no reference)."""
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def ppv(self) -> float:
        """Positive predictivity TP / (TP + FP), a fraction."""
        return _ratio(self.tp, self.tp + self.fp)


def _ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def match_beats(
    ref_samples: NDArray[np.int64],
    det_samples: NDArray[np.int64],
    fs_hz: float,
    tolerance_s: float = 0.15,
    skip_s: float = 300.0,
    stop_sample: int | None = None,
) -> Match:
    """Pair detections with reference beats, closest pairs first.

    Parameters
    ----------
    ref_samples : NDArray[np.int64], shape (r,)
        Reference beat positions (samples), e.g. ``Annotations.beats()``.
    det_samples : NDArray[np.int64], shape (d,)
        Detected R peaks (samples).
    fs_hz : float
        Sample rate in hertz.
    tolerance_s : float
        Largest distance of a match, seconds (150 ms by EC57).
    skip_s : float
        Seconds at the start not scored.
    stop_sample : int, optional
        End of the scored span (exclusive); None scores to the end.

    Returns
    -------
    Match
        Indices refer to the arrays as given (sorted or not).
    """
    ref = np.asarray(ref_samples, dtype=np.int64)
    det = np.asarray(det_samples, dtype=np.int64)
    tol = int(round(tolerance_s * fs_hz))
    start = int(round(skip_s * fs_hz))
    stop = np.iinfo(np.int64).max if stop_sample is None else int(stop_sample)
    ref_order = np.argsort(ref, kind="stable")
    det_order = np.argsort(det, kind="stable")
    ref_sorted, det_sorted = ref[ref_order], det[det_order]
    pairs = []  # (distance, ref position, det position) within tolerance
    lo = np.searchsorted(det_sorted, ref_sorted - tol, side="left")
    hi = np.searchsorted(det_sorted, ref_sorted + tol, side="right")
    for i, (a, b) in enumerate(zip(lo.tolist(), hi.tolist(), strict=True)):
        for j in range(a, b):
            pairs.append((abs(int(det_sorted[j]) - int(ref_sorted[i])), i, j))
    pairs.sort()
    ref_used = np.zeros(len(ref), dtype=bool)
    det_used = np.zeros(len(det), dtype=bool)
    matched_ref, matched_det = [], []
    for _, i, j in pairs:
        if ref_used[i] or det_used[j]:
            continue
        ref_used[i] = det_used[j] = True
        matched_ref.append(i)
        matched_det.append(j)
    matched_ref_arr = np.asarray(matched_ref, dtype=np.int64)
    matched_det_arr = np.asarray(matched_det, dtype=np.int64)
    ref_scored = (ref_sorted >= start) & (ref_sorted < stop)
    det_scored = (det_sorted >= start) & (det_sorted < stop)
    keep = ref_scored[matched_ref_arr] if len(matched_ref_arr) else np.zeros(0, bool)
    return Match(
        ref_index=ref_order[matched_ref_arr[keep]],
        det_index=det_order[matched_det_arr[keep]],
        unmatched_ref=ref_order[np.flatnonzero(ref_scored & ~ref_used)],
        unmatched_det=det_order[np.flatnonzero(det_scored & ~det_used)],
    )
