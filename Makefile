# Two entry points: `make demo` (install, build the demo, serve it) and `make test`.
VENV ?= .venv
PYTHON ?= python3
DATA ?= data
PORT ?= 8000

.PHONY: install demo test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	# CPU torch first, pinned, so nothing pulls a multi-GB CUDA build.
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/vatt demo --data $(DATA) --port $(PORT)

test: install
	./scripts/system-deps.sh
	$(VENV)/bin/python -m pytest -q

clean:
	rm -rf $(VENV) *.egg-info
