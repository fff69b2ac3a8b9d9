"""Beat matching: 150 ms window, one-to-one, first minutes not scored."""

from __future__ import annotations

import numpy as np

from beatguard.device.evaluation import match_beats

FS = 360.0


def test_detections_within_150_ms_match_and_others_do_not():
    ref = np.array([1000, 2000, 3000, 4000])
    det = np.array([1050, 2054, 3100, 5000])  # 139 ms, 150 ms, 278 ms, no beat
    m = match_beats(ref, det, FS, skip_s=0)
    assert (m.tp, m.fn, m.fp) == (2, 2, 2)
    assert m.se == 0.5 and m.ppv == 0.5
    assert sorted(ref[m.ref_index].tolist()) == [1000, 2000]


def test_each_detection_matches_one_reference_beat_only():
    ref = np.array([1000, 1060])
    det = np.array([1030])
    m = match_beats(ref, det, FS, skip_s=0)
    assert (m.tp, m.fn, m.fp) == (1, 1, 0)
    det = np.array([1000, 1010, 1060])
    m = match_beats(ref, det, FS, skip_s=0)
    assert (m.tp, m.fn, m.fp) == (2, 0, 1)
    assert det[m.unmatched_det].tolist() == [1010]


def test_first_five_minutes_are_not_scored():
    start = int(300 * FS)
    ref = np.array([100, start - 10, start + 500])
    det = np.array([5000, start + 20, start + 500])  # a false beat in the skip
    m = match_beats(ref, det, FS)
    # the reference beat just before 5 min matches a detection after it but
    # is not scored; the detection it took is not a false positive
    assert (m.tp, m.fn, m.fp) == (1, 0, 0)


def test_unsorted_input_gives_indices_into_the_arrays_as_given():
    ref = np.array([3000, 1000, 2000])
    det = np.array([2010, 3020, 990])
    m = match_beats(ref, det, FS, skip_s=0)
    assert m.tp == 3
    assert np.all(np.abs(ref[m.ref_index] - det[m.det_index]) <= 20)
