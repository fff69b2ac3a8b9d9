"""``beatguard train`` and ``convert`` from the command line."""

from __future__ import annotations

import subprocess
import sys


def test_train_on_missing_record_says_so_in_one_line(beatguard_cli, tmp_path):
    result = beatguard_cli(
        "train", str(tmp_path / "nope"), "--out", str(tmp_path / "run")
    )
    assert result.returncode == 1
    lines = [
        line for line in result.stderr.splitlines() if line.startswith("beatguard")
    ]
    assert len(lines) == 1 and "nope" in lines[0]


def test_convert_of_a_folder_that_is_no_training_run_says_so(beatguard_cli, tmp_path):
    result = beatguard_cli("convert", str(tmp_path))
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("beatguard convert:") and "keras_model.h5" in last


def test_train_refuses_non_positive_minutes(beatguard_cli, mitdb, tmp_path):
    result = beatguard_cli(
        "train", str(mitdb / "106"), "--minutes", "0", "--out", str(tmp_path)
    )
    assert result.returncode == 2  # refused by argparse, before anything is read
    last = result.stderr.strip().splitlines()[-1]
    assert "argument --minutes: must be more than 0, not 0" in last


def test_train_then_convert_leave_a_bundle_the_scorer_loads(bundle_106):
    from beatguard.device.scorer import Scorer

    with Scorer(bundle_106) as scorer:
        assert scorer.points == 64
        assert (bundle_106 / "keras_model.h5").exists()


def _file_size_limit(limit_bytes: int):
    """For ``preexec_fn``: no file may grow past ``limit_bytes`` (as on a full disk)."""
    import resource
    import signal

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return apply


def test_train_on_a_full_disk_names_the_file_in_one_line_and_leaves_nothing(
    mitdb, tmp_path
):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "beatguard.cli", "train", str(mitdb / "106")]
        + ["--minutes", "5", "--out", str(out), "--epochs", "1"]
        + ["--first-pass-epochs", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_file_size_limit(20_000),
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        f"beatguard train: {out}/keras_model.h5: could not be written (File too large)"
    )
    assert not out.exists()  # the folder train made, empty, is removed again


def test_convert_on_a_full_disk_names_the_model_file(
    beatguard_cli, bundle_106, tmp_path
):
    import shutil

    run = tmp_path / "run"
    run.mkdir()
    for name in ("keras_model.h5", "training.json", "beats.npz"):
        shutil.copy(bundle_106 / name, run)
    (run / "model.tflite").symlink_to("/dev/full")  # every write: no space left
    result = beatguard_cli("convert", str(run))
    assert result.returncode == 1, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        f"beatguard convert: {run}/model.tflite: could not be written "
        "(No space left on device)"
    )


def test_convert_of_a_run_whose_beats_are_python_objects_says_so(
    beatguard_cli, bundle_106, tmp_path
):
    import shutil

    import numpy as np

    run = tmp_path / "run"
    run.mkdir()
    for name in ("keras_model.h5", "training.json"):
        shutil.copy(bundle_106 / name, run)
    junk = np.array([{"not": "beats"}], dtype=object)
    np.savez(run / "beats.npz", fit_inputs=junk, calibration_inputs=junk)
    result = beatguard_cli("convert", str(run))
    assert result.returncode == 1, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert "beats.npz holds Python objects, not beat arrays" in last
    assert "allow_pickle" not in result.stderr  # numpy's unsafe advice is not passed on
