"""The articulation stage: the content prior gains a phone path (zero at first, so the model's
output is unchanged) and learns to read phones; nothing but the content prior trains."""
import numpy as np
import pytest
import torch
from corpus_cli import doctored_corpus

from model_core.base.errors import LaliaError
from model_core.base.phones import UNKNOWN_PHONE, phone_track
from model_core.base.vocabulary import PHONES


def test_phone_track_follows_the_timings():
    track = phone_track([("sil", 0.0, 0.1), ("p", 0.1, 0.18), ("aa", 0.18, 0.4), ("xx", 0.4, 0.44)], 12)
    ix = PHONES.index
    assert track.tolist() == [ix("sil")] * 3 + [ix("p")] * 2 + [ix("aa")] * 5 + [UNKNOWN_PHONE] * 2


def test_a_grown_phone_path_changes_nothing_until_trained():
    from model_core.model.networks import LaliaModel, ModelConfig
    from model_core.training.articulation import with_phone_path
    torch.manual_seed(0)
    model = LaliaModel(ModelConfig(d_model=32, layers=1, heads=2, ffn=64, style_dim=16, vae_hidden=16)).eval()
    grown = with_phone_path(model)
    assert grown.cfg.n_phones == len(PHONES) and model.cfg.n_phones == 0
    audio = torch.randn(1, 40, model.cfg.audio_dim)
    phones = torch.randint(0, len(PHONES), (1, 40))
    with torch.no_grad():
        base = model.content_prior(audio)
        torch.testing.assert_close(grown.content_prior(audio), base)
        torch.testing.assert_close(grown.content_prior(audio, phones), base)  # zero embedding
    # a few optimiser steps on tracks with unknown frames: known rows move, the unknown row stays
    # zero, so an audio-only call is still the same network
    phones[0, ::3] = UNKNOWN_PHONE
    opt = torch.optim.AdamW(grown.content_prior.parameters(), lr=1e-2, weight_decay=0.01)
    for _ in range(3):
        opt.zero_grad()
        grown.content_prior(audio, phones).pow(2).mean().backward()
        opt.step()
    with torch.no_grad():
        assert grown.content_prior.phone_embedding.weight[:UNKNOWN_PHONE].abs().sum() > 0
        unknown = torch.full_like(phones, UNKNOWN_PHONE)
        torch.testing.assert_close(grown.content_prior(audio, unknown), grown.content_prior(audio))


def test_articulate_trains_the_content_prior_only(tmp_path, tiny_corpus, train_config):
    from model_core.model.checkpoint import load_checkpoint
    from model_core.training.articulation import ArticulationConfig, articulate
    from model_core.training.train import train
    teacher = train(train_config(tiny_corpus, 1))
    out = articulate(teacher, [tiny_corpus, tiny_corpus], tmp_path / "a.safetensors",
                     ArticulationConfig(steps=4, batch=4, threads=1))
    before, _, _ = load_checkpoint(teacher)
    after, manifest, _ = load_checkpoint(out)
    assert after.cfg.n_phones == len(PHONES)
    own = before.state_dict()
    changed = {k for k, v in after.state_dict().items() if k not in own or not torch.equal(v, own[k])}
    assert changed and all(k.startswith("content_prior.") for k in changed)
    rec = manifest["articulation"][-1]
    assert len(manifest["articulation"]) == 1 and rec["config"]["steps"] == 4 and rec["corpora"] == ["c", "c"]


def test_articulate_refuses_a_corpus_without_phones(tmp_path, tiny_corpus, train_config):
    import json

    from model_core.training.articulation import articulate
    from model_core.training.train import train
    teacher = train(train_config(tiny_corpus, 1))

    def no_phones(arrays):
        labels = json.loads(str(arrays["labels"]))
        arrays["labels"] = np.array(json.dumps([{**lab, "phones": []} for lab in labels]))
    bare = doctored_corpus(tiny_corpus, tmp_path / "bare", no_phones)
    with pytest.raises(LaliaError, match="no phone timings"):
        articulate(teacher, [bare], tmp_path / "a.safetensors")
    assert not (tmp_path / "a.safetensors").exists()


def test_the_shipped_model_reads_phones_and_audio_alone_is_its_audio_path():
    """`make articulate` gave the shipped model a phone path (first alone, then with the audio path
    on synthetic and natural voices); its unknown row is zero, so a line without a transcript runs
    the audio path alone, and phones change the words' code."""
    from model_core.model.checkpoint import load_checkpoint
    model, manifest, _ = load_checkpoint()
    rounds = manifest["articulation"]
    assert model.cfg.n_phones == len(PHONES)
    assert [r["config"]["phones_only"] for r in rounds] == [True, False]
    assert rounds[1]["corpora"] == ["articulation", "natural", "natural2"] and rounds[1]["history"][-1]["step"] == 600
    emb = model.content_prior.phone_embedding.weight
    assert emb[UNKNOWN_PHONE].abs().max() == 0 and emb[:UNKNOWN_PHONE].abs().max() > 0
    audio = torch.randn(1, 50, model.cfg.audio_dim)
    phones = torch.from_numpy(phone_track([("m", 0.0, 0.4), ("aa", 0.4, 1.2), ("p", 1.2, 1.5)], 50))[None]
    with torch.no_grad():
        alone = model.content_prior(audio)
        torch.testing.assert_close(model.content_prior(audio, torch.full_like(phones, UNKNOWN_PHONE)), alone)
        assert (model.content_prior(audio, phones) - alone).abs().max() > 0.1
