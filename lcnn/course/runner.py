"""The commands behind `make course|test|lint|lab`, which also work without make (Windows,
or any shell), from the project folder:

    python -m lcnn.course run     # = make course: run notebooks 01-06, see `run` below
    python -m lcnn.course test    # = make test: ruff, then pytest; the notebooks run in
                                  # JupyterLab in Chromium (tests/test_browser.py), or with
                                  # nbval where no chromium is installed
    python -m lcnn.course lab     # = make lab: JupyterLab on notebooks/ with this environment

`run` never destroys a learner's work: each notebook is executed into a copy under
runs/course/notebooks/, and copied back over notebooks/NAME only if that file's cells are
the committed ones (the same sources as in git's HEAD). A notebook you edited stays as you left
it, and the run says where its executed copy is.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from lcnn.course import NOTEBOOKS, QUICK, ROOT

LINTED = ("lcnn", "tests", "bench", "tools", "notebooks")  # what `lint` checks with ruff


def notebooks(folder: Path = NOTEBOOKS) -> list[Path]:
    """The course's notebooks in order: NN_name.ipynb."""
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


def _sources(text: str) -> list[tuple[str, str]]:
    """A notebook's cells as (type, source): what a learner edits, without outputs."""
    import nbformat

    return [(c.cell_type, c.source) for c in nbformat.reads(text, as_version=4).cells]


def committed(path: Path) -> str | None:
    """The notebook's text in git's HEAD, or None (no git, not a repository, not committed)."""
    try:
        r = subprocess.run(["git", "show", f"HEAD:./{path.name}"], cwd=path.parent,
                           capture_output=True, text=True, encoding="utf-8", timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout if r.returncode == 0 else None


def why_kept(path: Path) -> str | None:
    """Why `run` must not overwrite the notebook, or None when its cells are exactly the
    committed ones (outputs may differ)."""
    head = committed(path)
    if head is None:
        return "is not a committed file of a git repository"
    if _sources(head) != _sources(path.read_text(encoding="utf-8")):
        return "differs from the committed notebook (your edits)"
    return None


WIDGET_CELL_TIMEOUT = 120  # seconds; such a cell builds a widget and one figure


def _cell_timeout(cell, timeout: int) -> int:
    """The time a cell may take. A cell that ends with a widget sometimes never reports that
    it finished under nbclient, though the kernel has (both idle; nbclient issue #312); the
    run then continues after this shorter wait instead of the full `timeout`."""
    last = cell.source.strip().splitlines()[-1] if cell.source.strip() else ""
    return WIDGET_CELL_TIMEOUT if last.endswith(".widget") else timeout


def execute(path: Path, out: Path, timeout: int = 1800) -> None:
    """Run every cell of `path` in a fresh kernel of this environment; write the result to
    `out` (also when a cell fails, so the traceback can be read there)."""
    import nbformat
    from nbclient import NotebookClient

    from lcnn.io import atomic_write_text

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            timeout_func=lambda cell: _cell_timeout(cell, timeout),
                            resources={"metadata": {"path": str(path.parent)}},
                            # the kernel's own warnings (a local TCP connection) are noise here
                            extra_arguments=["--IPKernelApp.log_level=ERROR"])
    try:
        client.execute()
    finally:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, nbformat.writes(nb))


def cmd_run(args) -> int:
    folder = Path(args.notebooks)
    out = Path(args.out) if args.out else ROOT / "runs" / ("quick" if QUICK else "course") / \
        "notebooks"
    paths = [folder / name for name in args.names] if args.names else notebooks(folder)
    if not paths:
        print(f"lcnn.course run: error: no notebooks in {folder}", file=sys.stderr)
        return 2
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"lcnn.course run: error: no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 2
    if out.resolve() == folder.resolve():  # the executed copies would replace the notebooks
        print(f"lcnn.course run: error: --out {out} is the notebooks' own folder; "
              "name another folder for the executed copies", file=sys.stderr)
        return 2
    for path in paths:
        copy = out / path.name
        # quick-mode outputs never replace the course's; edited notebooks are never replaced
        back = not QUICK and why_kept(path) is None
        print(f"== {path}  ->  {copy}" + ("" if back else "  (notebook left as it is)"))
        if args.dry_run:
            continue
        from nbclient.exceptions import CellExecutionError

        from lcnn.io import atomic_write_bytes

        try:
            execute(path, copy)
        except CellExecutionError as e:
            last = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            print(f"lcnn.course run: error: {path}: a cell failed ({last}); "
                  f"the executed copy with the traceback is {copy}", file=sys.stderr)
            return 1
        reason = why_kept(path)  # again: the learner may have edited it meanwhile
        if back and reason is None:
            atomic_write_bytes(path, copy.read_bytes())
        elif not QUICK:
            print(f"   {path} {reason}, so it was not overwritten; its executed copy is {copy}")
    return 0


def _environment(**extra: str) -> dict[str, str]:
    # Jupyter looks in this environment's kernels before the user's, so "python3" is this
    # Python even when another python3 kernel is registered for the user.
    return {**os.environ, "JUPYTER_PREFER_ENV_PATH": "1", **extra}


def _call(commands: list[list[str]], dry_run: bool, **env: str) -> int:
    for command in commands:
        print(" ".join([*(f"{k}={v}" for k, v in env.items()), shlex.join(command)]), flush=True)
        if dry_run:
            continue
        code = subprocess.call(command, cwd=ROOT, env=_environment(**env))
        if code:
            return code
    return 0


def lint_command() -> list[str]:
    return [sys.executable, "-m", "ruff", "check", *LINTED]


def cmd_lint(args) -> int:
    return _call([lint_command()], args.dry_run)


def cmd_test(args) -> int:
    # tests/test_browser.py runs every notebook in JupyterLab; without a browser (and outside
    # CI, where that is a failure) nbval runs them instead, so they are never left out
    books = [str(p.relative_to(ROOT)) for p in notebooks()]
    browser = shutil.which("chromium") or os.environ.get("CI") == "true"
    nbval = ["--nbval-lax", *books] if books and not browser else []
    tests = [sys.executable, "-m", "pytest", "-q", "tests", *nbval, *args.extra]
    return _call([lint_command(), tests], args.dry_run, LCNN_QUICK="1")


def cmd_lab(args) -> int:
    command = [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={NOTEBOOKS}",
               *args.extra]
    return _call([command], args.dry_run)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lcnn.course",
                                description="run, test or open the course (make course|test|lab)")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="execute the notebooks (make course)")
    r.add_argument("names", nargs="*", help="notebook file names (default: all, in order)")
    r.add_argument("--notebooks", default=str(NOTEBOOKS), help="folder of the notebooks")
    r.add_argument("--out", help="folder for the executed copies "
                                 "(default runs/course/notebooks, runs/quick/... in quick mode)")
    r.set_defaults(func=cmd_run)
    t = sub.add_parser("test", help="ruff and pytest in quick mode (make test); other "
                                    "options go to pytest")
    t.set_defaults(func=cmd_test)
    lint = sub.add_parser("lint", help="ruff (make lint)")
    lint.set_defaults(func=cmd_lint)
    lab = sub.add_parser("lab", help="JupyterLab on notebooks/ (make lab); other options go "
                                     "to jupyter lab")
    lab.set_defaults(func=cmd_lab)
    for q in (r, t, lint, lab):
        q.add_argument("--dry-run", action="store_true", help="print what would run, run nothing")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, args.extra = parser.parse_known_args(argv)
    if args.extra and args.command not in ("test", "lab"):
        parser.error(f"unrecognized arguments: {' '.join(args.extra)}")
    os.environ["JUPYTER_PREFER_ENV_PATH"] = "1"  # see _environment
    return args.func(args)

