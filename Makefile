# The two commands of the README:  `make book`  and  `make test`.
# Both create a virtual environment in .venv (first run: ~2.6 GB of downloads, a few minutes) and reuse it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
JB     := $(VENV)/bin/jupyter-book
QUICK_SITE := _build/quick
EXECUTED   := _build/executed
MATHJAX    := _build/mathjax/package/es5
RESULTS    := $(CURDIR)/_build/results
RECORDS    := benchmarks/results/full_records

# Relative DLBOOK_DATA folders are meant from here, the repository root, but every notebook runs in its own folder:
# make them absolute (several folders are separated by ':') before anything runs.
empty :=
space := $(empty) $(empty)
ifneq ($(strip $(DLBOOK_DATA)),)
export DLBOOK_DATA := $(subst $(space),:,$(abspath $(subst :, ,$(DLBOOK_DATA))))
endif

# matplotlib caches its font list per user (~/.cache/matplotlib), keyed by its version only, so every checkout and
# virtual environment on the machine shares it. A list written while another checkout's environment was half
# installed or being deleted lacks matplotlib's own fonts, and every plot then warns (findfont), which the tests
# reject. The book's runs keep matplotlib's config and cache in the build tree instead.
export MPLCONFIGDIR := $(CURDIR)/_build/matplotlib

.PHONY: install book book-quick test lint unit notebooks site-quick slides bench bench-book gpu-check repo-url clean

# pip would byte-compile the packages' 19,000 files on one core, about a third of the install's time; compileall
# uses every core. Like pip, it skips what this Python cannot compile (torch ships a few files for newer Pythons
# only), so its exit status is not an install failure. It also skips the packages' own test suites and the 2,600
# files of model families the book never loads (transformers/models other than auto, bert and encoder_decoder):
# a third of the files, 13 of 34 s on CI's two cores. A file that is imported all the same is compiled in memory.
NOT_COMPILED := '/tests?/|/transformers/models/(?!(auto|bert|encoder_decoder)/)'
$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m compileall -q -j 0 -x $(NOT_COMPILED) $(VENV)/lib > /dev/null || true
	touch $@

install: $(VENV)/.installed

## The website, full mode (the numbers readers see): HTML in _build/html. A GPU is advised (see README).
## First the chapters run side by side (JOBS at a time, the same runner as gpu-check) into Jupyter Book's execution
## cache, recording their numbers for the results page; on a CPU it first prints what that will cost. Then the
## build only renders (every notebook is found in the cache; a changed notebook runs again, an unchanged one not).
book: install
	DLBOOK_RESULTS=$(RESULTS) TQDM_DISABLE=1 $(PY) -m benchmarks devices --modes full --full all --jobs $(JOBS) \
	    --cache _build/.jupyter_cache --results $(RESULTS) --records $(RECORDS) --no-save
	DLBOOK_RESULTS=$(RESULTS) $(PY) -m helpers results book/_results_tables.md full --records $(RECORDS)
	DLBOOK_RESULTS=$(RESULTS) TQDM_DISABLE=1 $(JB) build -W --keep-going .
	@echo "Open _build/html/index.html"

## The website in quick mode: small data, few epochs, minutes on a CPU. HTML in $(QUICK_SITE)/_build/html.
book-quick: install
	DLBOOK_QUICK=1 DLBOOK_RESULTS=$(RESULTS) TQDM_DISABLE=1 $(PY) -m benchmarks devices --modes quick --jobs $(JOBS) \
	    --cache $(QUICK_SITE)/_build/.jupyter_cache --results $(RESULTS) --no-save
	DLBOOK_RESULTS=$(RESULTS) $(PY) -m helpers results book/_results_tables.md quick --records $(RECORDS)
	DLBOOK_QUICK=1 DLBOOK_RESULTS=$(RESULTS) TQDM_DISABLE=1 $(JB) build -W --keep-going --path-output $(QUICK_SITE) .

## Everything CI checks: unit tests, every notebook re-run by nbval in quick mode, and the quick site built
## (warnings as errors) from the outputs of that same run, then checked. The unit tests run in the notebooks' pytest
## session (UNIT=tests): one start-up instead of two, and a worker never idles at the end of the unit tests while
## the other finishes its slowest file; many unit tests wait on subprocesses, and a notebook fills that time.
test: install lint
	$(MAKE) site-quick UNIT=tests

## ruff, the ecosystem's formatter and linter (settings in pyproject.toml): formatted, imports sorted, no unused names;
## in the chapters' notebooks also no code line over 88 characters (the width of the website's code boxes).
LINTED := helpers benchmarks tests book/course/starters book/deep_learning book/reinforcement_learning
lint: install
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/ruff check $(LINTED)

unit: install
	$(PY) -m pytest -q -p no:cacheprovider -n $(NB_WORKERS) tests

## nbval re-runs every notebook in quick mode; tests/nbval_outputs.py keeps the outputs in $(EXECUTED) and prints
## each notebook's time at the end (pytest's own list below it: the 30 slowest cells and tests).
## NB_WORKERS notebooks run side by side (pytest-xdist, one whole notebook per worker), each with NB_THREADS
## threads: on a 2-core CI machine two single-threaded notebooks finish far sooner than one after the other.
NB_WORKERS ?= 2
NB_THREADS ?= 1
notebooks: install
	rm -rf $(EXECUTED) $(RESULTS)/quick
	DLBOOK_QUICK=1 TQDM_DISABLE=1 OMP_NUM_THREADS=$(NB_THREADS) DLBOOK_EXECUTED=$(EXECUTED) DLBOOK_RESULTS=$(RESULTS) \
	    $(PY) -m pytest -q -p no:cacheprovider -p tests.nbval_outputs --nbval-lax -n $(NB_WORKERS) --dist loadfile \
	    --durations=30 book $(UNIT)

## The quick site from the notebooks `make notebooks` executed (no second execution), then the checks on its HTML:
## static checks, and the pages opened in headless Chromium (Debian: apt install chromium chromium-driver), and one
## chapter's slide deck opened offline (two pytest workers, each with its own browser: about 15 s less than one).
## The test site serves its own copy of MathJax (npm's `mathjax` package) so that math renders offline too.
site-quick: notebooks $(MATHJAX)/tex-mml-chtml.js
	rm -rf $(QUICK_SITE) && mkdir -p $(QUICK_SITE)/_extra
	cp -r book _toc.yml references.bib CONTRIBUTING.md $(QUICK_SITE)/
	mkdir -p $(QUICK_SITE)/benchmarks && cp -r benchmarks/results $(QUICK_SITE)/benchmarks/
	cp -r $(EXECUTED)/book $(QUICK_SITE)/
	cp -r $(MATHJAX) $(QUICK_SITE)/_extra/mathjax
	DLBOOK_RESULTS=$(RESULTS) $(PY) -m helpers results $(QUICK_SITE)/book/_results_tables.md quick --records $(RECORDS)
	sed -e 's/^  execute_notebooks: cache$$/  execute_notebooks: "off"/' \
	    -e 's#^  config:$$#  config:\n    mathjax_path: ../mathjax/tex-mml-chtml.js\n    html_extra_path: ["_extra"]#' \
	    _config.yml > $(QUICK_SITE)/_config.yml
	grep -q 'execute_notebooks: "off"' $(QUICK_SITE)/_config.yml && grep -q 'mathjax_path' $(QUICK_SITE)/_config.yml
	DLBOOK_QUICK=1 $(JB) build -W --keep-going $(QUICK_SITE)
	$(PY) -m helpers.slides $(EXECUTED)/book/deep_learning/cnn.ipynb _build/slides/cnn.slides.html \
	    --vendor _build/slides/vendor
	DLBOOK_SITE=$(QUICK_SITE)/_build/html DLBOOK_SCREENSHOTS=_build/screenshots DLBOOK_DECK=_build/slides/cnn.slides.html \
	    $(PY) -m pytest -q -p no:cacheprovider -n $(NB_WORKERS) -m site tests/test_site.py tests/test_browser.py

$(MATHJAX)/tex-mml-chtml.js:
	rm -rf _build/mathjax && mkdir -p _build/mathjax
	cd _build/mathjax && npm pack --silent mathjax@3 > /dev/null && tar xzf mathjax-3*.tgz

## A chapter as a reveal.js slide deck: make slides NB=book/deep_learning/cnn.ipynb  (-> _build/slides/cnn.slides.html)
## Uses the executed copy from `make notebooks` when there is one, so the deck shows the plots. reveal.js, MathJax
## and friends come from npm into _build/slides/vendor (once): the deck opens offline, e.g. in a lecture hall.
slides: install
	@test -n "$(NB)" || (echo "usage: make slides NB=book/<part>/<chapter>.ipynb" && exit 2)
	$(PY) -m helpers.slides $$(test -f $(EXECUTED)/$(NB) && echo $(EXECUTED)/$(NB) || echo $(NB)) \
	    _build/slides/$$(basename $(NB) .ipynb).slides.html --vendor _build/slides/vendor

## The student edition: every notebook with its solutions replaced by "Your turn" cells, outputs cleared, in
## _build/student (hand it out, or upload it to Colab). Grade the notebooks students return, with partial credit
## and feedback per auto-checked exercise: .venv/bin/python -m helpers grade submissions/ --out grades.csv
.PHONY: student
student: install
	rm -rf _build/student && $(PY) -m helpers student _build/student

## The course kit (book/instructors.md): the four assignments' starter notebooks in _build/course (hand them out,
## or upload them to Colab; grade the returned ones with python -m helpers grade), and the lab time of every week
## recomputed from the device matrix into benchmarks/results/lab_times.md.
.PHONY: course
course: install
	rm -rf _build/course && $(PY) -m helpers course starters _build/course
	$(PY) -m helpers course lab-times

## Benchmarks against SB3, a plain PyTorch loop and airbench (GPU only): JSON + Markdown in benchmarks/results,
## included by the results page. Under 30 minutes on 2 CPU cores. See benchmarks/README.md.
bench: install
	TQDM_DISABLE=1 $(PY) -m benchmarks

## Wall time of every notebook on this machine, in MODE (default full: use a GPU; on a CPU it prints the cost
## first): the device matrix's runner, JOBS notebooks side by side, into benchmarks/results/devices.{json,md}
## (the instructor page shows it). `python -m benchmarks book --mode MODE` times them one after the other instead.
MODE ?= full
bench-book: install
	TQDM_DISABLE=1 $(PY) -m benchmarks devices --modes $(MODE) --full all --jobs $(JOBS) --records $(RECORDS)

## The device matrix: every notebook in quick and full mode on this machine, JOBS at a time, each stopped with the
## rest after DEADLINE seconds; writes benchmarks/results/devices.{json,md} (the results page shows it). Meant for a
## GPU machine (with DLBOOK_DATA holding the complete data sets); without a GPU, full mode runs only FULL="mlp cnn".
JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n / 2 > 2 ? n / 2 : 2 )))
DEADLINE ?= 3600
FULL ?=
gpu-check: install
	TQDM_DISABLE=1 $(PY) -m benchmarks devices --jobs $(JOBS) --deadline $(DEADLINE) --full $(FULL) \
	    --records $(RECORDS)

## Point the book at another repository (a fork): make repo-url URL=https://github.com/you/dlbook
## (the URL in _config.yml, pyproject.toml, the notebooks' install cells, and the README's links, Colab's too)
repo-url:
	@test -n "$(URL)" || (echo "usage: make repo-url URL=https://github.com/<you>/<repo>" && exit 2)
	$(PYTHON) -c "import sys,re,pathlib; old=re.search(r'^  url: (\S+)', pathlib.Path('_config.yml').read_text(), re.M).group(1); \
	files=[pathlib.Path(p) for p in ['_config.yml','pyproject.toml','README.md']]+sorted(pathlib.Path('book').rglob('*.ipynb')); \
	colab=lambda u: u.replace('https://github.com/', 'colab.research.google.com/github/'); \
	[f.write_text(f.read_text().replace(colab(old), colab(sys.argv[1])).replace(old, sys.argv[1])) for f in files]; \
	print('repository URL:', old, '->', sys.argv[1])" "$(URL)"

clean:
	rm -rf _build
