"""The generator: audio -> Motion, through the speech encoder and the diffusion sampler.

`Generator.generate` reads top to bottom as the pipeline:
1. speech features from the audio (`features.py`); with a transcript, its alignment to the
   audio runs meanwhile in the aligner's child process (`transcript.py`);
2. the conditions (`conditions.py`): emotion codes from the sliders, a curve, the voice or a
   reference; the style from a preset, a reference or the identity library matched to the voice,
   moved by the style sliders;
3. the decoupled priors: the content prior's codes decoded by the AD-VAE with the emotion code,
   and neutral (ExpTalk);
4. sampling in overlapping windows, each conditioned on the frames before it (`windows.py`);
   (with a usable transcript, models with a phone path read its per-frame phones there);
5. the post-sampling layers (`post.py`: with a usable transcript the closure layer holds the
   aligned /p b m/) and the per-region strengths (`strength.py`);
6. for a regenerated range, the new frames spliced into the kept motion (`ranges.py`).
One generator serves many generations, from any thread: everything a generation decides is
returned in its `Generation`, nothing is kept on the generator.
"""
from __future__ import annotations

import logging
import numbers
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..base.errors import LaliaError
from ..base.motion import ARKIT_NAMES, Motion, check_finite_values
from ..base.phones import UNKNOWN_PHONE, phone_track
from ..model.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from ..model.diffusion import SAMPLERS, cosine_schedule, spaced_timesteps
from .conditions import Conditions
from .features import encode, load_wav, n_frames_of
from .options import Generation, GenerationOptions, Timings
from .post import apply_post_layers
from .ranges import check_range, splice
from .strength import apply_strengths, check_strengths
from .transcript import align_transcript_soon, bilabial_frames, check_transcript
from .windows import Cancelled, WindowSampler  # noqa: F401  (Cancelled: part of the API)

log = logging.getLogger(__name__)


class Generator:
    def __init__(self, model, manifest: dict, extra: dict, device: str = "cpu", encoder=None):
        self.model, self.manifest, self.device = model, manifest, device
        self.cfg = model.cfg
        self.conditions = Conditions(model, manifest, extra, device)
        self.channels, self.fps, self.emotions = self.conditions.channels, self.conditions.fps, self.conditions.emotions
        self.mean, self.std = self.conditions.mean, self.conditions.std
        self.schedule = cosine_schedule(self.cfg.num_train_steps)
        self._encoder = encoder

    @property
    def encoder(self):
        if self._encoder is None:
            from ..model.speech_encoder import SpeechEncoder
            self._encoder = SpeechEncoder(device=self.device)
        return self._encoder

    @torch.inference_mode()
    def generate(self, audio, options: GenerationOptions | None = None, *,
                 progress: Callable[[float], None] | None = None, cancel: Callable[[], bool] | None = None,
                 **changes) -> Generation:
        """Audio (path or 16 kHz float array) -> a `Generation` whose motion is at 25 fps
        (52 ARKit + head rotation). `options` (default: `GenerationOptions()`) say everything
        else; keyword arguments change single options, e.g. `generate(wav, seed=2, style="calm")`.
        `progress(fraction)` is called after each window; `cancel()` returning True stops with
        `Cancelled` before the next one."""
        opts = (options or GenerationOptions()).replace(**changes) if changes else (options or GenerationOptions())
        info: dict = {}
        timings = Timings()
        text = check_transcript(opts.transcript)
        wav, timings.audio = load_wav(audio)
        # the transcript's alignment runs in the aligner's child while the speech is encoded
        pending = align_transcript_soon(wav, text, n_frames_of(wav, self.fps), self.fps) if text else None
        feats, timings.encoder = encode(wav, self.encoder, self.fps, fit=opts.encoder_fit)
        T = len(feats)
        f = torch.from_numpy(feats).to(self.device)
        cond = self.conditions
        code = cond.emotion_codes(opts.emotion, opts.emotion_from_voice, opts.emotion_reference, f, T, info)
        if not 0.0 <= float(opts.blink_rate) <= 2.0:
            raise LaliaError(f"blink_rate must be between 0 and 2, got {opts.blink_rate}")
        span = check_range(opts.keep, opts.frames, self.channels, self.fps, T)
        check_strengths(opts.strength)  # before the work, not after it
        reference = cond.style_reference(opts.style)
        style_vec, amounts = cond.style_vector(opts.style if reference is None else reference, f, info)
        style_vec = cond.apply_style_sliders(style_vec, dict(
            head_motion=opts.head_motion, expressiveness=opts.expressiveness, brow_activity=opts.brow_activity))
        sampler = self.window_sampler(opts)
        phones, closures = self.transcript_phones(pending, T, info, timings)
        t0 = time.perf_counter()  # "sampler" time includes the priors
        # the decoupled priors: with the emotion code, and neutral (the no-emotion guidance
        # branch's prior, and the words' own mouth that the closure layer holds the lips to)
        c_hat = self.model.content_prior(f[None], phones)
        priors = (self.model.vae.decode(c_hat, code[None])[0],
                  self.model.vae.decode(c_hat, self.model.neutral_code().expand(1, T, -1))[0])
        kept = None if span is None else opts.keep.select(self.channels).values
        known = None if kept is None else (torch.from_numpy(kept).to(self.device) - self.mean) / self.std
        out = sampler.sample(f, code, priors, style_vec, progress, cancel, known=known, span=span)
        timings.sampler = time.perf_counter() - t0
        values = apply_post_layers(self.to_values(out), self.to_values(priors[1]), self.channels, self.fps, wav,
                                   opts, amounts, reference, info, closures)
        apply_strengths(values, self.channels, opts.strength)
        if span is not None:
            values = splice(kept, values, *span)
        # the final guard: motion that is not finite never leaves the core
        return Generation(Motion(self.fps, self.channels, check_finite_values(values, self.channels)), info, timings)

    def transcript_phones(self, pending, T: int, info: dict, timings: Timings):
        """The transcript's alignment (`pending`, a future, or None) -> (the phone track for
        the content prior (1 x T, models with a phone path) or None, the aligned bilabials'
        frames for the closure layer or None). What was used goes into info["transcript"];
        why a transcript was not, into info["warnings"] (and the log)."""
        if pending is None:
            return None, None
        aligned = pending.result()
        timings.extra["alignment"] = round(aligned.seconds, 4)
        info["transcript"] = aligned.info()
        if aligned.warning:
            info.setdefault("warnings", []).append(aligned.warning)
            log.warning(aligned.warning)
        if not aligned.used:
            return None, None
        phones = None
        if self.cfg.n_phones == UNKNOWN_PHONE:  # a phone path over this alphabet
            phones = torch.from_numpy(phone_track(aligned.phones, T, self.fps))[None].to(self.device)
        info["transcript"].update(phones_to_model=phones is not None, closures_from="transcript")
        return phones, bilabial_frames(aligned.phones, T, self.fps)

    def window_sampler(self, opts: GenerationOptions) -> WindowSampler:
        """The sampler, its timesteps and guidance scales (the model's defaults unless `opts`
        say otherwise), seeded with opts.seed."""
        defaults = self.manifest["sampler"]
        whole = lambda x: isinstance(x, numbers.Integral) and not isinstance(x, bool)
        if opts.steps is not None and not (whole(opts.steps) and 1 <= opts.steps <= self.cfg.num_train_steps):
            raise LaliaError(f"steps must be a whole number from 1 to {self.cfg.num_train_steps} (or None for the "
                             f"model's default), got {opts.steps!r}")
        if not (whole(opts.seed) and 0 <= opts.seed < 2 ** 63):
            raise LaliaError(f"seed must be a whole number from 0 to 2^63 - 1, got {opts.seed!r}")
        steps = int(opts.steps or defaults["steps"])
        sampler_fn = SAMPLERS.get(opts.sampler or defaults["name"])
        if sampler_fn is None:
            raise LaliaError(f"Unknown sampler '{opts.sampler}'; choose from {', '.join(SAMPLERS)}")
        scales = {**defaults.get("guidance", {}), **(opts.guidance or {})}
        if self.manifest.get("guidance_fixed") and any(abs(float(v) - 1.0) > 1e-6 for v in scales.values()):
            raise LaliaError("This model was distilled at guidance 1 and has no guidance scales; use the "
                             "teacher (or a guidance-distilled student) for other scales")
        timesteps = spaced_timesteps(self.cfg.num_train_steps, steps)
        seed = torch.Generator(device="cpu").manual_seed(int(opts.seed))
        return WindowSampler(self.model, sampler_fn, self.schedule, timesteps, scales, seed, self.device)

    def to_values(self, x: torch.Tensor) -> np.ndarray:
        """Normalised motion -> channel values; blendshape weights clipped to 0..1 (FLAME isn't)."""
        values = (x * self.std + self.mean).cpu().numpy()
        arkit = np.array([c in ARKIT_NAMES for c in self.channels])
        values[:, arkit] = np.clip(values[:, arkit], 0.0, 1.0)
        return values


def load_generator(checkpoint=None, device: str = "cpu") -> Generator:
    """The default model (or `checkpoint`) ready to `.generate(audio, ...)`."""
    path = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
    if device == "cuda" and not torch.cuda.is_available():
        raise LaliaError("CUDA was requested but no GPU is available")
    model, manifest, extra = load_checkpoint(path, device)
    return Generator(model, manifest, extra, device)
