# The two commands of the README:  `make book`  and  `make test`.
# Both create a virtual environment in .venv (first run: ~2.6 GB of downloads, a few minutes) and reuse it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
JB     := $(VENV)/bin/jupyter-book
QUICK_SITE := _build/quick

.PHONY: install book book-quick test unit notebooks site-quick repo-url clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

install: $(VENV)/.installed

## The website, full mode (the numbers readers see): HTML in _build/html. A GPU is advised (see README).
book: install
	TQDM_DISABLE=1 $(JB) build -W --keep-going .
	@echo "Open _build/html/index.html"

## The website in quick mode: small data, few epochs, minutes on a CPU. HTML in $(QUICK_SITE)/_build/html.
book-quick: install
	DLBOOK_QUICK=1 TQDM_DISABLE=1 $(JB) build -W --keep-going --path-output $(QUICK_SITE) .

## Everything CI checks: unit tests, every notebook re-run by nbval in quick mode, the quick site built
## with warnings as errors and checked.
test: install unit notebooks site-quick

unit: install
	$(PY) -m pytest -q -p no:cacheprovider tests

notebooks: install
	DLBOOK_QUICK=1 $(PY) -m pytest -q -p no:cacheprovider --nbval-lax --durations=0 book

site-quick: book-quick
	DLBOOK_SITE=$(QUICK_SITE)/_build/html $(PY) -m pytest -q -p no:cacheprovider -m site tests/test_site.py

## Point the book at another repository (a fork): make repo-url URL=https://github.com/you/dlbook
repo-url:
	@test -n "$(URL)" || (echo "usage: make repo-url URL=https://github.com/<you>/<repo>" && exit 2)
	$(PYTHON) -c "import sys,re,pathlib; old=re.search(r'^  url: (\S+)', pathlib.Path('_config.yml').read_text(), re.M).group(1); \
	files=[pathlib.Path(p) for p in ['_config.yml','pyproject.toml','README.md']]+sorted(pathlib.Path('book').rglob('*.ipynb')); \
	[f.write_text(f.read_text().replace(old, sys.argv[1])) for f in files]; print('repository URL:', old, '->', sys.argv[1])" "$(URL)"

clean:
	rm -rf _build
