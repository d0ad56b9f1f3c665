"""What `ship` derives from the corpus's style labels: the presets' speakers and the amounts a
preset or identity brings (on plain arrays of speaker style fields)."""
import numpy as np

from model_core.base.vocabulary import STYLE_FIELDS
from model_core.data.animator import Style
from model_core.training.ship import AMOUNTS, PRESETS, identity_amounts, preset_speakers, style_amounts


def _speakers(n=60, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([Style.sample(rng).as_array() for _ in range(n)])


def test_preset_speakers_are_the_most_extreme_in_the_described_directions():
    P = _speakers()
    head = P[:, STYLE_FIELDS.index("head_amount")]
    top = preset_speakers(P, {"head_amount": -1}, per_preset=12)
    assert set(top) == set(np.argsort(head)[:12])
    calm = preset_speakers(P, PRESETS["calm"][1])
    for field in ("articulation", "head_amount"):  # calm: less of both than the average speaker
        assert P[calm, STYLE_FIELDS.index(field)].mean() < P[:, STYLE_FIELDS.index(field)].mean()


def test_amounts_are_relative_to_the_average_speaker():
    P = _speakers()
    names = list(AMOUNTS)
    everyone = style_amounts(P, np.arange(len(P))).numpy()
    np.testing.assert_allclose(everyone, [1.0 if kind == "ratio" else 0.0 for _, kind in AMOUNTS.values()],
                               atol=1e-6)
    stoic = style_amounts(P, preset_speakers(P, PRESETS["stoic"][1])).numpy()
    assert stoic[names.index("head_motion")] < 0.8 and stoic[names.index("brow_activity")] < 0.5
    lopsided = style_amounts(P, preset_speakers(P, PRESETS["lopsided"][1])).numpy()
    assert lopsided[names.index("asymmetry")] > 0.1
    one = 7
    row = style_amounts(P, [one]).numpy()
    assert row[names.index("head_motion")] == np.float32(
        P[one, STYLE_FIELDS.index("head_amount")] / P[:, STYLE_FIELDS.index("head_amount")].mean())
    # library identities: their speaker's amounts; one without clips in the corpus, the average's
    ids = identity_amounts(P, speakers=list(range(100, 100 + len(P))), identities=[100 + one, 999])
    np.testing.assert_allclose(ids[0].numpy(), row)
    np.testing.assert_allclose(ids[1].numpy(), everyone, atol=1e-6)
