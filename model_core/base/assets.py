"""Where the bundled assets live (the head, the speech encoder, the default model, the sample)."""
from pathlib import Path

ASSET_DIR = Path(__file__).resolve().parents[1] / "assets"
SAMPLE_SPEECH = ASSET_DIR / "sample_speech.flac"  # a bundled read-speech clip (see its provenance file)
# the shipped default model's weights; its manifest is the same name with .json (a path only, so
# that reading it needs no torch)
DEFAULT_MODEL = ASSET_DIR / "default_model.safetensors"
