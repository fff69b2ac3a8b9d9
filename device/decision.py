"""The beat decision: from a beat's shape error and timing to "anomalous".

The int8 autoencoder gives each beat a shape error ``e``, the mean squared
difference between the window and its reconstruction. The decision turns
it, together with how early the beat came, into one score in units of the
wearer's own spread:

``score = z_shape + timing_weight * z_timing``, anomalous when
``score > threshold``, with

* ``z_shape = (ln e - m) / s``: ``m`` is the median of ``ln e`` over the
  last ``history_beats`` beats judged normal, ``s`` the larger of the
  calibrated spread (1.4826 MAD of ``ln e`` on held-out training beats)
  and the same robust spread of that history. The history starts from the
  held-out beats and follows the wearer: over hours, electrode contact,
  posture and heart rate change the normal beats' errors by up to ten times
  their training level (measured on MIT-BIH records 105, 108, 114 and
  116), which a fixed error threshold turns into hundreds of false alarms
  an hour. Only a beat whose score is below ``history_accept`` enters the
  history: not the anomalous ones, and not those in the grey zone between
  ``history_accept`` and the threshold, where a record's unflagged
  ventricular beats mostly fall, so a rhythm with many of them cannot pull
  the reference towards them (on the bundled record 208x, where about a
  quarter of the beats are PVCs, accepting every unflagged beat let the
  reference drift up until 18 of its 82 far-shaped beats were flagged;
  with ``history_accept`` 4, 46).
* ``z_timing = max(0, prematurity - timing_dead_zone) / timing_scale``,
  ``prematurity = 1 - rr_before / rr_avg`` (0 when either is unknown): how
  early the beat came beyond ordinary beat-to-beat variation. Lateness
  counts as 0; the pause after an early beat is not itself abnormal.

Timing alone does not flag a beat of normal shape unless it is very early
(``threshold / timing_weight * timing_scale + timing_dead_zone`` of the
recent mean RR, 29 % with the defaults): premature atrial beats of normal
shape are mostly left unflagged, premature ventricular beats, early and
misshapen, are flagged, and a ventricular beat that is not premature is
flagged by its shape alone.

The state (the history) makes a beat's score depend on the beats judged
before it, by design; the int8 shape error itself never does (see
:class:`~beatguard.device.scorer.Scorer`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from numpy.typing import NDArray

_MAD_TO_SD = 1.4826
#: Smallest shape error taken a logarithm of (a perfect reconstruction).
MIN_ERROR = 1e-9


def log_errors(errors: NDArray[np.floating] | Sequence[float]) -> NDArray[np.float64]:
    """``ln(max(errors, MIN_ERROR))``, computed with ``math.log``.

    ``numpy.log`` is vectorized differently per CPU: numpy 1.26 (the numpy
    of ``tflite-runtime`` 2.14 setups) gave other last bits on x86_64 than
    on aarch64 for 138 of 600 shape errors, which moved the decision's
    scores of a Pi away from a PC's. The C library's ``log`` agreed on both
    (``benchmarks/arm/float_log.py``), so the decision takes its logarithms
    one by one from ``math``.
    """
    x = np.maximum(np.asarray(errors, np.float64), MIN_ERROR)
    return np.array([math.log(v) for v in x.ravel()], np.float64).reshape(x.shape)


def median_and_spread(values: NDArray[np.floating]) -> tuple[float, float]:
    """Median and 1.4826 MAD (a normal distribution's sd) of ``values``."""
    center = float(np.median(values))
    return center, float(_MAD_TO_SD * np.median(np.abs(values - center)))


def robust_log_spread(errors: NDArray[np.floating]) -> tuple[float, float]:
    """Median and 1.4826 MAD of ``ln errors``."""
    return median_and_spread(log_errors(errors))


def prematurity(
    rr_before_s: NDArray[np.floating], rr_avg_s: NDArray[np.floating]
) -> NDArray[np.float64]:
    """Share of the recent mean RR by which each beat came early.

    ``1 - rr_before_s / rr_avg_s``: positive for an early beat, negative
    for a late one, 0 when either interval is unknown (NaN) or not
    positive.
    """
    rr = np.asarray(rr_before_s, np.float64)
    avg = np.asarray(rr_avg_s, np.float64)
    ok = np.isfinite(rr) & np.isfinite(avg) & (rr > 0) & (avg > 0)
    ratio = np.divide(rr, avg, out=np.ones_like(rr), where=ok)
    return np.where(ok, 1.0 - ratio, 0.0)


@dataclass(frozen=True)
class DecisionSettings:
    """The calibrated decision rule, as stored in ``model.json``.

    Attributes
    ----------
    threshold : float
        Score above which a beat is anomalous.
    log_sd : float
        Calibrated robust spread of ``ln e`` on held-out beats (> 0).
    reference_log_errors : tuple of float
        ``ln e`` of the latest held-out beats: the history the decision
        starts from (at most ``history_beats`` used).
    history_beats : int
        Beats judged normal that the reference follows.
    history_accept : float
        Highest score of a beat that enters the history.
    timing_weight, timing_dead_zone, timing_scale : float
        See the module docstring.
    """

    threshold: float
    log_sd: float
    reference_log_errors: tuple[float, ...]
    history_beats: int = 64
    history_accept: float = 4.0
    timing_weight: float = 3.0
    timing_dead_zone: float = 0.1
    timing_scale: float = 0.1

    def __post_init__(self) -> None:
        if not (np.isfinite(self.threshold) and self.log_sd > 0):
            raise ValueError(
                f"decision threshold {self.threshold} / log_sd {self.log_sd} unusable"
            )
        if len(self.reference_log_errors) == 0 or self.history_beats < 1:
            raise ValueError("decision needs reference errors and history_beats >= 1")
        if self.timing_scale <= 0 or self.timing_weight < 0:
            raise ValueError(
                f"timing_scale {self.timing_scale} must be > 0 and timing_weight "
                f"{self.timing_weight} >= 0"
            )

    def to_dict(self) -> dict:
        out = asdict(self)
        out["reference_log_errors"] = [float(v) for v in self.reference_log_errors]
        return out

    @classmethod
    def from_dict(cls, d: dict) -> DecisionSettings:
        """Inverse of :meth:`to_dict`; raises KeyError, TypeError, ValueError."""
        return cls(
            threshold=float(d["threshold"]),
            log_sd=float(d["log_sd"]),
            reference_log_errors=tuple(float(v) for v in d["reference_log_errors"]),
            history_beats=int(d["history_beats"]),
            history_accept=float(d["history_accept"]),
            timing_weight=float(d["timing_weight"]),
            timing_dead_zone=float(d["timing_dead_zone"]),
            timing_scale=float(d["timing_scale"]),
        )


@dataclass
class BeatDecision:
    """Judge beats one after another with a reference that follows the wearer.

    Parameters
    ----------
    settings : DecisionSettings

    Examples
    --------
    >>> d = BeatDecision(DecisionSettings(5.84, 0.3, (-6.0,) * 10))
    >>> scores, flags = d.judge(np.array([np.exp(-6.0), 0.5]), np.array([0.0, 0.0]))
    >>> flags.tolist()
    [False, True]
    """

    settings: DecisionSettings
    _history: deque = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the beats judged so far; start again from the calibration."""
        keep = self.settings.history_beats
        self._history = deque(self.settings.reference_log_errors[-keep:], maxlen=keep)

    @property
    def reference(self) -> tuple[float, float]:
        """Current ``(m, s)``: median and spread of ``ln e`` used for z_shape."""
        center, spread = median_and_spread(np.fromiter(self._history, np.float64))
        return center, max(self.settings.log_sd, spread)

    def timing_z(self, prematurity_share: NDArray[np.floating]) -> NDArray[np.float64]:
        """``z_timing`` of each beat's prematurity."""
        s = self.settings
        early = np.asarray(prematurity_share, np.float64) - s.timing_dead_zone
        return np.maximum(early, 0.0) / s.timing_scale

    def judge(
        self,
        errors: NDArray[np.floating],
        prematurity_share: NDArray[np.floating] | Sequence[float],
    ) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
        """Scores and verdicts of beats in time order; updates the history.

        Parameters
        ----------
        errors : NDArray[np.floating], shape (n,)
            int8 shape errors (mean squared reconstruction residual).
        prematurity_share : array-like, shape (n,)
            :func:`prematurity` of the same beats.

        Returns
        -------
        scores : NDArray[np.float64], shape (n,)
        anomalous : NDArray[np.bool_], shape (n,)
        """
        errors = np.asarray(errors, np.float64).reshape(-1)
        timing = self.timing_z(np.asarray(prematurity_share).reshape(-1))
        if timing.shape != errors.shape:
            raise ValueError(
                f"{errors.size} shape errors but {timing.size} prematurity values"
            )
        logs = log_errors(errors)
        scores = np.empty(errors.shape, np.float64)
        flags = np.zeros(errors.shape, bool)
        for i, log_error in enumerate(logs):
            center, spread = self.reference
            scores[i] = (log_error - center) / spread + (
                self.settings.timing_weight * timing[i]
            )
            flags[i] = scores[i] > self.settings.threshold
            if not flags[i] and scores[i] < self.settings.history_accept:
                self._history.append(float(log_error))
        return scores, flags
