# The two commands of the README. Both create (or reuse) a local venv in .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.edgedet-installed

.PHONY: demo test venv clean

demo: $(STAMP)
	$(VENV)/bin/edgedet demo

test: $(STAMP)
	$(PY) -m pytest -q

venv: $(STAMP)

# torch==2.13.0 first when no torch is present: on machines that keep a local CPU wheel
# it is taken from disk, where a bare "torch" requirement could pull a multi-GB CUDA build.
# Elsewhere that pin may not resolve, and pip then picks torch as usual.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "torch==2.13.0" || true
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

clean:
	rm -rf $(VENV) .pytest_cache
