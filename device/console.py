"""The console sink: one line of live status for a person watching.

The runtime keeps a ``Status`` up to date; ``format_status`` turns it into
a single line such as::

    HR  72 bpm | beats 1834 | abnormal 41 (2.2%) | alerts 2 | signal good | link ok

The command line decides where and how often to print it (this module
never prints).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from beatguard.device.types import Quality


@dataclass
class Status:
    """What the runtime knows right now.

    Attributes
    ----------
    hr_bpm : float
        Heart rate over the last seconds (NaN when unknown).
    beats : int
        Beats seen this session (scored or not).
    scored_beats : int
        Beats scored by the model.
    anomalous_beats : int
        Scored beats above the threshold.
    alerts : int
        Alerts raised this session.
    quality : Quality
        Signal quality now.
    link : str
        State of the link in a word or two ("ok", "reconnecting", ...).
    last_alert : str
        Message of the latest alert ("" when none).
    elapsed_s : float
        Seconds of stream since the session started.
    """

    hr_bpm: float = math.nan
    beats: int = 0
    scored_beats: int = 0
    anomalous_beats: int = 0
    alerts: int = 0
    quality: Quality = Quality.GOOD
    link: str = "waiting"
    last_alert: str = ""
    elapsed_s: float = 0.0


def format_status(status: Status) -> str:
    """One line of status: heart rate, beats, anomalies, alerts, signal, link.

    Returns
    -------
    str
        No newline; at most about 100 characters plus the last alert.
    """
    hr = "---" if math.isnan(status.hr_bpm) else f"{status.hr_bpm:3.0f}"
    share = status.anomalous_beats / status.scored_beats if status.scored_beats else 0.0
    minutes, seconds = divmod(int(status.elapsed_s), 60)
    if status.quality & Quality.LEADS_OFF:
        signal = "LEADS OFF - check electrodes"
    else:
        signal = status.quality.describe()
    parts = [
        f"{minutes:3d}:{seconds:02d}",
        f"HR {hr} bpm",
        f"beats {status.beats}",
        f"abnormal {status.anomalous_beats} ({share:.1%})",
        f"alerts {status.alerts}",
        f"signal {signal}",
        f"link {status.link}",
    ]
    if status.last_alert:
        parts.append(f"last: {status.last_alert}")
    return " | ".join(parts)
