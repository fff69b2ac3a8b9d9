"""The buzzer plays each alert's pattern on the pin, timed, in the background."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from beatguard.device.alerts import Alert, AlertKind
from beatguard.device.buzzer import PATTERNS, AlertBuzzer

mock = pytest.importorskip("gpiozero.pins.mock", reason="gpiozero is not installed")


def _durations(states):
    """(state, seconds held) for each change after the first, from gpiozero's
    mock pin history whose timestamps are seconds since the previous change."""
    changes = states[1:]
    held = [later.timestamp for later in changes[1:]]
    return [(c.state, h) for c, h in zip(changes, held, strict=False)]


def _wait_for_states(pin, done, wait_s: float, scaled) -> None:
    """Wait ``wait_s``; then, if ``done(states)`` is still false (a slow,
    emulated machine), poll until it is true or ``scaled(wait_s)`` has
    passed. On a native machine ``scaled(wait_s) == wait_s``: one wait."""
    start = time.monotonic()
    threading.Event().wait(wait_s)
    while not done(list(pin.states)) and time.monotonic() - start < scaled(wait_s):
        threading.Event().wait(0.01)


@pytest.mark.parametrize("kind", list(AlertKind))
def test_alert_plays_its_pattern_on_the_pin(kind, scaled):
    factory = mock.MockFactory()
    with AlertBuzzer(pin=18, pin_factory=factory) as buzzer:
        pin = factory.pin(18)
        on_s, off_s, n = PATTERNS[kind]
        buzzer.sound(Alert(kind, 1000, "test alert"))
        _wait_for_states(
            pin, lambda st: len(st) >= 1 + 2 * n, buzzer.duration_s(kind) + 0.3, scaled
        )
        states = list(pin.states)
    levels = [s.state for s in states]
    # starts low, then n beeps: high, low, ..., ending low
    assert levels == [False] + [True, False] * n
    # gpiozero waits at least the pattern's time; a loaded machine may add a
    # scheduling delay on top (longer under emulation), never take any off
    for state, held_s in _durations(states):
        expected = on_s if state else off_s
        assert expected - 0.005 <= held_s <= expected + scaled(0.15), (state, held_s)


def test_sound_returns_before_the_pattern_ends():
    factory = mock.MockFactory()
    with AlertBuzzer(pin=18, pin_factory=factory) as buzzer:
        done = threading.Event()
        buzzer.sound(Alert(AlertKind.PAUSE, 0, "pause"))
        done.set()
        pin = factory.pin(18)
        assert done.is_set() and pin.state  # sounding now, call returned
        buzzer.close()
        assert not pin.state  # closing silences it


def test_active_low_buzzer_sounds_with_the_pin_low(scaled):
    factory = mock.MockFactory()
    with AlertBuzzer(pin=23, active_high=False, pin_factory=factory) as buzzer:
        pin = factory.pin(23)
        assert pin.state  # silent = high
        buzzer.beep(0.05, 0.05, 1)
        _wait_for_states(
            pin, lambda st: [s.state for s in st][-2:] == [False, True], 0.2, scaled
        )
        assert [s.state for s in pin.states][-2:] == [False, True]


def test_no_gpio_gives_one_warning_and_a_silent_buzzer(caplog):
    from gpiozero.exc import BadPinFactory

    class NoGpio:
        """A pin factory for a machine without GPIO, as gpiozero reports it."""

        def __getattr__(self, name):
            raise BadPinFactory("Unable to load any default pin factory!")

    caplog.set_level(logging.WARNING, logger="beatguard.device.buzzer")
    buzzer = AlertBuzzer(pin=18, pin_factory=NoGpio())
    assert not buzzer.available
    buzzer.sound(Alert(AlertKind.RUN, 0, "run"))  # no error
    buzzer.close()
    buzzer.close()
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "silent" in warnings[0]


def test_machine_without_gpio_gives_exactly_one_warning(caplog):
    import warnings

    caplog.set_level(logging.WARNING)
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        buzzer = AlertBuzzer(pin=18)
    if buzzer.available:
        buzzer.close()
        pytest.skip("this machine has GPIO")
    assert [w.message for w in escaped] == []
    assert len(caplog.records) == 1 and "silent" in caplog.records[0].getMessage()
