# Two commands do everything on a fresh machine:
#   make book   set up, fetch and verify the data, execute every notebook, build the site
#   make test   set up, fetch and verify the data, run the test suite
# Both are idempotent: a second run skips what is already done.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 8000
# PROFILE=ci|cpu|gpu picks the parameter profile for `make book`/`make run` (default: gpu if a GPU is visible, else cpu)
PROFILE ?=
STAMP  := $(VENV)/.installed

.PHONY: help setup data assets run book test serve lab clean

help:
	@echo "make book    execute all notebooks (PROFILE=ci|cpu|gpu) and build the site into _build/html"
	@echo "make test    run the test suite (unit tests, ci-profile notebooks under nbval, site build)"
	@echo "make serve   serve _build/html on http://127.0.0.1:$(PORT)"
	@echo "make lab     open the notebooks in JupyterLab with the project's kernel"
	@echo "make data    fetch and verify CIFAR-10 only;  make clean  remove generated files"

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name maas-course --display-name "Python (maas-course)" >/dev/null
	touch $(STAMP)

setup: $(STAMP)

data: setup
	$(PY) -m helpers.data

assets: setup
	$(PY) -m helpers.assets book/_static

run: data
	$(PY) -m helpers.run $(if $(PROFILE),--profile $(PROFILE))

book: data assets
	@profile="$(PROFILE)"; [ -n "$$profile" ] || profile=$$($(PY) -c 'from helpers.run import default_profile; print(default_profile())'); \
	set -e; \
	$(PY) -m helpers.run --profile $$profile; \
	$(PY) -m helpers.bilingual build/executed/$$profile book; \
	$(VENV)/bin/jupyter-book build . -W -n --keep-going; \
	echo; echo "The book ($$profile profile) is in _build/html: open _build/html/index.html, or run 'make serve'."

test: data assets
	$(PY) -m pytest

serve:
	@test -f _build/html/index.html || { echo "no site yet: run 'make book' first"; exit 1; }
	@echo "serving _build/html on http://127.0.0.1:$(PORT) (Ctrl-C stops)"
	$(PY) -m http.server $(PORT) --bind 127.0.0.1 --directory _build/html

lab: setup
	$(VENV)/bin/jupyter lab --notebook-dir=. notebooks/

clean:
	rm -rf build _build book/en/*.ipynb book/zh/*.ipynb book/_static/mathjax
