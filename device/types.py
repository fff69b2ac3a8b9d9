"""Data that crosses the boundaries between beatguard's parts.

The serial link produces ``SampleChunk`` and ``LinkEvent`` objects, the
signal chain turns chunks into ``Beat`` and ``QualityEvent`` objects, and
the runtime, trainer and evaluators consume those. Keeping them here lets
``beatguard.firmware_bridge`` depend on ``beatguard.device`` types only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray


class Quality(enum.IntFlag):
    """Why a stretch of signal is not fit for scoring (0 means good)."""

    GOOD = 0
    LEADS_OFF = 1  # the AD8232 LO+ or LO- pin says an electrode is off
    SATURATED = 2  # samples pinned at an ADC rail
    FLAT = 4  # no variation: amplifier asleep, cable shorted
    NOISY = 8  # broadband noise or motion too strong to find beats
    MISSING = 16  # non-finite samples (NaN, inf) or samples lost on the link

    def describe(self) -> str:
        """Plain words for the flags set, e.g. ``"leads off, saturated"``."""
        if not self:
            return "good"
        words = {
            Quality.LEADS_OFF: "leads off",
            Quality.SATURATED: "saturated",
            Quality.FLAT: "flat line",
            Quality.NOISY: "noisy",
            Quality.MISSING: "missing samples",
        }
        return ", ".join(w for flag, w in words.items() if self & flag)


@dataclass(frozen=True)
class SampleChunk:
    """Consecutive samples from a board or a record.

    Attributes
    ----------
    counts : NDArray[np.float64], shape (n,)
        ADC counts; NaN marks a sample that could not be read.
    leads_off : NDArray[np.bool_], shape (n,)
        True where the board reported an electrode off.
    first_sample : int
        Index of ``counts[0]`` in the stream since the session started.
    """

    counts: NDArray[np.float64]
    leads_off: NDArray[np.bool_]
    first_sample: int = 0

    def __len__(self) -> int:
        return int(self.counts.shape[0])


class LinkEventKind(enum.Enum):
    """What happened on the serial link."""

    ANNOUNCE = "announce"  # the board said who it is (sample rate, ADC bits)
    CORRUPT = "corrupt"  # frames failed their checksum or could not be parsed
    GAP = "gap"  # samples lost (sequence counter jumped) or port lost
    DISCONNECTED = "disconnected"  # the port vanished
    RECONNECTED = "reconnected"  # the port came back
    BOARD_RESET = "board_reset"  # the board rebooted (boot text, new announce)
    PORT_ERROR = "port_error"  # the port cannot be opened (busy, missing)
    END_OF_STREAM = "end_of_stream"  # a replay is complete (nothing follows)


@dataclass(frozen=True)
class LinkEvent:
    """Something the serial link reports besides samples.

    Attributes
    ----------
    kind : LinkEventKind
    message : str
        One line for a person.
    at_sample : int
        Stream index (samples since the session started) where it happened.
    lost_samples : int
        Samples known to be missing (GAP), else 0.
    corrupt_frames : int
        Frames dropped for a bad checksum or framing (CORRUPT), else 0.
    details : dict
        Machine-readable extras (e.g. ``{"fs_hz": 360, "adc_bits": 10}``).
    """

    kind: LinkEventKind
    message: str
    at_sample: int = 0
    lost_samples: int = 0
    corrupt_frames: int = 0
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Beat:
    """One detected heartbeat, cut and normalized for the model.

    Attributes
    ----------
    sample : int
        Index of the R peak in the stream since the session started.
    window : NDArray[np.float32], shape (points,)
        The beat window around R, resampled and normalized.
    rr_before_s : float
        Seconds since the previous beat (NaN for the first beat after a reset).
    rr_avg_s : float
        Mean of the recent RR intervals before this beat, in seconds (NaN
        until there is one); ``rr_before_s / rr_avg_s`` measures prematurity.
    emitted_at_sample : int
        Stream index of the sample whose arrival completed this beat (the
        last sample of the window or of the detector's look-ahead).
    """

    sample: int
    window: NDArray[np.float32]
    rr_before_s: float
    rr_avg_s: float
    emitted_at_sample: int


@dataclass(frozen=True)
class QualityEvent:
    """A change of signal quality.

    Attributes
    ----------
    sample : int
        Stream index where the new quality starts.
    quality : Quality
        The flags now in force (``Quality.GOOD`` when the signal recovered).
    """

    sample: int
    quality: Quality
