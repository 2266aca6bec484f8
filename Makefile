# Quick start: `make demo` and `make test` on a fresh clone; each sets up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
# A local wheel folder (CI machines keep the CPU torch wheel there) is used when present.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
PYTEST_ARGS ?=
# A strict editable install: a tree of links under build/ that Python and the static tools
# (lint-imports, ruff) both see as the one package stylize_rt with its stage subpackages.
# It links each file, so a new or removed file needs a reinstall: the file list decides.
PACKAGE_FILES := $(sort $(wildcard src/stylize_rt/*.py src/stylize_rt/*/*.py src/stylize_rt/models/*/* \
                   training/*.py export/*.py engines/*.py runtime/*.py runtime/*/*.py benchmarks/*.py))
FILE_LIST := $(VENV)/.package-files
$(shell mkdir -p $(VENV) && (echo '$(PACKAGE_FILES)' | cmp -s - $(FILE_LIST) || echo '$(PACKAGE_FILES)' > $(FILE_LIST)))

.PHONY: demo test setup setup-dev clean models bench-cpu

demo: $(RUNTIME_STAMP)
	$(VENV)/bin/stylize-rt demo --output-dir out/demo

test: $(DEV_STAMP)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

setup: $(RUNTIME_STAMP)
setup-dev: $(DEV_STAMP)

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

# Retrain and re-export the embedded default models (wall times: docs/MODELS.md, docs/CAPTIONER.md).
CAPTIONER_TRAIN := $(VENV)/bin/stylize-rt train captioner --render-scale-max 3 --threads 1
models: $(DEV_STAMP)
	$(PY) -m stylize_rt.recipes.embedded --threads 1
	$(CAPTIONER_TRAIN) -o runs/captioner_ms_mle --steps 1500
	$(CAPTIONER_TRAIN) -o runs/captioner_ms_gan --init runs/captioner_ms_mle --steps 0 --gan-steps 60
	$(PY) -m stylize_rt.export.captioner runs/captioner_ms_gan src/stylize_rt/models/captioner --embedded \
		--source "make models (stylize-rt train captioner: 1500 MLE steps, then 60 GAN steps; see Makefile)"

# Re-measure the CPU matrix in docs/BENCHMARKS.md (minutes; run on a quiet machine).
bench-cpu: $(DEV_STAMP)
	$(PY) -m stylize_rt.recipes.cpu_matrix

clean:
	rm -rf $(VENV) out .pytest_cache build
