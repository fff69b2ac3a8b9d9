"""The two rounding rules of the int8 output stage in the last-layer experiment."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ARM_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "arm"
_spec = importlib.util.spec_from_file_location(
    "arm_final_layer", ARM_DIR / "final_layer.py"
)
final_layer = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = final_layer
_spec.loader.exec_module(final_layer)


def test_multiplier_is_a_31_bit_fraction_and_a_power_of_two():
    m0, shift = final_layer.quantize_multiplier(0.006850)
    assert 1 << 30 <= m0 < 1 << 31
    assert shift == -7
    assert m0 * 2.0 ** (shift - 31) == pytest.approx(0.006850, rel=1e-9)
    assert final_layer.quantize_multiplier(0.0) == (0, 0)


def test_a_multiplier_that_rounds_up_to_one_moves_to_the_next_power():
    m0, shift = final_layer.quantize_multiplier(1.0 - 2.0**-40)
    assert (m0, shift) == (1 << 30, 1)


def test_rules_differ_only_on_negative_exact_halves():
    m0, shift = final_layer.quantize_multiplier(0.006850)
    acc = np.arange(-200_000, 200_000, dtype=np.int64)
    away, ties = final_layer.requantize(acc, m0, shift, "away")
    up, ties_up = final_layer.requantize(acc, m0, shift, "up")
    assert np.array_equal(ties, ties_up)
    assert ties.any()
    differ = away != up
    assert np.array_equal(differ, ties & (acc < 0))
    assert np.all(up[differ] - away[differ] == 1)


def test_values_close_to_the_float_product():
    m0, shift = final_layer.quantize_multiplier(0.006850)
    acc = np.array([-5000, -73, 0, 73, 5000], np.int64)
    values, _ = final_layer.requantize(acc, m0, shift, "away")
    assert np.all(np.abs(values - acc * 0.006850) <= 0.5 + 1e-6)


def test_zero_point_at_the_bottom_of_the_range_hides_the_difference():
    """With zero point -128, a negative value clamps to -128 under both rules."""
    m0, shift = final_layer.quantize_multiplier(0.006850)
    acc = np.arange(-200_000, 200_000, dtype=np.int64)
    clamped = [
        np.clip(final_layer.requantize(acc, m0, shift, rule)[0] - 128, -128, 127)
        for rule in ("away", "up")
    ]
    assert np.array_equal(*clamped)


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="unknown rounding rule"):
        final_layer.requantize(np.zeros(1, np.int64), 1 << 30, 0, "even")
