# From a fresh clone with only Python installed:
#   make demo   set up .venv, train a tiny CLIP on ShapeWorld (about 3 CPU-minutes) and report zero-shot accuracy
#   make test   set up .venv and run everything CI runs: pytest tests/ and pytest --nbval notebooks/
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast notebooks student bench gallery clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	rm -rf runs/demo  # a fresh demo run each time (train refuses to overwrite a run folder)
	$(PY) -m minclip.train --preset tiny --data shapeworld --minutes 3 --out runs/demo --seed 0

test: $(STAMP)
	$(PY) scripts/make_student.py
	$(PY) -m pytest tests/ -q
	$(PY) -m pytest --nbval notebooks/ -q --nbval-sanitize-with notebooks/sanitize.cfg -p no:cacheprovider

student: $(STAMP)
	$(PY) scripts/make_student.py

test-fast: $(STAMP)
	$(PY) -m pytest tests/ -q -m "not slow"

bench: $(STAMP)
	for f in benchmarks/*.py; do echo "== $$f"; $(PY) $$f; done

clean:
	rm -rf runs .pytest_cache
