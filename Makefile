# From a fresh clone with only Python installed:
#   make demo   set up .venv, train a tiny CLIP on ShapeWorld (about 3 CPU-minutes) and report zero-shot accuracy
#   make test   set up .venv and run everything CI runs: pytest tests/ and pytest --nbval notebooks/
#   make reproduce   the lecture's results at small scale into report/ (about 2 hours on 2 cores; BUDGET=smoke)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast notebooks student bench gallery reproduce clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	rm -rf runs/demo  # a fresh demo run each time (train refuses to overwrite a run folder)
	$(PY) -m minclip.train --preset tiny --data shapeworld --minutes 3 --out runs/demo --seed 0

# The notebooks' kernels train (the zoo model: 1,500 steps) on one OpenMP thread: on 2 cores shared with another
# CPU-heavy process, torch's 2 threads wait for each other at every parallel region (a tiny training step took 3.4 s
# instead of 0.5 s at 1 thread; on a quiet machine 0.16 s vs 0.21 s). tests/conftest.py sets its own thread count.
test: $(STAMP)
	$(PY) scripts/make_student.py --no-wheel
	$(PY) -m pytest tests/ -q
	OMP_NUM_THREADS=1 $(PY) -m pytest --nbval notebooks/ -q --nbval-sanitize-with notebooks/sanitize.cfg -p no:cacheprovider

student: $(STAMP)
	$(PY) scripts/make_student.py

test-fast: $(STAMP)
	$(PY) -m pytest tests/ -q -m "not slow"

# The lecture's results at small scale (reproduce/): trains and evaluates every model of the plan into report/,
# reusing what a killed run already finished, and writes report/REPORT.md. BUDGET=smoke (a 2-minute check) and
# BUDGET=gpu write report-smoke/ and report-gpu/ instead.
BUDGET ?= cpu
reproduce: $(STAMP)
	$(PY) -m reproduce --budget $(BUDGET) --out $(if $(filter cpu,$(BUDGET)),report,report-$(BUDGET))

bench: $(STAMP)
	for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f; done

clean:
	rm -rf runs .pytest_cache
