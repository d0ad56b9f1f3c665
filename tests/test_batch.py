"""`lalia batch`: manifests in, motion files and results.jsonl out; bad lines reported, not
fatal; reruns skip what is done and unchanged; bytes independent of the workers."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from model_core.base.motion import Motion
from model_core.batch.bench import cut_lines
from model_core.batch.lines import parse_emotion, read_manifest
from model_core.batch.run import RESULTS, run_batch
from model_core.cli import main
from model_core.inference.options import GenerationOptions

FAST = GenerationOptions(encoder_fit=True)  # as `lalia batch` does: the bookkeeping needs no 30 s window


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Three short lines cut from the bundled sample (line_00000..2.wav) and their lines.csv."""
    return cut_lines(3, tmp_path_factory.mktemp("clips"), seed=1, lo=1.5, hi=2.5).parent


def results(out: Path) -> dict:
    return {r["id"]: r for r in map(json.loads, (out / RESULTS).read_text().splitlines())}


def test_csv_with_a_bad_line_and_the_exit_code(clips, tmp_path):
    manifest = tmp_path / "lines.csv"
    manifest.write_text(
        "id,audio,character,transcript,emotion,style,seed,format\n"
        f"a,{clips}/line_00000.wav,ANNA,Hello there.,happy=0.6;sad=0.2,,3,both\n"
        f"b,{clips}/line_00001.wav,BEN,,,calm-but-unknown,,\n"
        f"c,{clips}/missing.wav,,,,,,\n"
        f"d,{clips}/line_00002.wav,,,joy=2,,,\n"
        f"e,{clips}/line_00002.wav,,,,,,csv\n")
    out = tmp_path / "out"
    rc = main(["batch", str(manifest), "--out", str(out), "-q"])
    assert rc == 1
    r = results(out)
    assert list(r) == ["a", "b", "c", "d", "e"]
    assert [r[k]["status"] for k in "abcde"] == ["ok", "failed", "failed", "failed", "ok"]
    assert "neither a preset" in r["b"]["error"] and "not found" in r["c"]["error"]
    assert "unknown emotion 'joy'" in r["d"]["error"]
    a = r["a"]
    assert a["character"] == "ANNA" and a["transcript"] == "Hello there."
    assert a["options"]["emotion"] == {"happy": 0.6, "sad": 0.2} and a["options"]["seed"] == 3
    assert set(a["outputs"]) == {"npz", "csv"} and set(r["e"]["outputs"]) == {"csv"}
    for key in ("duration_s", "timings", "warnings", "input_hash", "audio_sha256", "error", "worker"):
        assert key in a, key
    assert 1.5 <= a["duration_s"] <= 2.5 and a["timings"]["encoder"] > 0
    m = Motion.load(out / a["outputs"]["npz"]["path"])
    assert m.values.shape == (a["frames"], 55)
    assert Motion.load(out / "a.csv").num_frames == m.num_frames


def test_jsonl_and_folder_inputs(clips, tmp_path):
    shutil.copytree(clips, tmp_path / "audio")
    manifest = tmp_path / "manifests" / "lines.jsonl"
    manifest.parent.mkdir()
    # audio paths relative to the manifest's folder
    manifest.write_text(json.dumps({"id": "x", "audio": "../audio/line_00000.wav", "emotion": {"angry": 0.5},
                                    "seed": 2}) + "\n"
                        + "not json\n" + json.dumps({"audio": "../audio/line_00001.wav"}) + "\n")
    lines = read_manifest(manifest, FAST)
    assert [ln.id for ln in lines] == ["x", "line2", "line_00001"]
    assert lines[0].options.emotion == {"angry": 0.5} and lines[1].error
    s = run_batch(lines, tmp_path / "out", progress=False)
    assert (s.ok, s.failed) == (2, 1)
    folder = read_manifest(clips, FAST)
    assert [ln.id for ln in folder] == ["line_00000", "line_00001", "line_00002"]
    assert all(ln.error is None for ln in folder)


def test_rerun_skips_and_a_changed_option_reruns(clips, tmp_path):
    out = tmp_path / "out"
    first = run_batch(read_manifest(clips / "lines.csv", FAST), out, progress=False)
    assert first.ok == 3
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npz")}
    again = run_batch(read_manifest(clips / "lines.csv", FAST), out, progress=False)
    assert (again.ok, again.skipped) == (0, 3)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.npz")} == before
    assert all(r["status"] == "skipped" and r["outputs"] for r in results(out).values())
    text = (clips / "lines.csv").read_text().replace("line_00001,line_00001.wav,1", "line_00001,line_00001.wav,5")
    changed = clips / "changed.csv"
    changed.write_text(text)
    third = run_batch(read_manifest(changed, FAST), out, progress=False)
    assert (third.ok, third.skipped) == (1, 2)
    assert results(out)["line_00001"]["options"]["seed"] == 5


def test_killed_run_resumes(clips, tmp_path):
    out = tmp_path / "out"
    run_batch(read_manifest(clips / "lines.csv", FAST), out, progress=False)
    full = results(out)
    # a kill mid-run: the last record torn, one output never written
    text = (out / RESULTS).read_text().splitlines()
    (out / RESULTS).write_text("\n".join(text[:2]) + "\n" + text[2][: len(text[2]) // 2])
    (out / "line_00000.npz").unlink()
    (out / ".line_00000.1a2b3c4d.part.npz").write_bytes(b"half a file")
    s = run_batch(read_manifest(clips / "lines.csv", FAST), out, progress=False)
    assert (s.ok, s.skipped) == (2, 1)  # line 0 (output gone) and line 2 (no whole record)
    r = results(out)
    assert list(r) == ["line_00000", "line_00001", "line_00002"]
    assert not list(out.glob(".*.part*"))
    assert {k: v["outputs"]["npz"]["sha256"] for k, v in r.items()} == \
        {k: v["outputs"]["npz"]["sha256"] for k, v in full.items()}


def test_workers_give_the_same_bytes(clips, tmp_path):
    """The shipped default path (full encoder) in one process and in two: identical files."""
    one = run_batch(read_manifest(clips / "lines.csv"), tmp_path / "one", progress=False)
    two = run_batch(read_manifest(clips / "lines.csv"), tmp_path / "two", workers=2, progress=False)
    assert one.ok == two.ok == 3
    for p in (tmp_path / "one").glob("*.npz"):
        assert p.read_bytes() == (tmp_path / "two" / p.name).read_bytes(), p.name
    assert {r["worker"] for r in results(tmp_path / "two").values()} != {r["worker"] for r in
                                                                          results(tmp_path / "one").values()}


def test_ids_name_files_safely(clips):
    rows = ["id,audio"] + [f"{i},{clips}/line_00000.wav" for i in
                           ("ch1/anna-2.take3", "アンナ_001", ".hidden", "a/../b", "/abs", "a b")]
    manifest = clips / "ids.csv"
    manifest.write_text("\n".join(rows) + "\n")
    lines = read_manifest(manifest)
    assert [ln.error is None for ln in lines] == [True, True, False, False, False, False]


def test_emotion_parsing():
    assert parse_emotion("happy=0.6;sad=0.2") == {"happy": 0.6, "sad": 0.2}
    assert parse_emotion("") is None
    for bad in ("happy", "happy=2", "glee=0.5"):
        with pytest.raises(Exception):
            parse_emotion(bad)


def test_encoder_fit_adapter_brings_the_features_closer(generator, sample_audio):
    """Fitted (`lalia batch`'s default), a short line is encoded from only the frames it needs, and
    the fit adapter moves those features towards the padded window's (the trained input) on lines
    it never trained on: the bundled recording's, cut 2-7 s long. Off (`generate`'s and the
    panel's default), the features are the padded 30 s window's, bit for bit."""
    from model_core.model.speech_encoder import FitAdapter, load_fit_adapter
    assert GenerationOptions().encoder_fit is False
    enc = generator.encoder
    assert isinstance(enc.adapter, FitAdapter), "the shipped fit adapter should load with the encoder"

    def cosine(a, b):
        return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).mean())
    adapter, closer = enc.adapter, []
    for start, seconds in ((0.5, 2.0), (3.0, 4.0), (8.0, 7.0), (16.0, 3.0)):
        line = sample_audio[int(start * 16000): int((start + seconds) * 16000)]
        full = enc.encode(line)
        try:
            enc.adapter = None
            raw = enc.encode(line, fit=True)
        finally:
            enc.adapter = adapter
        adapted = enc.encode(line, fit=True)
        assert raw.shape == adapted.shape == full.shape
        closer.append((cosine(adapted, full), cosine(raw, full),
                       float(((adapted - full) ** 2).mean()), float(((raw - full) ** 2).mean())))
    c = np.array(closer)
    assert (c[:, 0] > c[:, 1]).all() and (c[:, 2] < c[:, 3]).all(), closer
    assert c[:, 0].min() > 0.965
    # an untrained adapter is the identity (its residual starts at zero)
    x, pos = np.random.default_rng(0).normal(size=(1, 30, 384)), np.zeros((1, 30, FitAdapter.N_POS))
    import torch
    with torch.no_grad():
        y = FitAdapter()(torch.tensor(x, dtype=torch.float32), torch.tensor(pos, dtype=torch.float32))
    np.testing.assert_allclose(y.numpy(), x, atol=1e-6)
    with pytest.raises(Exception, match="adapter unreadable"):
        load_fit_adapter(Path(__file__))
    # the full window is still the zero-padded 30 s window, bit for bit
    from model_core.model.speech_encoder import log_mel, resample_features
    line = sample_audio[16000: 5 * 16000]
    with torch.inference_mode():
        padded = torch.from_numpy(np.pad(line, (0, 480000 - len(line))))[None]
        f50 = enc.model(log_mel(padded))[0].numpy()[: len(line) // 320]
    np.testing.assert_array_equal(enc.encode(line, 100), resample_features(f50, 100))


def test_ray_cluster_gives_the_same_bytes(clips, tmp_path):
    """A local Ray cluster with two worker processes renders byte-identical files."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'ray[default]')")
    one = run_batch(read_manifest(clips / "lines.csv"), tmp_path / "one", progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        s = run_batch(read_manifest(clips / "lines.csv"), tmp_path / "ray", ray="auto", workers=2, progress=False)
    finally:
        ray.shutdown()
    assert s.ok == one.ok == 3 and "Ray, 2 actors" in s.workers
    for p in (tmp_path / "one").glob("*.npz"):
        assert p.read_bytes() == (tmp_path / "ray" / p.name).read_bytes(), p.name
    assert len({r["worker"] for r in results(tmp_path / "ray").values()}) == 2


def test_one_batch_per_output_folder(clips, tmp_path):
    fcntl = pytest.importorskip("fcntl")
    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".batch.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(Exception, match="another batch is writing"):
            run_batch(read_manifest(clips / "lines.csv", FAST), out, progress=False)


def test_style_file_and_a_moved_project(clips, tmp_path):
    """A reference-motion style resolves against the manifest; moving the project folder
    (same bytes, new paths) leaves every line done."""
    project = tmp_path / "project"
    shutil.copytree(clips, project / "vo")
    first = run_batch(read_manifest(project / "vo" / "lines.csv", FAST), tmp_path / "ref", progress=False)
    assert first.ok == 3
    shutil.copy(tmp_path / "ref" / "line_00000.npz", project / "ref.npz")
    (project / "styled.csv").write_text("id,audio,style\ns,vo/line_00001.wav,ref.npz\nt,vo/line_00002.wav,nope.npz\n")
    out = tmp_path / "out"
    s = run_batch(read_manifest(project / "styled.csv", FAST), out, progress=False)
    assert (s.ok, s.failed) == (1, 1)
    assert "style reference not found" in results(out)["t"]["error"]
    moved = tmp_path / "moved"
    shutil.move(project, moved)
    again = run_batch(read_manifest(moved / "styled.csv", FAST), out, progress=False)
    assert (again.ok, again.skipped, again.failed) == (0, 1, 1)
