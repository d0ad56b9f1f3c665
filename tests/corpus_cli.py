"""Building a corpus through the CLI, for the corpus fixtures and tests."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_corpus_cli(out, hours, seed, workers):
    """Build a corpus as users do, in a fresh process: espeak-ng's output depends on what the
    process synthesized before, and the forked workers inherit that state."""
    subprocess.run([sys.executable, "-m", "model_core", "corpus", "build", "--hours", str(hours), "--out",
                    str(out), "--seed", str(seed), "--workers", str(workers)], check=True, cwd=ROOT)


def doctored_corpus(src, dst, change):
    """A copy of corpus `src` at `dst` whose every shard's arrays (a dict) went through `change`
    (which edits it in place): a corpus lacking what a training stage needs."""
    import shutil

    import numpy as np
    shutil.copytree(src, dst)
    for shard in Path(dst).glob("*/shard_*.npz"):
        with np.load(shard, allow_pickle=False) as d:
            arrays = {k: d[k] for k in d.files}
        change(arrays)
        np.savez(shard, **arrays)
    return Path(dst)
