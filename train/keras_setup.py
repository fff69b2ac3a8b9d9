"""Import TensorFlow with the legacy Keras (``tf_keras``) and seed everything.

Keras 3 LSTMs convert to a TFLite ``WHILE`` loop that does not quantize to
int8; the legacy ``tf_keras`` LSTM converts to the fused
``UNIDIRECTIONAL_SEQUENCE_LSTM`` op. ``TF_USE_LEGACY_KERAS=1`` must be set
before TensorFlow is first imported, which is what :func:`tensorflow_and_keras`
does; every module of ``beatguard.train`` and ``beatguard.convert`` gets
TensorFlow through it.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType

log = logging.getLogger(__name__)


def tensorflow_and_keras() -> tuple[ModuleType, ModuleType]:
    """Return ``(tensorflow, tf_keras)`` with the legacy Keras selected.

    Raises
    ------
    ModelError
        TensorFlow or tf_keras is not installed (``pip install
        'beatguard[train]'``).
    """
    from beatguard.device.errors import ModelError

    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
        import tf_keras
    except ImportError as err:
        raise ModelError(
            f"training needs TensorFlow and tf_keras ({err}); "
            "pip install 'beatguard[train]'"
        ) from err
    return tf, tf_keras


def seed_everything(seed: int) -> None:
    """Make training repeatable: seed Python, NumPy and TensorFlow, and ask
    TensorFlow for deterministic kernels."""
    tf, keras = tensorflow_and_keras()
    keras.utils.set_random_seed(int(seed))
    try:
        tf.config.experimental.enable_op_determinism()
    except RuntimeError as err:  # already configured in this process
        log.debug("op determinism: %s", err)
