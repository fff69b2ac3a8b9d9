"""The buzzer sink: a beep pattern per alert kind, through gpiozero.

Wiring: an active piezo buzzer (one that beeps on a DC voltage) between a
GPIO pin (BCM numbering, default GPIO 18, physical pin 12) and ground; a
buzzer drawing more than about 15 mA needs a transistor driver, with the
GPIO on its base through 1 kOhm. Set ``active_high=False`` for a driver that
sounds when the pin is low.

Patterns (``PATTERNS``) are ``(on_s, off_s, n)``: ``n`` beeps of ``on_s``
seconds separated by ``off_s`` seconds of silence, played in the background
by gpiozero's ``blink``; a new alert replaces a pattern still playing.
Rhythm alarms (pause, heart rate) are long beeps, beat patterns short ones.

Where gpiozero is not installed or the machine has no GPIO (a laptop, a
container), the buzzer logs one warning and does nothing else.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from beatguard.device.alerts import Alert, AlertKind

logger = logging.getLogger(__name__)

# (on_s, off_s, n) for each alert kind.
PATTERNS: dict[AlertKind, tuple[float, float, int]] = {
    AlertKind.RUN: (0.1, 0.1, 3),
    AlertKind.BURDEN: (0.1, 0.3, 2),
    AlertKind.LOW_HR: (0.6, 0.3, 3),
    AlertKind.HIGH_HR: (0.6, 0.3, 3),
    AlertKind.PAUSE: (1.0, 0.2, 2),
}


class AlertBuzzer:
    """Sounds alert patterns on a buzzer wired to a GPIO pin.

    Parameters
    ----------
    pin : int or str
        GPIO pin of the buzzer (BCM number such as 18, or a gpiozero name
        such as ``"GPIO18"`` or ``"BOARD12"``).
    active_high : bool
        True when a high pin sounds the buzzer.
    pin_factory : gpiozero Factory, optional
        gpiozero's pin factory; tests pass ``MockFactory()``. The default is
        gpiozero's own choice for the machine.
    patterns : dict, optional
        Replaces entries of ``PATTERNS``.

    Attributes
    ----------
    available : bool
        False when the buzzer is a no-op (no gpiozero, no GPIO).
    """

    def __init__(
        self,
        pin: int | str = 18,
        active_high: bool = True,
        pin_factory: Any = None,
        patterns: dict[AlertKind, tuple[float, float, int]] | None = None,
    ) -> None:
        self.pin = pin
        self.patterns = {**PATTERNS, **(patterns or {})}
        self._device = None
        try:
            from gpiozero import Buzzer
        except ImportError:
            logger.warning("buzzer: gpiozero is not installed; alerts will be silent")
            return
        # gpiozero warns once per pin library it tries and lacks; those go to
        # the debug log, so a machine without GPIO gives one line, below
        with warnings.catch_warnings(record=True) as tried:
            warnings.simplefilter("always")
            try:
                self._device = Buzzer(
                    pin, active_high=active_high, pin_factory=pin_factory
                )
            except Exception as err:  # gpiozero raises many kinds for no GPIO
                logger.warning(
                    "buzzer: no GPIO for pin %s (%s: %s); alerts will be silent",
                    pin,
                    type(err).__name__,
                    err,
                )
        for warning in tried:
            logger.debug("buzzer: %s", warning.message)

    @property
    def available(self) -> bool:
        return self._device is not None

    def sound(self, alert: Alert) -> None:
        """Play the pattern of ``alert.kind`` in the background."""
        on_s, off_s, n = self.patterns[alert.kind]
        self.beep(on_s, off_s, n)

    def beep(self, on_s: float, off_s: float, n: int) -> None:
        """Beep ``n`` times, ``on_s`` seconds each, ``off_s`` apart; returns at once."""
        if self._device is None:
            return
        self._device.blink(on_time=on_s, off_time=off_s, n=n, background=True)

    def duration_s(self, kind: AlertKind) -> float:
        """Seconds the pattern of ``kind`` plays, from first beep to silence."""
        on_s, off_s, n = self.patterns[kind]
        return n * on_s + (n - 1) * off_s

    def close(self) -> None:
        """Silence the buzzer and release its pin; may be called twice."""
        if self._device is not None:
            self._device.off()
            self._device.close()
            self._device = None

    def __enter__(self) -> AlertBuzzer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
