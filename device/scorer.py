"""Score beats with the bundle's int8 LSTM autoencoder on a TFLite interpreter.

The scorer loads a bundle, opens the model on the first interpreter that is
installed (``ai-edge-litert``, else ``tflite-runtime``, else TensorFlow's
``tf.lite``; TensorFlow is imported only when neither of the others is
present), and checks the model's input and output tensors against
``model.json``. Each beat is quantized with the model's own input scale and
zero point (clipped to int8), run alone, and its int8 reconstruction is
dequantized and compared with the input: the mean squared residual is the
beat's shape error.

TFLite keeps LSTM state in variable tensors between ``invoke()`` calls, so
the scorer resets them before every beat: a beat's shape error never
depends on the beats scored before it. The anomaly score is the bundle's
decision (:mod:`beatguard.device.decision`) applied to the shape error and
the beat's prematurity; its reference follows the wearer, so it does
depend on the beats judged before, and :meth:`Scorer.reset_reference`
starts it afresh.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

import numpy as np
from numpy.typing import NDArray

from beatguard.device.bundle import (
    Bundle,
    Quantization,
    beats_prematurity,
    beats_to_inputs,
    load_bundle,
    model_inputs,
    mse,
)
from beatguard.device.decision import BeatDecision
from beatguard.device.errors import BundleCorrupt, BundleMismatch, ModelError
from beatguard.device.types import Beat

log = logging.getLogger(__name__)

INTERPRETERS = ("ai-edge-litert", "tflite-runtime", "tensorflow")
_MODULES = {
    "ai-edge-litert": "ai_edge_litert.interpreter",
    "tflite-runtime": "tflite_runtime.interpreter",
    "tensorflow": "tensorflow",
}


def interpreter_class(choice: str = "auto") -> tuple[str, Callable]:
    """Find a TFLite ``Interpreter`` class.

    Parameters
    ----------
    choice : str
        ``"auto"`` (first installed of :data:`INTERPRETERS`) or one of them.

    Returns
    -------
    (name, Interpreter class)

    Raises
    ------
    ModelError
        The requested interpreter, or for ``"auto"`` every one, is missing.
    """
    if choice != "auto" and choice not in INTERPRETERS:
        raise ModelError(
            f"unknown interpreter {choice!r}; choose auto or {', '.join(INTERPRETERS)}"
        )
    names = INTERPRETERS if choice == "auto" else (choice,)
    for name in names:
        try:
            module = importlib.import_module(_MODULES[name])
        except ImportError:
            continue
        if name == "tensorflow":
            return name, module.lite.Interpreter
        return name, module.Interpreter
    raise ModelError(
        f"no TFLite interpreter installed (tried {', '.join(names)}); "
        "pip install ai-edge-litert"
    )


class Scorer:
    """The int8 beat scorer of one model bundle.

    Parameters
    ----------
    folder : str or Path
        The model bundle folder (``model.tflite`` and ``model.json``).
    interpreter : str
        ``"auto"``, ``"ai-edge-litert"``, ``"tflite-runtime"`` or
        ``"tensorflow"``.
    num_threads : int
        Interpreter threads; one is fastest for a single small beat.

    Raises
    ------
    BundleNotFound, BundleCorrupt, BundleMismatch
        As :func:`~beatguard.device.bundle.load_bundle`, and
        ``BundleMismatch`` also when the model's input or output tensor
        (shape, dtype, quantization) disagrees with ``model.json``.
    ModelError
        No usable interpreter.

    Examples
    --------
    >>> with Scorer("runs/106") as scorer:            # doctest: +SKIP
    ...     errors = scorer.shape_errors(beats)      # int8, stateless
    ...     scores = scorer.score_beats(beats)       # the decision's score
    ...     flags = scorer.is_anomalous(scores)
    """

    def __init__(
        self, folder: str | Path, interpreter: str = "auto", num_threads: int = 1
    ) -> None:
        self.bundle: Bundle = load_bundle(folder)
        self.interpreter_name, cls = interpreter_class(interpreter)
        try:
            self._interp = cls(
                model_path=str(self.bundle.model_path), num_threads=num_threads
            )
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            # The interpreter's message may run over lines; its first says why.
            why = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise BundleCorrupt(
                f"{self.bundle.folder}: {self.bundle.model_path.name} is not a valid "
                f"TFLite model ({why})"
            ) from err
        self._in_q = self.bundle.input_quantization
        self._out_q = self.bundle.output_quantization
        self._in_index = self._check_tensor("input", self._interp.get_input_details())
        self._out_index = self._check_tensor(
            "output", self._interp.get_output_details()
        )
        self.decision = BeatDecision(self.bundle.decision)
        self._closed = False
        log.info(
            "scoring with %s on %s (%d points, threshold %.4g)",
            self.interpreter_name,
            self.bundle.model_path,
            self.points,
            self.threshold,
        )

    # Properties -------------------------------------------------------------

    @property
    def threshold(self) -> float:
        """Score above which a beat is anomalous."""
        return self.bundle.threshold

    @property
    def points(self) -> int:
        """Samples per beat window the model takes."""
        return self._in_q.shape[1]

    @property
    def input_quantization(self) -> Quantization:
        return self._in_q

    @property
    def output_quantization(self) -> Quantization:
        return self._out_q

    # Scoring ----------------------------------------------------------------

    def score_beats(self, beats: Sequence[Beat]) -> NDArray[np.float64]:
        """Anomaly scores of chain beats in time order (updates the reference).

        Parameters
        ----------
        beats : sequence of Beat
            Windows must have the model's number of points.

        Returns
        -------
        NDArray[np.float64], shape (n,)
            The decision's score of each beat; empty for no beats. A beat
            is anomalous when its score is above :attr:`threshold`.
        """
        if len(beats) == 0:
            return np.zeros(0, np.float64)
        scores, _ = self.decision.judge(
            self.shape_errors(beats), beats_prematurity(beats)
        )
        return scores

    def reset_reference(self) -> None:
        """Start the decision's reference afresh from the calibration beats."""
        self.decision.reset()

    def shape_errors(self, beats: Sequence[Beat]) -> NDArray[np.float64]:
        """int8 shape errors of chain beats, shape (n,); no state involved."""
        if len(beats) == 0:
            return np.zeros(0, np.float64)
        return self.errors_of_inputs(beats_to_inputs(beats))

    def errors_of_windows(self, windows: NDArray[np.floating]) -> NDArray[np.float64]:
        """int8 shape errors of bare windows, shape (n, points) or (points,)."""
        windows = np.asarray(windows, np.float32)
        if windows.ndim == 1:
            windows = windows[None, :]
        return self.errors_of_inputs(model_inputs(windows))

    def errors_of_inputs(self, inputs: NDArray[np.floating]) -> NDArray[np.float64]:
        """int8 shape errors of model inputs, shape (n, points, 1) real values."""
        inputs = self._checked_inputs(inputs)
        return mse(inputs, self.reconstruct(inputs))

    def reconstruct(self, inputs: NDArray[np.floating]) -> NDArray[np.float64]:
        """Run the int8 model on each input alone.

        Parameters
        ----------
        inputs : NDArray[np.floating], shape (n, points, 1)

        Returns
        -------
        NDArray[np.float64], shape (n, points, 1)
            Dequantized reconstructions.
        """
        inputs = self._checked_inputs(inputs)
        if self._closed:
            raise ModelError(f"{self.bundle.model_path}: scorer is closed")
        quantized = self._in_q.quantize(inputs)
        out = np.empty(inputs.shape, np.float64)
        for i in range(inputs.shape[0]):
            self._interp.reset_all_variables()
            self._interp.set_tensor(self._in_index, quantized[i : i + 1])
            self._interp.invoke()
            raw = self._interp.get_tensor(self._out_index)
            out[i] = self._out_q.dequantize(raw[0])
        return out

    def is_anomalous(self, scores: NDArray[np.floating]) -> NDArray[np.bool_]:
        """True where a score is above the bundle's threshold."""
        return np.asarray(scores, np.float64) > self.threshold

    # Resource handling ------------------------------------------------------

    def close(self) -> None:
        """Release the interpreter; calling it twice is harmless."""
        self._closed = True
        self._interp = None

    def __enter__(self) -> Scorer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # Checks -----------------------------------------------------------------

    def _checked_inputs(self, inputs: NDArray[np.floating]) -> NDArray[np.float32]:
        inputs = np.asarray(inputs, np.float32)
        want = self._in_q.shape[1:]
        if inputs.ndim != 3 or inputs.shape[1:] != want:
            raise ValueError(
                f"model inputs must have shape (n, {want[0]}, {want[1]}), "
                f"got {inputs.shape}"
            )
        return inputs

    def _check_tensor(self, which: str, details: list[dict]) -> int:
        path = self.bundle.model_path
        if len(details) != 1:
            raise BundleMismatch(f"{path}: {len(details)} {which} tensors, want 1")
        detail = details[0]
        want = self._in_q if which == "input" else self._out_q
        shape = tuple(int(v) for v in detail["shape"])
        dtype = np.dtype(detail["dtype"]).name
        scale, zero_point = detail.get("quantization", (0.0, 0))
        if shape != want.shape:
            raise BundleMismatch(
                f"{path}: model {which} shape {list(shape)}, model.json says "
                f"{list(want.shape)}"
            )
        if dtype != want.dtype:
            raise BundleMismatch(
                f"{path}: model {which} dtype {dtype}, model.json says {want.dtype}"
            )
        if not np.isclose(scale, want.scale, rtol=1e-6) or zero_point != (
            want.zero_point
        ):
            raise BundleMismatch(
                f"{path}: model {which} quantization ({scale:.6g}, {zero_point}) "
                f"differs from model.json ({want.scale:.6g}, {want.zero_point})"
            )
        return int(detail["index"])
