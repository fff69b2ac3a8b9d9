"""The model bundle loader refuses what does not fit, with one clear line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from beatguard.device.bundle import (
    SCHEMA_VERSION,
    Quantization,
    load_bundle,
    model_inputs,
    sha256_of,
)
from beatguard.device.decision import prematurity
from beatguard.device.errors import BundleCorrupt, BundleMismatch, BundleNotFound
from beatguard.device.scorer import Scorer


@pytest.fixture()
def bundle_copy(bundle_106, tmp_path):
    folder = tmp_path / "bundle"
    folder.mkdir()
    for name in ("model.tflite", "model.json"):
        shutil.copy(bundle_106 / name, folder / name)
    return folder


def _edit_meta(folder, edit):
    meta = json.loads((folder / "model.json").read_text())
    edit(meta)
    (folder / "model.json").write_text(json.dumps(meta))


def _one_line(err: Exception) -> str:
    text = str(err)
    assert "\n" not in text
    return text


def test_converted_bundle_loads_with_its_chain_and_threshold(bundle_106):
    bundle = load_bundle(bundle_106)
    assert bundle.meta["schema_version"] == SCHEMA_VERSION
    assert bundle.threshold > 0
    assert bundle.decision.threshold == bundle.threshold
    assert bundle.meta["input"]["shape"] == [1, 64, 1]
    config = bundle.chain_config()
    assert config.window_points == bundle.points == 64
    assert bundle.meta["calibration"]["scores"] == "int8"
    assert bundle.meta["training"]["beats_kept"] > 100


def test_missing_folder_json_or_model_is_refused_as_not_found(bundle_copy, tmp_path):
    with pytest.raises(BundleNotFound) as err:
        load_bundle(tmp_path / "nowhere")
    assert "does not exist" in _one_line(err.value)
    (tmp_path / "model.tflite").write_bytes(b"not a folder")
    with pytest.raises(BundleNotFound) as err:
        load_bundle(tmp_path / "model.tflite")  # the file, not its folder
    assert "a file, not a model bundle folder" in _one_line(err.value)
    (bundle_copy / "model.tflite").unlink()
    with pytest.raises(BundleNotFound) as err:
        load_bundle(bundle_copy)
    assert "model.tflite" in _one_line(err.value)
    (bundle_copy / "model.json").unlink()
    with pytest.raises(BundleNotFound) as err:
        load_bundle(bundle_copy)
    assert "model.json" in _one_line(err.value)


def test_altered_model_file_is_refused_by_its_hash(bundle_copy):
    data = bytearray((bundle_copy / "model.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bundle_copy / "model.tflite").write_bytes(bytes(data))
    with pytest.raises(BundleCorrupt) as err:
        load_bundle(bundle_copy)
    assert "SHA-256" in _one_line(err.value)


def test_unparsable_json_is_refused_as_corrupt(bundle_copy):
    (bundle_copy / "model.json").write_text('{"schema_version": 1,')
    with pytest.raises(BundleCorrupt) as err:
        load_bundle(bundle_copy)
    assert "not valid JSON" in _one_line(err.value)


def test_other_schema_version_is_refused(bundle_copy):
    _edit_meta(bundle_copy, lambda m: m.update(schema_version=SCHEMA_VERSION + 1))
    with pytest.raises(BundleMismatch) as err:
        load_bundle(bundle_copy)
    assert "schema version" in _one_line(err.value)


def test_missing_key_is_refused(bundle_copy):
    _edit_meta(bundle_copy, lambda m: m.pop("threshold"))
    with pytest.raises(BundleMismatch) as err:
        load_bundle(bundle_copy)
    assert "threshold" in _one_line(err.value)


def test_json_input_dtype_other_than_int8_is_refused(bundle_copy):
    _edit_meta(bundle_copy, lambda m: m["input"].update(dtype="float32"))
    with pytest.raises(BundleMismatch) as err:
        load_bundle(bundle_copy)
    assert "dtype" in _one_line(err.value)


def test_model_whose_input_shape_differs_from_json_is_refused_at_load(bundle_copy):
    def shrink(meta):
        meta["input"]["shape"][1] = meta["output"]["shape"][1] = 32
        meta["chain"]["window_points"] = 32

    _edit_meta(bundle_copy, shrink)
    load_bundle(bundle_copy)  # the JSON alone is consistent
    with pytest.raises(BundleMismatch) as err:
        Scorer(bundle_copy)
    assert "shape" in _one_line(err.value)


def test_model_whose_quantization_differs_from_json_is_refused_at_load(bundle_copy):
    _edit_meta(bundle_copy, lambda m: m["input"].update(scale=m["input"]["scale"] * 2))
    with pytest.raises(BundleMismatch) as err:
        Scorer(bundle_copy)
    assert "quantization" in _one_line(err.value)


def test_json_window_points_must_match_model(bundle_copy):
    _edit_meta(bundle_copy, lambda m: m["chain"].update(window_points=128))
    with pytest.raises(BundleMismatch) as err:
        load_bundle(bundle_copy)
    assert "window_points" in _one_line(err.value)


def test_json_chain_value_of_the_wrong_type_is_named_with_its_setting(bundle_copy):
    _edit_meta(bundle_copy, lambda m: m["chain"].update(fs_hz="fast"))
    with pytest.raises(BundleMismatch) as err:
        load_bundle(bundle_copy).chain_config()
    assert "signal-chain setting fs_hz must be a number, not 'fast'" in _one_line(
        err.value
    )


def test_quantization_rounds_with_zero_point_and_clips_to_int8():
    q = Quantization(shape=(1, 4, 2), dtype="int8", scale=0.5, zero_point=-10)
    values = np.array([0.0, 0.74, -1.0, 1000.0, -1000.0])
    np.testing.assert_array_equal(q.quantize(values), [-10, -9, -12, 127, -128])
    np.testing.assert_allclose(q.dequantize(q.quantize(values[:3])), [0.0, 0.5, -1.0])
    shifted = Quantization(
        shape=(1, 4, 1), dtype="int8", scale=0.5, zero_point=-128, offset=2.0
    )
    np.testing.assert_array_equal(
        shifted.quantize([-2.0, -3.0, 0.0]), [-128, -128, -124]
    )
    np.testing.assert_allclose(shifted.dequantize([-128, -124]), [-2.0, 0.0])


def test_prematurity_is_the_share_early_and_zero_when_unknown():
    rr = np.array([1.0, 1.5, np.nan, 0.6, 0.8, -1.0])
    avg = np.array([1.0, 1.0, 1.0, 1.0, np.nan, 1.0])
    np.testing.assert_allclose(prematurity(rr, avg), [0.0, -0.5, 0.0, 0.4, 0.0, 0.0])


def test_model_inputs_are_windows_as_one_channel():
    windows = np.arange(6, dtype=np.float32).reshape(2, 3)
    x = model_inputs(windows)
    assert x.shape == (2, 3, 1) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:, :, 0], windows)


def test_decision_threshold_must_agree_and_be_usable(bundle_copy):
    _edit_meta(bundle_copy, lambda m: m.update(threshold=m["threshold"] + 1))
    with pytest.raises(BundleMismatch) as err:
        load_bundle(bundle_copy)
    assert "decision" in _one_line(err.value)
    _edit_meta(bundle_copy, lambda m: m["decision"].pop("log_sd"))
    with pytest.raises(BundleMismatch) as err:
        load_bundle(bundle_copy)
    assert "decision settings unusable" in _one_line(err.value)


def _multi_line_corruption(model: bytes) -> bytes:
    """``model`` with one byte flipped so that the interpreter says why in lines."""
    from beatguard.device.scorer import interpreter_class

    _, interpreter = interpreter_class()
    for at in range(len(model) // 2, len(model)):
        data = bytearray(model)
        data[at] ^= 0xFF
        try:
            interpreter(model_content=bytes(data)).allocate_tensors()
        except (ValueError, RuntimeError) as err:
            if "\n" in str(err).strip():
                return bytes(data)
    pytest.skip("no flipped byte gives a multi-line interpreter error")


def test_corrupt_model_with_a_matching_hash_is_refused_in_one_line(
    bundle_copy, beatguard_cli
):
    model = bundle_copy / "model.tflite"
    model.write_bytes(_multi_line_corruption(model.read_bytes()))
    _edit_meta(bundle_copy, lambda m: m.update(model_sha256=sha256_of(model)))
    result = beatguard_cli(
        *("run", "--port", "/dev/no-such-port", "--model", str(bundle_copy)),
        *("--events", str(bundle_copy / "events.sqlite"), "--no-buzzer"),
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"beatguard run: {bundle_copy}: model.tflite is not a valid TFLite model ("
    )
    assert "AllocateTensors" not in result.stderr
