# Two commands do all set-up on a fresh machine:
#   make course  - run the notebook series on the embedded demo corpus (figures + model)
#   make test    - lint and run every test, notebooks and the browser test included (quick mode)
# then `make lab` opens the course in JupyterLab. Each target calls `python -m lcnn.course`,
# which is also the way without make (Windows): see README.md.
PY      := .venv/bin/python
STAMP   := .venv/.installed

.PHONY: course test lint lab bench ablation demo-corpus clean

$(STAMP): requirements.txt requirements-course.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

course: $(STAMP)
	$(PY) -m lcnn.course run

test: $(STAMP)
	$(PY) -m lcnn.course test

lint: $(STAMP)
	$(PY) -m lcnn.course lint

lab: $(STAMP)
	$(PY) -m lcnn.course lab

bench: $(STAMP)
	$(PY) -m bench.run

ablation: $(STAMP)
	$(PY) -m bench.ablation

# Learners never need this: data/demo is committed. Needs the Debian packages that
# tools/demo_corpus/prereqs.py lists (it prints the apt-get line when one is missing).
demo-corpus: $(STAMP)
	$(PY) -m pip install --quiet torch==2.13.0  # first and pinned: the extras must not pull another torch
	$(PY) -m pip install --quiet -r tools/requirements-corpus.txt
	$(PY) tools/build_demo_corpus.py

clean:
	rm -rf .venv .pytest_cache runs
