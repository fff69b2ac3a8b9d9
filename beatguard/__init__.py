"""beatguard: catch abnormal heartbeats on a worn ECG device.

An AD8232 front end and a microcontroller stream ECG samples to a Raspberry
Pi; beatguard filters them, finds each R peak, scores each beat with an int8
LSTM autoencoder and raises alerts. The parts live in subpackages:
``beatguard.device`` (runs on the Pi), ``beatguard.firmware_bridge`` (wire
protocol, serial link, board simulator, firmware), ``beatguard.train`` and
``beatguard.convert`` (workstation side).
"""

from importlib import resources

__version__ = "0.1.0"


def bundled_record_path() -> str:
    """Path (without extension) of the bundled demo record ``208x``.

    Five minutes of MIT-BIH record 208, lead MLII, 360 Hz, as SciPy 1.11
    shipped it; see ``beatguard/data/README.md`` for attribution.
    """
    return str(resources.files("beatguard") / "data" / "208x")
