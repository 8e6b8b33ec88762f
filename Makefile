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

# Workers: files stay whole on one worker (their module fixtures start servers once), and at most
# four, each starting its own PostgreSQL/Milvus when its tests ask.
test: install
	./scripts/system-deps.sh
	$(VENV)/bin/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile

clean:
	rm -rf $(VENV) *.egg-info
