import numpy as np

from model_core.base.motion import ARKIT_INDEX
from model_core.evaluation.evaluate import (
    VertexMetrics,
    beat_alignment,
    bilabial_closure,
    boundary_ratio,
    sync_offset_ms,
)


def _mouth(T=200, period=10):
    w = np.zeros((T, 52), np.float32)
    w[:, ARKIT_INDEX["jawOpen"]] = 0.3 * (1 + np.sin(np.arange(T) * 2 * np.pi / period)) / 2
    return w


def test_vertex_metrics_zero_for_identical_and_positive_otherwise():
    vm = VertexMetrics()
    w = _mouth()
    assert vm.lve(w, w) == 0 and vm.mod(w, w) == 0 and abs(vm.fdd(w, w)) < 1e-9
    w2 = w.copy()
    w2[:, ARKIT_INDEX["jawOpen"]] += 0.1
    assert 2.0 < vm.lve(w2, w) < 6.0 and vm.mod(w2, w) > 2.0


def test_closure_and_sync_offset():
    vm = VertexMetrics()
    w = _mouth()
    gap = vm.gap(w)
    closed = np.nonzero(gap < 1.0)[0]
    phones = [("m", closed[0] / 25, (closed[0] + 1) / 25)]
    assert bilabial_closure(gap, phones)[0] == 1.0
    opened = np.nonzero(gap > 5.0)[0]
    assert bilabial_closure(gap, [("p", opened[3] / 25, (opened[3] + 0.5) / 25)])[0] == 0.0
    # vowels where the mouth is open two frames earlier: the mouth is 80 ms late
    vowels = [("aa", (i - 2) / 25, (i - 1) / 25) for i in opened if i >= 2]
    assert abs(sync_offset_ms(gap, vowels) - 80) < 15


def test_boundary_ratio_flags_jumps():
    smooth = np.cumsum(np.ones((300, 3)) * 0.01, axis=0)
    assert abs(boundary_ratio(smooth, 100) - 1.0) < 1e-6
    jumpy = smooth.copy()
    jumpy[100:] += 1.0
    jumpy[200:] += 1.0
    assert boundary_ratio(jumpy, 100) > 10


def test_beat_alignment_range():
    rng = np.random.default_rng(0)
    head = np.cumsum(rng.normal(0, 0.01, (250, 3)), 0)
    audio = rng.normal(0, 0.1, 250 * 640).astype(np.float32)
    ba = beat_alignment(head, audio)
    assert 0.0 <= ba <= 1.0


def test_bench_counts_diffposetalk_passes():
    from model_core.evaluation.bench import diffposetalk_sampler_seconds
    d = diffposetalk_sampler_seconds(250, sample_passes=1)
    assert d["windows"] == 3 and d["passes"] == 1500 and d["seconds_per_pass"] > 0
    assert 30 < d["params_M"] < 60  # the published size (~34M) plus our conditioning inputs
