# Quick start: `make demo` and `make test` on a fresh clone; each sets up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
# A local wheel folder (CI machines keep the CPU torch wheel there) is used when present.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
SYSTEM_STAMP := $(VENV)/.system-packages
PYTEST_ARGS ?=
# A strict editable install: a tree of links under build/ that Python and the static tools
# (lint-imports, ruff) both see as the one package stylize_rt with its stage subpackages.
# It links each file, so a new or removed file needs a reinstall: the file list decides.
PACKAGE_FILES := $(sort $(wildcard src/stylize_rt/*.py src/stylize_rt/*/*.py src/stylize_rt/models/*/* \
                   training/*.py export/*.py engines/*.py runtime/*.py runtime/*/*.py benchmarks/*.py))
FILE_LIST := $(VENV)/.package-files
$(shell mkdir -p $(VENV) && (echo '$(PACKAGE_FILES)' | cmp -s - $(FILE_LIST) || echo '$(PACKAGE_FILES)' > $(FILE_LIST)))

.PHONY: demo test setup setup-dev clean models bench-cpu gpu-check gpu-check-site

demo: $(RUNTIME_STAMP)
	$(VENV)/bin/stylize-rt demo --output-dir out/demo

test: $(DEV_STAMP) $(SYSTEM_STAMP)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

setup: $(RUNTIME_STAMP)
setup-dev: $(DEV_STAMP) $(SYSTEM_STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): pyproject.toml requirements/runtime.txt $(FILE_LIST) | $(PY)
	$(PIP) -r requirements/runtime.txt
	$(PIP) --no-deps -e . --config-settings editable_mode=strict
	touch $@

$(DEV_STAMP): $(RUNTIME_STAMP) requirements/dev.txt requirements/triton-server.txt
	$(PIP) $(FIND_LINKS) -r requirements/dev.txt
	$(PIP) --no-deps -r requirements/triton-server.txt
	touch $@

# Debian packages the tests use: ffmpeg/ffprobe (an independent reader of the videos we write) and
# chromium (plays them in a real <video> element), qemu-user (qemu-x86_64 emulates an AVX2 CPU
# without VNNI, where ONNX Runtime's INT8 kernels differ). Installed where apt-get exists and we are
# root; elsewhere the tests that need them skip and say why.
SYSTEM_TOOLS := ffmpeg chromium qemu-user
$(SYSTEM_STAMP): | $(PY)
	@if ! command -v ffprobe >/dev/null || ! command -v chromium >/dev/null || ! command -v qemu-x86_64 >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "apt-get install $(SYSTEM_TOOLS) (for the video and browser tests)"; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_TOOLS) >/dev/null) \
				|| echo "note: apt-get could not install $(SYSTEM_TOOLS); the tests that need them will skip"; \
		else echo "note: $(SYSTEM_TOOLS) not installed (needs root and apt-get); the tests that need them will skip"; fi; \
	fi
	@if command -v ffprobe >/dev/null && command -v chromium >/dev/null && command -v qemu-x86_64 >/dev/null; then touch $@; fi

# Retrain and re-export the embedded default models (wall times: docs/MODELS.md, docs/CAPTIONER.md).
# The generator: training (20-29 min at 1 thread), then its INT8 fine-tune (export.qat, 13-21 min at 1
# thread), then both graphs and the INT8 quality floor (~1 min); --qat-only reruns the last two.
# The captioner: the fact decoder on synthetic facts (MLE + caption GAN, ~17-25 min at 1 thread), then
# export with the INT8 ImageNet classifier (~1-2 min), then its numbers on the packaged photos (~3 min).
CAPTIONER_TRAIN := stylize-rt train captioner -o runs/captioner_facts --steps 5000 --gan-steps 150 --threads 1
CAPTIONER_EXPORT := python -m stylize_rt.export.captioner runs/captioner_facts src/stylize_rt/models/captioner --embedded
models: $(DEV_STAMP)
	$(PY) -m stylize_rt.recipes.embedded --threads 1
	$(VENV)/bin/$(CAPTIONER_TRAIN)
	$(PY) $(subst python ,,$(CAPTIONER_EXPORT)) --source "$(CAPTIONER_TRAIN) && $(CAPTIONER_EXPORT)"
	$(PY) -m stylize_rt.benchmarks.caption_quality --json benchmarks/results/caption_quality.json \
		--sheet docs/images/captioner_photos.png

# Re-measure the CPU matrix in docs/BENCHMARKS.md (minutes; run on a quiet machine).
bench-cpu: $(DEV_STAMP)
	$(PY) -m stylize_rt.recipes.cpu_matrix

# Every GPU claim in one call on a GPU machine (docs/GPU.md): installs nothing, runs this checkout in
# place with the machine's own python, writes benchmarks/results/gpu_check.{json,md}; exit 2 without a GPU.
# GPU_CHECK_ARGS="--out-dir DIR" writes elsewhere; PYTHON=python picks another interpreter.
GPU_CHECK_ARGS ?=
gpu-check:
	$(PYTHON) benchmarks/gpu_check.py --out-dir benchmarks/results $(GPU_CHECK_ARGS)

# Before a gpu-check on a bare machine, here: the wheels it lacks (tqdm, safetensors) unpacked, and real
# photos, into build/gpu-site (about 3 MiB; carry it along, gpu-check uses it from there).
gpu-check-site: $(DEV_STAMP)
	$(PY) benchmarks/gpu_check.py --prepare-site build/gpu-site

clean:
	rm -rf $(VENV) out .pytest_cache build
