"""Every error beatguard raises, in one tree.

``BeatguardError`` is the root; the command line catches it and prints its
message as one line. Leaves are also the matching builtin (``ValueError``,
``OSError``) so callers that do not know beatguard still catch them. Each
error's message names the thing at fault: the file, the port, the frame.
"""

from __future__ import annotations


class BeatguardError(Exception):
    """Root of beatguard's errors; its message is one line for a person."""


class BeatguardWarning(UserWarning):
    """A problem the caller can act on that does not stop the work."""


# Records and data files -----------------------------------------------------


class RecordError(BeatguardError):
    """A record or data file cannot be used."""


class RecordNotFound(RecordError, FileNotFoundError):
    """The record's files do not exist."""


class RecordFormatError(RecordError, ValueError):
    """The record's files exist but are malformed, truncated or inconsistent."""


class SampleRateError(RecordError, ValueError):
    """The record's sample rate cannot be used for the requested job."""


# Configuration ----------------------------------------------------------------


class ConfigError(BeatguardError, ValueError):
    """A configuration file or setting is invalid."""


# Model bundles ----------------------------------------------------------------


class BundleError(BeatguardError):
    """A model bundle cannot be loaded."""


class BundleNotFound(BundleError, FileNotFoundError):
    """The bundle folder or one of its files is missing."""


class BundleCorrupt(BundleError, ValueError):
    """The bundle's files are unreadable or its hash does not match."""


class BundleMismatch(BundleError, ValueError):
    """The bundle is of another schema, or the model disagrees with its JSON."""


class ModelError(BeatguardError):
    """Training or conversion produced a model that must not be used."""


class ConversionError(ModelError, RuntimeError):
    """The converted TFLite graph fails the op, shape or parity checks."""


class RepresentativeDataError(ModelError, ValueError):
    """A window of the representative set is non-finite or flat."""


# Serial link and wire protocol ----------------------------------------------


class LinkError(BeatguardError):
    """The serial link to the board failed."""


class PortNotFound(LinkError, FileNotFoundError):
    """The serial port does not exist (yet)."""


class PortBusy(LinkError, OSError):
    """Another process holds the serial port."""


class PortLost(LinkError, ConnectionError):
    """The port vanished before the stream ended, and is not reopened."""


class ProtocolError(LinkError, ValueError):
    """Bytes from the board that do not follow the protocol."""


# Runtime sinks ----------------------------------------------------------------


class EventLogError(BeatguardError, OSError):
    """The SQLite event log cannot be opened or written."""


# Output files -----------------------------------------------------------------


class OutputError(BeatguardError, OSError):
    """A file of a training run or a model bundle cannot be written."""
