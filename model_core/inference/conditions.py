"""The model's conditions from what the user asks for: the style vector (a preset, a reference,
the identity library matched to the voice, moved by the style sliders) and the amounts it
stands for, and the per-frame emotion codes (sliders, a curve, the voice, or a reference)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..base.errors import LaliaError
from ..base.motion import Motion


def emotion_vector(emotion, emotions: tuple[str, ...]) -> np.ndarray:
    """{'happy': 0.7, 'sad': 0.2} or an (8,) array -> (8,) intensities in 0..1."""
    v = np.zeros(len(emotions), np.float32)
    if emotion is None:
        return v
    if isinstance(emotion, dict):
        for k, x in emotion.items():
            if k not in emotions:
                raise LaliaError(f"Unknown emotion '{k}'; choose from {', '.join(emotions)}")
            v[emotions.index(k)] = float(x)
    else:
        v = np.asarray(emotion, np.float32)
    if not np.all((v >= 0) & (v <= 1)):
        raise LaliaError("Emotion intensities must be between 0 and 1")
    return v


class Conditions:
    """A checkpoint's style space and emotion space, unpacked once from its manifest and extras."""

    def __init__(self, model, manifest: dict, extra: dict, device: str = "cpu"):
        self.model, self.manifest, self.device = model, manifest, device
        self.cfg = model.cfg
        self.channels = tuple(manifest["channels"])
        self.fps = float(manifest["fps"])
        self.emotions = tuple(manifest["emotions"])
        self.mean = torch.tensor(manifest["norm_mean"], device=device)
        self.std = torch.tensor(manifest["norm_std"], device=device)
        self.presets = {k.split(".", 1)[1]: v.float().to(device) for k, v in extra.items()
                        if k.startswith("preset.")}
        self.preset_descriptions = manifest.get("style_presets", {})
        # style sliders: a direction in style space per unit of the property, and the
        # property's half range over the training speakers (slider 0..2, 1 = unchanged)
        self.slider_directions = {k.split(".", 1)[1]: v.float().to(device) for k, v in extra.items()
                                  if k.startswith("slider.")}
        self.slider_info = manifest.get("style_sliders", {})
        # the style each identity stands for (set by `ship`); else the embeddings themselves
        self.identity_styles = extra["identity_styles"].float().to(device) if "identity_styles" in extra else None
        # the amounts (`ship.AMOUNTS`: head motion, brow activity, mouth sides) each preset and
        # identity stands for; the denoiser hardly follows them, so the amplitude layer sets them
        self.amount_names = tuple(manifest.get("style_amounts", ()))
        self.preset_amounts = {k.split(".", 2)[2]: v.float().cpu() for k, v in extra.items()
                               if k.startswith("amounts.preset.")}
        self.identity_amounts = extra["amounts.identity"].float().cpu() if "amounts.identity" in extra else None

    # ---- style --------------------------------------------------------------------------
    def average_style(self) -> torch.Tensor | None:
        """The mean talking identity: a central style the sliders can move from."""
        if self.identity_styles is not None:
            return self.identity_styles.mean(0)
        return self.model.identities.embeddings.mean(0) if self.cfg.n_identities else None

    def style_vector(self, style, feats: torch.Tensor | None = None,
                     info: dict | None = None) -> tuple[torch.Tensor | None, dict]:
        """The style condition and the amounts it stands for. Style: None or "auto" (match the
        audio to the identity library), "average" (the mean identity), a preset name, a motion
        file (npz/csv/json), a Motion, or a raw vector. The vector is None for "no style
        condition" (models without identities); the amounts ({"head_motion": 0.4, ...}, relative
        to the average speaker) are those of a preset or of the matched identities, else empty.
        The matched identities go into `info["identities"]`."""
        if isinstance(style, str) and style.lower() in ("average", "none", ""):
            return self.average_style(), {}
        if style is None or (isinstance(style, str) and style.lower() == "auto"):
            if feats is None or self.cfg.n_identities == 0:
                return None, {}
            vec, idx, w = self.model.identities.match(feats[None], values=self.identity_styles)
            ids = self.manifest.get("identities", [])
            if info is not None:
                info["identities"] = [
                    {"library_index": int(i), "speaker": ids[int(i)] if int(i) < len(ids) else None,
                     "weight": round(float(x), 3)} for i, x in zip(idx, w)]
            amounts = ((w.cpu()[:, None] * self.identity_amounts[idx.cpu()]).sum(0)
                       if self.identity_amounts is not None else None)
            return vec, self._amounts(amounts)
        if isinstance(style, str) and style in self.presets:
            return self.presets[style], self._amounts(self.preset_amounts.get(style))
        reference = self.style_reference(style)
        if reference is not None:
            return self.style_from_motion(reference), {}
        v = torch.as_tensor(np.asarray(style, np.float32), device=self.device)
        if v.shape != (self.cfg.style_dim,):
            raise LaliaError(f"A style vector must have {self.cfg.style_dim} values")
        return v, {}

    def _amounts(self, values: torch.Tensor | None) -> dict:
        return {} if values is None else {k: float(v) for k, v in zip(self.amount_names, values)}

    def style_reference(self, style) -> Motion | None:
        """The reference motion a style names (a Motion or a motion file), else None."""
        if isinstance(style, Motion):
            return style
        if isinstance(style, str) and (style in self.presets or style.lower() in ("auto", "average", "none", "")):
            return None
        if isinstance(style, (str, Path)):
            p = Path(style)
            if not p.exists():
                raise LaliaError(f"Style '{style}' is neither a preset ({', '.join(sorted(self.presets)) or 'none'}), "
                                 f"'auto', 'average', nor an existing motion file")
            return Motion.load(p)
        return None

    def _reference_clips(self, motion: Motion, what: str) -> list[torch.Tensor]:
        """Normalised 4 s clips of a reference motion (any fps, any ARKit subset)."""
        m = motion.resample(self.fps).select(self.channels)
        x = (torch.from_numpy(m.values).to(self.device) - self.mean) / self.std
        if len(x) < 25:
            raise LaliaError(f"A {what} reference needs at least 1 s of motion")
        N = self.cfg.window
        return [x[s:s + N] for s in range(0, max(1, len(x) - N + 1), N)]

    @torch.inference_mode()
    def style_from_motion(self, motion: Motion) -> torch.Tensor:
        """Style vector from reference motion: the mean over its 4 s clips."""
        return torch.stack([self.model.style_encoder(c[None])[0]
                            for c in self._reference_clips(motion, "style")]).mean(0)

    def apply_style_sliders(self, style: torch.Tensor | None, sliders: dict) -> torch.Tensor | None:
        """Move a style vector along the fitted property directions. A slider at 1 leaves the
        property as it is; 0 and 2 move it by half its range over the training speakers."""
        moves = {k: float(v) for k, v in sliders.items() if abs(float(v) - 1.0) > 1e-6}
        for k, v in sliders.items():
            if not 0.0 <= float(v) <= 2.0:
                raise LaliaError(f"{k} must be between 0 and 2, got {v}")
        if not moves:
            return style
        if style is None:
            raise LaliaError("This model has no style space to move in; leave the style sliders at 1")
        for k, v in moves.items():
            if k not in self.slider_directions:
                raise LaliaError(f"This model has no '{k}' slider (it has: "
                                 f"{', '.join(sorted(self.slider_directions)) or 'none'})")
            style = style + (v - 1.0) * self.slider_info[k]["half_range"] * self.slider_directions[k]
        return style

    # ---- emotion ------------------------------------------------------------------------
    @torch.inference_mode()
    def emotion_from_motion(self, motion: Motion) -> torch.Tensor:
        """Emotion code of reference motion (the AD-VAE's emotion encoder, averaged)."""
        codes = [self.model.vae.encode(c[None])[2][0] for c in self._reference_clips(motion, "emotion")]
        return torch.cat(codes).mean(0)

    def emotion_curve(self, emotion, from_voice: bool, feats: torch.Tensor, T: int) -> torch.Tensor:
        """T x 8 slider intensities: given (vector, dict or curve), from the voice, or neutral."""
        if emotion is not None and np.ndim(emotion) == 2:
            curve = np.asarray(emotion, np.float32)
            if curve.shape[1] != len(self.emotions) or not np.all((curve >= 0) & (curve <= 1)):
                raise LaliaError(f"An emotion curve must be T x {len(self.emotions)} in 0..1")
            idx = np.clip(np.round(np.linspace(0, len(curve) - 1, T)).astype(int), 0, len(curve) - 1)
            return torch.from_numpy(curve[idx]).to(self.device)
        vec = emotion_vector(emotion, self.emotions)
        if from_voice and not vec.any():
            v = self.model.voice_emotion(feats[None])[0]
            k = min(T, 25)  # smooth over ~1 s: emotion changes slowly
            kernel = torch.ones(1, 1, k, device=self.device) / k
            v = torch.nn.functional.conv1d(v.t()[:, None], kernel, padding=k // 2)[:, 0, :T].t()
            return v.clamp(0, 1)
        if not vec.any():
            vec[self.emotions.index("neutral")] = 1.0
        return torch.from_numpy(np.tile(vec, (T, 1))).to(self.device)

    def emotion_codes(self, emotion, from_voice, reference, feats, T, info: dict) -> torch.Tensor:
        """T x De emotion codes for the denoiser and the decoupled prior; the mean slider mix
        goes into `info["emotion_mean"]`."""
        if reference is not None:
            ref = reference if isinstance(reference, Motion) else Motion.load(reference)
            return self.emotion_from_motion(ref).expand(T, -1)
        curve = self.emotion_curve(emotion, from_voice, feats, T)
        info["emotion_mean"] = dict(zip(self.emotions, np.round(curve.mean(0).cpu().numpy(), 3).tolist()))
        return self.model.vae.emotion_code(curve)
