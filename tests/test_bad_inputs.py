"""Bad inputs at every boundary: each is refused with a LaliaError whose message says what is wrong
(and, where it can, what to do), and nothing is left changed: an existing output file is
byte-identical afterwards, no temp file is left behind. Inputs that are odd but valid (silent,
clipped, DC-offset or loud-but-sane audio) generate finite motion end to end."""
import json
import pickle
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from model_core.base.audio import load_audio
from model_core.base.errors import LaliaError
from model_core.base.files import atomic_write, check_output_path, write_text_atomic
from model_core.base.motion import ARKIT_HEAD_LAYOUT, Motion
from model_core.model import checkpoint as ckpt_mod
from model_core.model.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint, manifest_path, save_checkpoint
from model_core.retarget.flame import load_flame

ROOT = Path(__file__).resolve().parents[1]


def _leftovers(folder: Path) -> list[str]:
    """Temp files a write could leave behind (atomic_write's `.NAME.xxxx.part.EXT`)."""
    return [p.name for p in folder.iterdir() if ".part" in p.name or p.name.startswith(".lalia-probe")]


# ---- audio ------------------------------------------------------------------------------
def _wav(path: Path, x, sr=16000, subtype="FLOAT") -> Path:
    sf.write(path, np.asarray(x, np.float32), sr, subtype=subtype, format="WAV")
    return path


def _with_rate(path: Path, rate: int) -> Path:
    """The same WAV with its header's sample rate (and byte rate) replaced."""
    b = bytearray(path.read_bytes())
    i = b.index(b"fmt ") + 8
    channels, block = struct.unpack_from("<H", b, i + 2)[0], struct.unpack_from("<H", b, i + 12)[0]
    struct.pack_into("<II", b, i + 4, rate, (rate * block) & 0xFFFFFFFF)
    assert channels == 1
    path.write_bytes(bytes(b))
    return path


def _speech(seconds=2.0):
    return load_audio(ROOT / "model_core/assets/sample_speech.flac")[: int(seconds * 16000)]


@pytest.mark.parametrize("bad,fragment", [(np.nan, "NaN/infinite samples"), (np.inf, "NaN/infinite samples"),
                                          (-np.inf, "NaN/infinite samples")])
def test_non_finite_samples_refused(tmp_path, bad, fragment):
    x = _speech(1.0)
    x[100] = bad
    with pytest.raises(LaliaError, match=fragment):
        load_audio(_wav(tmp_path / "a.wav", x))


@pytest.mark.parametrize("rate", [1, 3999, 384001, 2 ** 31 - 1])
def test_absurd_sample_rates_refused_before_decoding(tmp_path, monkeypatch, rate):
    p = _with_rate(_wav(tmp_path / "a.wav", _speech(0.5), subtype="PCM_16"), rate)
    monkeypatch.setattr("model_core.base.audio.resample", lambda *a: pytest.fail("resampled a bad rate"))
    monkeypatch.setattr(sf, "read", lambda *a, **k: pytest.fail("decoded a bad rate"))
    with pytest.raises(LaliaError, match=f"sample rate of {rate} Hz.*4-384 kHz"):
        load_audio(p)


@pytest.mark.parametrize("rate", [4000, 384000])
def test_edge_sample_rates_accepted(tmp_path, rate):
    y = load_audio(_wav(tmp_path / "a.wav", np.sin(np.arange(rate) * 0.01) * 0.5, sr=rate))
    assert abs(len(y) - 16000) <= 1 and np.isfinite(y).all()


def test_absurdly_loud_float_audio_refused(tmp_path):
    with pytest.raises(LaliaError, match="times full scale.*normalise"):
        load_audio(_wav(tmp_path / "a.wav", _speech(1.0) * 1e30))


def test_absurdly_loud_array_refused_by_generate(generator):
    with pytest.raises(LaliaError, match="times full scale"):
        generator.generate(_speech(1.0).astype(np.float64) * 1e30)


def test_non_finite_array_refused_by_generate(generator):
    x = _speech(1.0)
    x[5] = np.nan
    with pytest.raises(LaliaError, match="NaN/infinite samples"):
        generator.generate(x)


@pytest.mark.parametrize("name,make", [
    ("silent", lambda x: np.zeros_like(x)),
    ("clipped", lambda x: np.clip(x * 50, -1, 1)),
    ("dc_offset", lambda x: x * 0.3 + 0.6),
    ("loud_but_sane", lambda x: x / np.abs(x).max() * 500),  # 54 dB over full scale: under the limit
    ("tiny", lambda x: x * 1e-30),
])
def test_odd_but_valid_audio_gives_finite_motion(tmp_path, generator, name, make):
    p = _wav(tmp_path / f"{name}.wav", make(_speech(2.0)))
    m = generator.generate(str(p), seed=0).motion
    assert m.num_frames == 50 and np.isfinite(m.values).all()


@pytest.mark.parametrize("content,fragment", [
    (b"", "empty"),
    (b"RIFF\x10\x00\x00\x00WAVEfmt ", "Cannot decode"),
    (b"hello, not audio" * 20, "Cannot decode"),
])
def test_unreadable_audio(tmp_path, content, fragment):
    p = tmp_path / "a.wav"
    p.write_bytes(content)
    with pytest.raises(LaliaError, match=fragment):
        load_audio(p)


def test_too_short_audio(generator):
    with pytest.raises(LaliaError, match="at least 0.1 s"):
        generator.generate(np.zeros(100, np.float32))


# ---- checkpoints ---------------------------------------------------------------------------
def _checkpoint(tmp_path, edit=None, tensors=None) -> Path:
    """A copy of the shipped model, its manifest changed by `edit(dict)` and its tensors by
    `tensors(dict)`."""
    p = tmp_path / "model.safetensors"
    shutil.copy(DEFAULT_CHECKPOINT, p)
    shutil.copy(manifest_path(DEFAULT_CHECKPOINT), manifest_path(p))
    if edit:
        d = json.loads(manifest_path(p).read_text())
        edit(d)
        manifest_path(p).write_text(json.dumps(d))
    if tensors:
        from safetensors.torch import load_file, save_file
        t = load_file(str(p))
        tensors(t)
        save_file(t, str(p))
    return p


def _set(path, value):
    def edit(d):
        *head, last = path.split(".")
        for k in head:
            d = d[k]
        d[last] = value
    return edit


@pytest.mark.parametrize("edit,fragment", [
    (_set("model.vae_hidden", 8000), "'vae_hidden' is 8000; it must be a whole number in 1..4096"),
    (lambda d: d["model"].update(d_model=2048, ffn=16384, layers=48), "4846 M parameters"),
    (_set("model.layers", 2.5), "'layers' is 2.5"),
    (_set("model.heads", True), "'heads' is True"),
    (_set("model.dropout", 2), "'dropout' must be a number in \\[0, 1\\)"),
    (_set("model.bogus", 1), "unknown model settings \\['bogus'\\]"),
    (_set("emotions", []), "'emotions' must be a non-empty list"),
    (_set("emotions", ["happy", "sad", "angry", "surprised", "fearful", "disgusted", "contempt", "calm"]),
     "must include 'neutral'"),
    (_set("emotions", ["neutral"] * 8), "twice"),
    (_set("fps", 0), "'fps' must be a number in \\(0, 1000\\]"),
    (_set("fps", "25"), "'fps' must be a number"),
    (_set("norm_mean", [0.0] * 54), "'norm_mean' has 54 values for 55 channels"),
    (_set("norm_std", [0.0] * 55), "'norm_std' value must be positive"),
    (_set("norm_mean", [float("nan")] * 55), "'norm_mean' must be a list of finite numbers"),
    (_set("channels", ["jawOpen"] * 55), "twice"),
    (_set("sampler.name", "euler"), "sampler name 'euler' is not one of ddim, ddpm"),
    (_set("sampler.name", {"a": 1}), "sampler name"),
    (_set("sampler.steps", 0), "sampler steps must be a whole number in 1..500"),
    (_set("sampler.steps", 2.5), "sampler steps"),
    (_set("sampler.guidance", {"audio": "high"}), "sampler guidance must map"),
    (_set("sampler.guidance", [1, 2]), "sampler guidance must map"),
    (_set("window", 50), "'window' is 50 but the model's is 100"),
    (_set("style_sliders", {"head_motion": {"half_range": "x"}}), "numeric half_range"),
    (lambda d: d.pop("sampler"), "lacks \\['sampler'\\]"),
])
def test_bad_manifest_refused(tmp_path, monkeypatch, edit, fragment):
    p = _checkpoint(tmp_path, edit)
    # the schema is checked before a model is built: a bad size never allocates anything
    monkeypatch.setattr(ckpt_mod, "LaliaModel", lambda cfg: pytest.fail("built a model from a bad manifest"))
    with pytest.raises(LaliaError, match=fragment):
        load_checkpoint(p)


@pytest.mark.parametrize("text,fragment", [("{not json", "not valid JSON"), ("[1, 2]", "must be a JSON object"),
                                           ("\udcff", "not valid JSON")])
def test_unreadable_manifest(tmp_path, text, fragment):
    p = _checkpoint(tmp_path)
    manifest_path(p).write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(LaliaError, match=fragment):
        load_checkpoint(p)


@pytest.mark.parametrize("tensors,fragment", [
    (lambda t: t.pop("preset.calm"), "tensors missing \\['preset.calm'\\]"),
    (lambda t: t.pop("slider.head_motion"), "tensors missing \\['slider.head_motion'\\]"),
    (lambda t: t.pop("denoiser.out.bias"), "tensors missing \\['denoiser.out.bias'\\]"),
    (lambda t: t.update(identity_styles=torch.zeros(3, 128)),
     "identity_styles is \\(3, 128\\), expected \\(296, 128\\)"),
    (lambda t: t.update({"amounts.preset.calm": torch.zeros(5)}), "amounts.preset.calm is \\(5,\\)"),
    (lambda t: t.update({"preset.extra": torch.zeros(7)}), "preset.extra is \\(7,\\)"),
    (lambda t: t["denoiser.out.bias"].__setitem__(3, float("nan")), "NaN/infinite weights in 1 tensors"),
    (lambda t: t["preset.calm"].__setitem__(0, float("inf")), "NaN/infinite weights .*preset.calm"),
])
def test_bad_tensors_refused(tmp_path, tensors, fragment):
    with pytest.raises(LaliaError, match=fragment):
        load_checkpoint(_checkpoint(tmp_path, tensors=tensors))


def test_truncated_weights(tmp_path):
    p = _checkpoint(tmp_path)
    p.write_bytes(p.read_bytes()[:1000])
    with pytest.raises(LaliaError, match="corrupt or truncated"):
        load_checkpoint(p)


def test_shipped_checkpoint_passes_the_schema():
    model, manifest, extra = load_checkpoint()
    assert "preset.calm" in extra and manifest["sampler"]["steps"] >= 1


# ---- references ------------------------------------------------------------------------------
def _ref(T=50, fps=25.0, channels=ARKIT_HEAD_LAYOUT):
    return np.random.default_rng(0).uniform(0, 1, (T, len(channels))).astype(np.float32), fps, list(channels)


def _npz(path, **arrays):
    np.savez(path, **arrays)  # allow_pickle defaults to True when writing: object arrays get in
    return path


@pytest.mark.parametrize("arrays,fragment", [
    (dict(fps=np.float32(25), channels=np.array(["jawOpen", None], dtype=object), values=np.zeros((30, 2))),
     "object arrays are never loaded"),
    (dict(fps=np.float32(25), channels=np.array(["jawOpen"]), values=np.array([[1.0]] * 20 + [[np.nan]] * 20)),
     "20 NaN/infinite values \\(first at frame 20, channels jawOpen\\); the file or rig"),
    (dict(fps=np.float32(25), channels=np.array(["jawOpen", "noseWiggle"]), values=np.zeros((50, 2))),
     "channels Lalia doesn't know: noseWiggle"),
    (dict(fps=np.float32(25), channels=np.array(["jawOpen", ""]), values=np.zeros((50, 2))),
     "non-empty and distinct"),
    (dict(fps=np.float32(0), channels=np.array(["jawOpen"]), values=np.zeros((50, 1))), "between 1 and 1000"),
    (dict(fps=np.float32(1e-6), channels=np.array(["jawOpen"]), values=np.zeros((3, 1))), "between 1 and 1000"),
    (dict(fps=np.float32(25), channels=np.array(["jawOpen"]), values=np.zeros((10, 1))), "0.40 s long.*at least 1 s"),
    (dict(fps=np.float32(25), channels=np.array(["jawOpen"])), "lacks values"),
    (dict(fps=np.array([25, 30]), channels=np.array(["jawOpen"]), values=np.zeros((50, 1))),
     "'fps' must be one number"),
    (dict(fps=np.float32(25), channels=np.array(["jawOpen"]), values=np.array([["a"]] * 50)),
     "'values' must be numbers"),
])
def test_bad_npz_reference(tmp_path, arrays, fragment):
    with pytest.raises(LaliaError, match=fragment):
        Motion.load(_npz(tmp_path / "ref.npz", **arrays))


def test_damaged_npz_member(tmp_path):
    """Fuzz finding: a flipped byte inside a compressed member raised zlib.error."""
    p = tmp_path / "ref.npz"
    np.savez_compressed(p, fps=np.float32(25), channels=np.array(["jawOpen"]), values=np.random.rand(200, 1))
    b = bytearray(p.read_bytes())
    i = b.index(b"values.npy") + 60
    b[i:i + 40] = bytes(40)
    p.write_bytes(bytes(b))
    with pytest.raises(LaliaError, match="ref.npz"):
        Motion.load(p)


@pytest.mark.parametrize("text,fragment", [
    ("Timecode,BlendShapeCount,JawOpen\n00:00:00:01.000,52,abc\n", "row 2, column JawOpen: 'abc' is not a number"),
    ("JawOpen\n" + "0.5\n" * 30 + "nan\n" + "0.5\n" * 30, "NaN/infinite values"),
    ("JawOpen\n" + "1e999\n" * 70, "NaN/infinite values"),
    ("Timecode,JawOpen\naa:bb:cc:dd.eee,0.5\n", "timecode 'aa:bb:cc:dd.eee' is not HH:MM:SS:FF.mmm"),
    ("Timecode,JawOpen\n00:00:00:99999999.000,0.5\n", "fps must be between 1 and 1000"),
    ("Nose,Ear\n1,2\n", "no ARKit blendshape columns"),
    ("JawOpen\n", "no data rows"),
])
def test_bad_csv_reference(tmp_path, text, fragment):
    p = tmp_path / "ref.csv"
    p.write_text(text)
    with pytest.raises(LaliaError, match=fragment):
        Motion.load(p)


@pytest.mark.parametrize("doc,fragment", [
    ("{", "not valid JSON"),
    ("[" * 100000, "not valid JSON"),
    (json.dumps({"fps": 25, "channels": ["jawOpen"], "values": [[0.1]] * 10 + [[0.1, 0.2]]}),
     "'values' must be a list"),
    (json.dumps({"fps": "25", "channels": ["jawOpen"], "values": [[0.1]] * 50}), "'fps' must be a number"),
    (json.dumps({"fps": 25, "channels": "jawOpen", "values": [[0.1]] * 50}), "'channels' must be a list"),
    (json.dumps({"fps": 25, "channels": [], "values": [[]] * 50}), "no channels"),
    (json.dumps({"fps": 25, "channels": ["jawOpen"], "values": [[1e300]] * 50}), "NaN/infinite"),
    (json.dumps({"fps": 25, "channels": ["jawOpen"]}), "needs an object with fps, channels and values"),
])
def test_bad_json_reference(tmp_path, doc, fragment):
    p = tmp_path / "ref.json"
    p.write_text(doc)
    with pytest.raises(LaliaError, match=fragment):
        Motion.load(p)


def test_non_finite_motion_cannot_exist():
    values, fps, channels = _ref()
    values[3, 4] = np.nan
    with pytest.raises(LaliaError, match="1 NaN/infinite values \\(first at frame 3, channels eyeLookUpLeft\\)"):
        Motion(fps, channels, values)


def test_check_finite_guard_names_the_generated_motion():
    from model_core.base.motion import check_finite_values
    values, fps, channels = _ref()
    values[7, 17] = np.inf
    with pytest.raises(LaliaError, match="generated motion has 1 NaN/infinite values \\(first at frame 7, "
                                         "channels jawOpen\\); nothing was written. Try another seed"):
        check_finite_values(values, channels, "generated motion")
    m = Motion(fps, channels, _ref()[0])
    m.values[0, 0] = np.nan  # as if a later stage broke it after construction
    with pytest.raises(LaliaError, match="generated motion has 1 NaN"):
        m.check_finite("generated motion")


def test_bad_reference_through_generate(tmp_path, generator):
    p = _npz(tmp_path / "ref.npz", fps=np.float32(25), channels=np.array(["jawOpen"]), values=np.zeros((5, 1)))
    with pytest.raises(LaliaError, match="at least 1 s"):
        generator.generate(_speech(1.0), style=str(p))


# ---- FLAME --------------------------------------------------------------------------------------
def _flame(**changes):
    import scipy.sparse as sp
    from flame_fixture import _FakeCh
    rng = np.random.default_rng(0)
    V = 12
    reg = np.zeros((5, V))
    reg[np.arange(5), np.arange(5)] = 1.0
    d = {"v_template": rng.normal(0, 0.1, (V, 3)), "f": np.array([[i, (i + 1) % V, (i + 2) % V] for i in range(V)]),
         "shapedirs": _FakeCh(rng.normal(0, 1e-3, (V, 3, 305))), "J_regressor": sp.csc_matrix(reg),
         "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]]), "weights": np.full((V, 5), 0.2)}
    d.update(changes)
    return {k: v for k, v in d.items() if v is not None}


def _flame_file(tmp_path, **changes):
    from flame_fixture import write_flame_pickle
    return write_flame_pickle(tmp_path / "flame.pkl", _flame(**changes))


def test_tiny_flame_loads(tmp_path):
    assert load_flame(_flame_file(tmp_path)).n_exp == 5


def _bomb():
    b = [0.0] * 1000
    for _ in range(4):
        b = [b] * 1000
    return b


def _csc(**state):
    """A scipy csc_matrix whose pickled state is changed (scipy pickles its __dict__)."""
    import scipy.sparse as sp
    m = sp.csc_matrix(np.eye(5, 12))
    m.__dict__.update(state)
    return m


@pytest.mark.parametrize("changes,fragment", [
    (dict(f=None), "lacks f"),
    (dict(v_template=np.full((12, 3), np.nan)), "NaN or infinite values \\(in v_template"),
    (dict(weights=np.full((12, 5), np.inf)), "NaN or infinite values \\(in weights"),
    (dict(kintree_table=np.array([[0, 3, 1, 1, 1], [0, 1, 2, 3, 4]])), "not a tree"),
    (dict(f=np.array([[0, 1, 99]])), "vertex indices"),
    (dict(v_template=_bomb()), "holds over 50000000 numbers"),
    # fuzz finding: a 0-d face array (and template) raised TypeError from len()
    (dict(f=np.array(3.0), v_template=np.zeros((2, 2, 2))), "faces of shape \\(\\)"),
    (dict(v_template=np.array(1.0)), "not a usable FLAME model"),
    (dict(J_regressor=_csc(_shape=(10 ** 6, 10 ** 6))), "impossible shape"),
    (dict(J_regressor=_csc(indices=np.array([0, 99, 2, 3, 4]))), "sparse matrix in the file is inconsistent"),
    (dict(J_regressor=_csc(indptr=np.array([0, 9] + [5] * 11))), "sparse matrix in the file is inconsistent"),
])
def test_bad_flame_refused(tmp_path, changes, fragment):
    with pytest.raises(LaliaError, match=fragment):
        load_flame(_flame_file(tmp_path, **changes))


@pytest.mark.parametrize("payload,fragment", [
    (pickle.dumps({"v_template": __import__("os").system}), "refused to load 'posix.system'"),
    (b"\x80\x02c__builtin__\nbytearray\nJ\x00\x00\x00\x10\x85R.", "bytearray of a given size"),
    (b"\x80\x02}q\x00(X\x01\x00\x00\x00a", "not a readable pickle"),
])
def test_hostile_flame_pickles(tmp_path, payload, fragment):
    p = tmp_path / "flame.pkl"
    p.write_bytes(payload)
    with pytest.raises(LaliaError, match=fragment):
        load_flame(p)


def test_bad_npy_header(tmp_path):
    p = tmp_path / "lmk.npy"
    p.write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': (((( }\n")
    with pytest.raises(LaliaError, match="not a readable .npy"):
        load_flame(p)


# ---- output paths and atomic writes ---------------------------------------------------------------
@pytest.mark.parametrize("make,fragment", [
    (lambda t: t, "is a folder"),
    (lambda t: (t / "file.txt").write_text("x") and t / "file.txt" / "out.npz", "is a file, not a folder"),
    (lambda t: Path("/proc/lalia_out.npz"), "is not writable"),
    (lambda t: Path("/dev/null"), "not a regular file"),
])
def test_unusable_output_paths(tmp_path, make, fragment):
    with pytest.raises(LaliaError, match=fragment):
        check_output_path(make(tmp_path))
    assert not _leftovers(tmp_path)


def test_unknown_motion_format_refused_before_work(tmp_path):
    with pytest.raises(LaliaError, match="Unknown motion format 'txt'"):
        Motion.check_output(tmp_path / "out.txt")


@pytest.mark.parametrize("fmt", ["npz", "csv", "json"])
def test_failed_motion_save_keeps_the_old_file(tmp_path, monkeypatch, fmt):
    values, fps, channels = _ref()
    out = Motion(fps, channels, values).save(tmp_path / f"out.{fmt}")
    before = out.read_bytes()

    def half_then_fail(*a, **k):  # the serializer writes some bytes, then fails (disk full, a bug)
        target = a[0] if fmt == "npz" else a[1]
        if hasattr(target, "write"):
            target.write(b"PK\x03\x04 half a file")
        else:
            Path(target).write_text("half a file")
        raise OSError(28, "No space left on device")
    if fmt == "npz":
        monkeypatch.setattr(np, "savez_compressed", half_then_fail)
    elif fmt == "csv":
        monkeypatch.setattr("model_core.base.motion.write_live_link_csv", lambda m, p: half_then_fail(m, p))
    else:
        monkeypatch.setattr(Path, "write_text", lambda self, text: half_then_fail(None, open(self, "wb")))
    with pytest.raises((LaliaError, OSError)):
        Motion(fps, channels, values * 0.5).save(out)
    assert out.read_bytes() == before and not _leftovers(tmp_path)


def test_failed_write_with_no_old_file_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_write(tmp_path / "report.json") as tmp:
            tmp.write_text('{"half": ')
            raise RuntimeError("serializer bug")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_gives_normal_permissions(tmp_path):
    import os
    umask = os.umask(0o022)
    os.umask(umask)
    p = write_text_atomic(tmp_path / "r.json", "{}")
    assert (p.stat().st_mode & 0o777) == (0o666 & ~umask)


def test_failed_checkpoint_save_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    from model_core.base.vocabulary import EMOTIONS
    from model_core.model.networks import LaliaModel, ModelConfig
    cfg = ModelConfig(d_model=32, layers=1, heads=2, ffn=64, window=20, prev=4, style_dim=16, style_layers=1)
    manifest = {"channels": [f"c{i}" for i in range(55)], "fps": 25.0, "norm_mean": [0.0] * 55,
                "norm_std": [1.0] * 55, "emotions": list(EMOTIONS), "sampler": {"name": "ddim", "steps": 4}}
    path = save_checkpoint(tmp_path / "m.safetensors", LaliaModel(cfg), manifest)
    before = path.read_bytes(), manifest_path(path).read_bytes()
    import safetensors.torch

    def half_then_fail(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\x00" * 100)
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(safetensors.torch, "save_file", half_then_fail)
    with pytest.raises(LaliaError, match="No space left.*nothing was written"):
        save_checkpoint(path, LaliaModel(cfg), manifest)
    assert (path.read_bytes(), manifest_path(path).read_bytes()) == before and not _leftovers(tmp_path)
    monkeypatch.undo()
    broken = LaliaModel(cfg)
    with torch.no_grad():
        broken.denoiser.out.bias[0] = float("nan")
    with pytest.raises(LaliaError, match="NaN/infinite values .*previous checkpoint is kept"):
        save_checkpoint(path, broken, manifest)
    with pytest.raises(LaliaError, match="sampler steps"):
        save_checkpoint(path, LaliaModel(cfg), {**manifest, "sampler": {"name": "ddim", "steps": 0}})
    assert (path.read_bytes(), manifest_path(path).read_bytes()) == before


# ---- the command line -----------------------------------------------------------------------------
def _cli(*args, cwd=ROOT):
    r = subprocess.run([sys.executable, "-m", "model_core", *map(str, args)], capture_output=True, text=True,
                       cwd=cwd, timeout=300)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    return r.stderr


CLI_CASES = [  # (arguments after `generate`, given the test's files f; the message on stderr)
    (lambda f: [f["tmp"] / "none.wav", "--out", f["out"]], "error: Audio file not found"),
    (lambda f: [f["nan"], "--out", f["out"]], "error: The audio in nan.wav contains 1 NaN/infinite samples"),
    (lambda f: [f["audio"], "--out", f["tmp"]], "is a folder"),
    (lambda f: [f["audio"], "--out", f["tmp"] / "file" / "o.npz"], "is a file, not a folder"),
    (lambda f: [f["audio"], "--out", "/proc/o.npz"], "not writable"),
    (lambda f: [f["audio"], "--out", f["tmp"] / "o.txt"], "Unknown motion format 'txt'"),
    (lambda f: [f["audio"], "--out", f["out"], "--checkpoint", f["bad_ckpt"]], "'vae_hidden' is 8000"),
    (lambda f: [f["audio"], "--out", f["out"], "--emotion", "happy=abc"], "intensity must be a number"),
    (lambda f: [f["audio"], "--out", f["out"], "--style", f["tmp"] / "no_such.npz"], "neither a preset"),
    (lambda f: [f["audio"], "--out", f["out"], "--style", f["short_ref"]], "at least 1 s"),
]


@pytest.mark.parametrize("args,fragment", CLI_CASES)
def test_cli_bad_generate(tmp_path, args, fragment):
    x = _speech(1.0)
    f = {"tmp": tmp_path, "out": tmp_path / "out.npz", "audio": _wav(tmp_path / "a.wav", x),
         "bad_ckpt": _checkpoint(tmp_path, _set("model.vae_hidden", 8000)),
         "short_ref": _npz(tmp_path / "ref.npz", fps=np.float32(25), channels=np.array(["jawOpen"]),
                           values=np.zeros((5, 1)))}
    x[10] = np.nan
    f["nan"] = _wav(tmp_path / "nan.wav", x)
    (tmp_path / "file").write_text("x")
    f["out"].write_bytes(b"an older motion file")
    assert fragment in _cli("generate", *args(f))
    assert f["out"].read_bytes() == b"an older motion file" and not _leftovers(tmp_path)


def test_cli_report_path_checked_before_work(tmp_path):
    assert "is a folder" in _cli("eval", "--out", tmp_path)


# ---- long audio ---------------------------------------------------------------------------------
def test_long_audio_cost_is_logged_before_encoding(generator, monkeypatch, caplog):
    from model_core.model import speech_encoder
    monkeypatch.setattr(speech_encoder, "LONG_AUDIO_SECONDS", 1.0)
    with caplog.at_level("WARNING", logger="model_core.model.speech_encoder"):
        generator.encoder.encode(_speech(2.0))
    assert "min of audio: generating its motion takes about" in caplog.text
    t, mb = speech_encoder.estimate_cost(3600)
    assert 0 < t < 3600 and 0 < mb < 8192


@pytest.mark.parametrize("kwargs,msg", [(dict(seed=-1), "seed must be"), (dict(seed=2 ** 64), "seed must be"),
                                        (dict(steps=-1), "steps must be"), (dict(steps=2.5), "steps must be")])
def test_generate_refuses_bad_seed_and_steps(generator, kwargs, msg):
    with pytest.raises(LaliaError, match=msg):
        generator.generate(np.zeros(16000, np.float32), **kwargs)


def test_generate_refuses_an_array_of_text(generator):
    with pytest.raises(LaliaError, match="must be numbers"):
        generator.generate(np.array(["a"] * 2000))


def test_npz_with_an_encrypted_member_is_refused(tmp_path):
    """Found by `make fuzz`: zipfile raises RuntimeError for a member flagged as encrypted."""
    good = tmp_path / "good.npz"
    Motion(25.0, ARKIT_HEAD_LAYOUT, np.zeros((50, len(ARKIT_HEAD_LAYOUT)), np.float32)).save(good)
    data = bytearray(good.read_bytes())
    # set the "encrypted" bit of channels.npy in the central directory (zipfile won't write it)
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        name_len = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46:at + 46 + name_len] == b"channels.npy":
            data[at + 8] |= 0x1
        at = data.find(b"PK\x01\x02", at + 4)
    bad = tmp_path / "encrypted.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(LaliaError, match="not a readable npz"):
        Motion.load(bad)


def test_the_committed_fuzz_report_is_clean():
    """docs/fuzz_report.json (`make fuzz`): every loader fuzzed for 10 minutes, and nothing but
    success or LaliaError came out; what earlier runs found is listed with its regression test."""
    report = json.loads((Path(__file__).resolve().parents[1] / "docs" / "fuzz_report.json").read_text())
    assert set(report["targets"]) == {"audio", "manifest", "motion", "flame"}
    for name, r in report["targets"].items():
        assert r["seconds"] >= 600 and r["executions"] > 1000, name
        assert r["findings"] == {}, (name, r["findings"])
        assert r["lalia_errors"] + r["accepted"] == r["executions"], name
    for fixed in report.get("fixed_before_this_run", []):
        assert fixed["regression_test"] in Path(__file__).read_text(), fixed
