"""python -m lcnn.course: the commands behind make course|test|lab; a learner's edits survive."""

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _course(*args, cwd=ROOT) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "LCNN_QUICK"}  # a full run, not quick
    return subprocess.run([sys.executable, "-m", "lcnn.course", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=600)


def _notebook(*sources: str) -> str:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    return nbformat.writes(nb)


def _outputs(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return [o.get("text", "") for c in nb.cells for o in c.get("outputs", [])]


@pytest.fixture
def repo(tmp_path):
    """A git repository with one committed two-cell notebook."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    (folder / "01_tiny.ipynb").write_text(_notebook("x = 6 * 7", "print(x)"))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "."], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "notebook"], cwd=tmp_path, check=True)
    return folder


def test_run_executes_and_updates_an_unedited_notebook(repo, tmp_path):
    r = _course("run", "--notebooks", repo, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert _outputs(tmp_path / "out" / "01_tiny.ipynb") == ["42\n"]
    assert _outputs(repo / "01_tiny.ipynb") == ["42\n"]  # same cells as committed: updated


def test_run_never_overwrites_an_edited_notebook(repo, tmp_path):
    edited = _notebook("x = 6 * 7", "print(x)", "answer = x + 1  # my exercise\nprint(answer)")
    (repo / "01_tiny.ipynb").write_text(edited)
    r = _course("run", "--notebooks", repo, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert (repo / "01_tiny.ipynb").read_text() == edited  # byte for byte
    assert "not overwritten" in r.stdout and str(tmp_path / "out" / "01_tiny.ipynb") in r.stdout
    assert _outputs(tmp_path / "out" / "01_tiny.ipynb") == ["42\n", "43\n"]


def test_run_outside_git_only_writes_copies(tmp_path):
    folder = tmp_path / "nb"
    folder.mkdir()
    text = _notebook("print('hi')")
    (folder / "01_a.ipynb").write_text(text)
    r = _course("run", "--notebooks", folder, "--out", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (folder / "01_a.ipynb").read_text() == text
    assert "not a committed file" in r.stdout
    assert _outputs(tmp_path / "out" / "01_a.ipynb") == ["hi\n"]


def test_a_failing_cell_is_one_line_and_the_copy_has_the_traceback(tmp_path):
    folder = tmp_path / "nb"
    folder.mkdir()
    (folder / "01_bad.ipynb").write_text(_notebook("1 / 0"))
    r = _course("run", "--notebooks", folder, "--out", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1 and "ZeroDivisionError" in r.stderr
    nb = nbformat.read(tmp_path / "out" / "01_bad.ipynb", as_version=4)
    assert nb.cells[0].outputs[0].output_type == "error"


def test_out_may_not_be_the_notebooks_folder(repo):
    edited = _notebook("x = 6 * 7", "print(x)", "print('my exercise')")
    (repo / "01_tiny.ipynb").write_text(edited)
    r = _course("run", "--notebooks", repo, "--out", repo / ".." / repo.name)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--out" in r.stderr
    assert (repo / "01_tiny.ipynb").read_text() == edited


def test_a_missing_notebook_is_one_line(tmp_path):
    r = _course("run", "--notebooks", tmp_path, "99_none.ipynb")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "99_none.ipynb" in r.stderr


def test_make_targets_call_the_same_entry_points():
    makefile = (ROOT / "Makefile").read_text()
    for target, command in [("course", "run"), ("test", "test"), ("lab", "lab")]:
        recipe = re.search(rf"^{target}:.*\n\t(.+)$", makefile, re.M).group(1)
        assert recipe == f"$(PY) -m lcnn.course {command}"


def test_dry_runs_show_the_commands():
    r = _course("test", "--dry-run", "-k", "nothing")
    assert r.returncode == 0, r.stderr
    lint, tests = r.stdout.strip().splitlines()
    assert "-m ruff check lcnn tests" in lint
    assert tests.startswith("LCNN_QUICK=1 ") and "-m pytest -q tests" in tests
    assert tests.endswith("-k nothing")
    # the notebooks run in the browser test, or with nbval where there is no chromium
    assert ("notebooks/01_data.ipynb" in tests) == (shutil.which("chromium") is None)
    r = _course("lab", "--dry-run")
    assert r.returncode == 0 and "-m jupyter lab --ServerApp.root_dir=" in r.stdout
    assert r.stdout.strip().endswith(str(ROOT / "notebooks"))
    r = _course("run", "--dry-run")
    assert r.returncode == 0 and r.stdout.count("== ") == 6


def _finished_run(folder: Path, cfg) -> Path:
    """A run folder as train() leaves it when done (no model files: nothing here loads one)."""
    from lcnn import course
    from lcnn.dataset import data_spec
    from lcnn.detector import runs
    from lcnn.detector.train import NEW_STATE

    folder.mkdir()
    runs.write_json(folder / runs.CONFIG, {**dataclasses.asdict(cfg),
                                           runs.DATA: data_spec(course.data_path())})
    runs.write_json(folder / runs.STATE, {**NEW_STATE, "epoch": 3, "best_eer": 0.1,
                                          "best_epoch": 3, "finished": True})
    return folder


@pytest.mark.parametrize("changes, note", [({}, None), ({"epochs": 3}, "epochs"),
                                           ({"augment_reverb": False}, "augment_reverb")])
def test_trained_run_keeps_a_finished_run_and_names_what_differs(tmp_path, monkeypatch,
                                                                 capsys, changes, note):
    from lcnn import course

    folder = _finished_run(tmp_path / "run",
                           dataclasses.replace(course.config("lcnn"), **changes))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    monkeypatch.setattr(course, "run_dir", lambda name="lcnn": folder)
    assert course.trained_run("lcnn") == folder
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # kept, not retrained
    out = capsys.readouterr().out
    assert (f"({note} differ)" in out) if note else out == ""


SHELL_ESCAPES = re.compile(r"^\s*(!(?!=)|%%(bash|sh|script)\b|%(sx|system)\b)", re.MULTILINE)


def test_notebooks_need_no_posix_shell():
    """Learners run the notebooks on Windows too, where `!cmd | sed ...` finds no sed and quotes
    differently: commands run through subprocess with a list of arguments instead."""
    escapes = [f"{path.name} cell {i}: {m.group(0).strip()}"
               for path in sorted((ROOT / "notebooks").glob("*.ipynb"))
               for i, cell in enumerate(nbformat.read(path, as_version=4).cells)
               if cell.cell_type == "code" for m in SHELL_ESCAPES.finditer(cell.source)]
    assert not escapes


def test_a_relative_lcnn_data_is_taken_from_the_repository_root(tmp_path, monkeypatch):
    from lcnn import course

    monkeypatch.chdir(tmp_path)  # a kernel runs in notebooks/, not where make was started
    monkeypatch.setenv("LCNN_DATA", "data/demo")
    assert course.data_path() == ROOT / "data" / "demo"
    monkeypatch.setenv("LCNN_DATA", str(tmp_path / "mine"))
    assert course.data_path() == tmp_path / "mine"
