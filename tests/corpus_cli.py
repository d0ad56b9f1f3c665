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
