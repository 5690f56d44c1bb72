# Two commands do everything on a fresh machine:
#   make book   set up, fetch and verify the data, execute every notebook, build the site
#   make test   set up, fetch and verify the data, lint, run the whole test suite (the chapters are
#               executed, checked by nbval and published in background lanes while the unit tests run)
# Both are idempotent: a second run skips what is already done.
# While writing: `make test-fast` (unit tests, under a minute), `make notebooks` (regenerate the
# .ipynb pairs from the MyST sources), `make lint`.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 8000
# PROFILE=ci|cpu|gpu picks the parameter profile for `make book`/`make run` (default: gpu if a GPU is visible, else cpu)
PROFILE ?=
# PARAMS="-p name=value ...": parameter overrides for `make book`/`make run` (checked before anything runs)
PARAMS ?=
# LANG=en|zh on the command line: the readers' edition `make lab` opens (notebooks/<LANG>/); without
# it, the MyST sources. (Only a LANG given on the command line counts: the shell's locale LANG does not.)
EDITION := $(if $(filter command line,$(origin LANG)),$(LANG),)
STAMP  := $(VENV)/.installed
UV_VERSION := 0.13.9

.PHONY: help setup system data assets notebooks run book pdf test test-fast lint serve lab clean

help:
	@echo "make book       execute every chapter (PROFILE=ci|cpu|gpu), build both sites into _build/html/{en,zh}"
	@echo "make test       lint and run the whole test suite (unit tests, ci-profile notebooks under nbval, site)"
	@echo "make test-fast  the unit tests only (under a minute)"
	@echo "make lint       ruff (lint and format check) and the notebook pairs' sync"
	@echo "make notebooks  regenerate notebooks/*.ipynb from their MyST sources notebooks/*.md"
	@echo "make serve      serve _build/html (both sites) on http://127.0.0.1:$(PORT)"
	@echo "make lab        JupyterLab on the chapters' sources; LANG=en or LANG=zh: on one language's edition"
	@echo "make pdf        print the built site's PDFs again (one per language) into _build/html/pdf"
	@echo "make data       fetch and verify every data set and asset (CIFAR-10, Tang poems, MathJax, axe-core)"
	@echo "make clean      remove generated files"

# Readers' packages (requirements.txt, what Binder and Colab install) and the tools that build and
# test the book (requirements-dev.txt, which includes the first).
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# uv installs the same pinned packages as pip, in a third of the time (pip does it if uv cannot);
	@# compiled to bytecode as pip does, since with PYTHONDONTWRITEBYTECODE set no import would do it
	$(PY) -m pip install --disable-pip-version-check -q uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install --python $(PY) -q --compile-bytecode -r requirements-dev.txt -e . \
	  || $(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt -e .
	@# the gpu profile trains with Keras on JAX: on a machine with an NVIDIA GPU, add JAX's CUDA build
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q GPU; then \
	  echo "NVIDIA GPU found: installing jax[cuda13] for the gpu profile"; \
	  $(PY) -m pip install --disable-pip-version-check -q "jax[cuda13]==0.10.2"; fi
	$(PY) -m ipykernel install --sys-prefix --name maas-course --display-name "Python (maas-course)" >/dev/null
	@# matplotlib's font cache, built now: a chapter's first import would otherwise say so in its output
	$(PY) -c "import matplotlib.font_manager"
	touch $(STAMP)

setup: $(STAMP)

# System packages for the browser checks, the PDFs and Chinese text in figures: a Chromium and a
# CJK font. Installed with apt-get (Debian names) only when missing, so a second run costs nothing.
system: setup
	@missing=""; \
	{ [ -n "$$CHROMIUM" ] || command -v chromium || command -v chromium-browser || command -v google-chrome \
	  || command -v google-chrome-stable; } >/dev/null 2>&1 || missing="$$missing chromium fonts-liberation"; \
	fc-list :lang=zh 2>/dev/null | grep -q . || missing="$$missing fonts-noto-cjk fontconfig"; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null 2>&1; then \
	    sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	    echo "installing$$missing (apt-get)"; \
	    $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	    rm -f "$$($(PY) -c 'import matplotlib; print(matplotlib.get_cachedir())')"/fontlist-*.json; \
	    $(PY) -c "import matplotlib.font_manager"; \
	  else \
	    echo "warning: please install$$missing (a Chromium or Chrome, and a CJK font such as Noto Sans CJK)"; \
	  fi; \
	fi

# Every data set and asset that a chapter or a test reads, fetched and verified before anything runs
# (no chapter downloads while it runs): CIFAR-10, the Tang poems, MathJax, axe-core.
data: assets
	$(PY) -m helpers.data

assets: setup
	$(PY) -m helpers.book.assets book/_static

notebooks: setup
	$(PY) -m helpers.book.notebooks

run: data
	$(PY) -m helpers.book.run $(if $(PROFILE),--profile $(PROFILE)) $(PARAMS)

book: data system
	@profile="$(PROFILE)"; [ -n "$$profile" ] || profile=$$($(PY) -c 'from helpers.book.run import default_profile; print(default_profile())'); \
	set -e; \
	$(PY) -m helpers.book.notebooks --check; \
	$(PY) -m helpers.book.run --profile $$profile $(PARAMS); \
	$(PY) -m helpers.book.site --profile $$profile; \
	$(PY) -m helpers.book.pdf; \
	echo; echo "The book ($$profile profile) is in _build/html: en/ and zh/, one site per language; open"; \
	echo "_build/html/index.html, or run 'make serve'."; \
	echo "The PDFs are in _build/html/pdf/."

pdf: system
	@test -f _build/html/index.html || { echo "no site yet: run 'make book' first"; exit 1; }
	$(PY) -m helpers.book.pdf

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m helpers.book.notebooks --check

test: data system lint
	$(PY) -m pytest

# The unit tests only: no network, no data set, no process, server or kernel started (under a minute).
test-fast: setup
	$(PY) -m pytest -m "unit and not slow" -q

serve:
	@test -f _build/html/index.html || { echo "no site yet: run 'make book' first"; exit 1; }
	@echo "serving _build/html on http://127.0.0.1:$(PORT) (Ctrl-C stops)"
	$(PY) -m http.server $(PORT) --bind 127.0.0.1 --directory _build/html

# JupyterLab on the repository, opening notebooks/ (the MyST sources, shown as notebooks by
# Jupytext) or, with LANG=en|zh, one language's readers' edition; --allow-root lets it run in a
# container or a cloud VM as root.
lab: setup
	@case "$(EDITION)" in ""|en|zh) ;; *) echo "LANG must be en or zh (or left out for the sources), not '$(EDITION)'"; exit 2;; esac
	$(VENV)/bin/jupyter lab --notebook-dir=. $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/$(EDITION)

clean:
	rm -rf build _build book/_static/mathjax
