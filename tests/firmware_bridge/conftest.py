"""Helpers for the firmware bridge tests: drain a link fed by a simulator."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pytest

from beatguard.device.types import LinkEvent, LinkEventKind, SampleChunk


@dataclass
class Received:
    """Everything a link delivered, with the monotonic time of each event."""

    samples: dict[int, tuple[float, bool]] = field(default_factory=dict)
    events: list[tuple[float, LinkEvent]] = field(default_factory=list)

    def kinds(self) -> list[LinkEventKind]:
        return [e.kind for _, e in self.events]

    def of(self, kind: LinkEventKind) -> list[tuple[float, LinkEvent]]:
        return [(t, e) for t, e in self.events if e.kind is kind]

    def indices(self) -> np.ndarray:
        return np.array(sorted(self.samples), dtype=np.int64)

    def counts(self) -> np.ndarray:
        return np.array([self.samples[i][0] for i in sorted(self.samples)])

    def leads_off(self) -> np.ndarray:
        return np.array([self.samples[i][1] for i in sorted(self.samples)])


def drain(link, sim, timeout_s: float = 60.0) -> Received:
    """Read ``link`` until ``sim`` has finished and its port is gone.

    The link's reader queues its last items, marks itself disconnected and
    only then queues the ``DISCONNECTED`` event, from its own thread. So the
    end is decided on what held *before* a read that came back empty, and
    only once that event (or the reader's end) has been taken: on a slow
    machine (ARM under emulation) the reader can queue items between a read
    that timed out and a look at ``link.connected``.
    """
    got = Received()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        gone = sim.finished.is_set() and not link.connected
        stopped = not link.running
        item = link.get(timeout_s=0.1)
        if isinstance(item, SampleChunk):
            for i, (c, lo) in enumerate(zip(item.counts, item.leads_off, strict=True)):
                got.samples[item.first_sample + i] = (float(c), bool(lo))
        elif isinstance(item, LinkEvent):
            got.events.append((time.monotonic(), item))
        elif gone and (stopped or _last_word_is_disconnect(got)):
            return got
    raise AssertionError(f"simulator still running after {timeout_s} s")


def _last_word_is_disconnect(got: Received) -> bool:
    """True if the last event, retries aside, says the port was lost."""
    kinds = [k for k in got.kinds() if k is not LinkEventKind.PORT_ERROR]
    return bool(kinds) and kinds[-1] is LinkEventKind.DISCONNECTED


@pytest.fixture(name="drain")
def drain_fixture(scaled):
    """The :func:`drain` helper, its timeout stretched by ``scaled``."""

    def _drain(link, sim, timeout_s: float = 60.0) -> Received:
        return drain(link, sim, scaled(timeout_s))

    return _drain


@pytest.fixture(scope="session")
def record_106(mitdb) -> np.ndarray:
    """Channel 0 of MIT-BIH record 106 as ADC counts (int64)."""
    import wfdb

    return (
        wfdb.rdrecord(str(mitdb / "106"), physical=False)
        .d_signal[:, 0]
        .astype(np.int64)
    )
