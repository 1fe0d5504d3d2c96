# Two commands do all set-up on a fresh machine:
#   make course  - run the notebook series on the embedded demo corpus (figures + model)
#   make test    - lint and run every test, notebooks included (quick mode)
PY      := .venv/bin/python
STAMP   := .venv/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))

.PHONY: course test lint bench ablation demo-corpus clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

course: $(STAMP)
	@if [ -n "$(NOTEBOOKS)" ]; then \
	  for nb in $(NOTEBOOKS); do \
	    echo "== $$nb"; \
	    $(PY) -m jupyter nbconvert --to notebook --execute --inplace \
	      --ExecutePreprocessor.timeout=1800 $$nb || exit 1; \
	  done; \
	else \
	  $(PY) -m lcnn train --data_path data/demo --run_dir runs/demo && \
	  $(PY) -m lcnn evaluate --run_dir runs/demo --data_path data/demo --split testing; \
	fi

lint: $(STAMP)
	$(PY) -m ruff check lcnn tests bench tools

test: $(STAMP) lint
	LCNN_QUICK=1 $(PY) -m pytest -q tests $(if $(NOTEBOOKS),--nbval-lax $(NOTEBOOKS))

bench: $(STAMP)
	$(PY) bench/run.py

ablation: $(STAMP)
	$(PY) bench/ablation.py --seeds 42 43

# Learners never need this: data/demo is committed. Needs the Debian packages that
# tools/demo_corpus/prereqs.py lists (it prints the apt-get line when one is missing).
demo-corpus: $(STAMP)
	$(PY) -m pip install --quiet -r tools/requirements-corpus.txt
	$(PY) tools/build_demo_corpus.py

clean:
	rm -rf .venv .pytest_cache runs
