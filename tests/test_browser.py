"""The course as learners see it: JupyterLab in a real browser, every notebook run in quick mode.

Playwright (PyPI) drives the system's Chromium (Debian package `chromium`; nothing is
downloaded). A JupyterLab server on 127.0.0.1 (free port, random token) serves copies of the
notebooks, so the learner's files are never touched. For each notebook: Run All Cells, then no
cell may show an error or anything on stderr (tracebacks, TensorFlow logs), and the widgets must
work: the clip player's audio element loads its clip, moving a SincExplorer slider redraws the
plot, the score explorer shows a score; cells marked NBVAL_CHECK_OUTPUT print what the
committed notebook stored. A screenshot per notebook goes to runs/browser/.

Without Chromium the test is skipped, except with CI=true, where that is a failure.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lcnn import course
from lcnn.course import runner

SHOTS = course.ROOT / "runs" / "browser"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]
STDERR = '[data-mime-type="application/vnd.jupyter.stderr"]'


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "no chromium on PATH: apt-get install -y chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    pytest.importorskip("playwright")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on copies of the notebooks; yields (base url, token)."""
    chromium = _chromium()
    root = tmp_path_factory.mktemp("lab")
    books = root / "notebooks"
    books.mkdir()
    for path in runner.notebooks():
        shutil.copy(path, books / path.name)
    # every cell in the page, so the test sees all outputs (JupyterLab renders lazily otherwise)
    settings = root / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    settings = settings.parent / "apputils-extension"  # no "get Jupyter news?" pop-up
    settings.mkdir()
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "LCNN_QUICK": "1", "JUPYTER_PREFER_ENV_PATH": "1",
           "JUPYTER_CONFIG_DIR": str(root / "config"), "JUPYTER_RUNTIME_DIR": str(root / "rt")}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={books}", f"--LabApp.user_settings_dir={root / 'settings'}",
         f"--LabApp.workspaces_dir={root / 'workspaces'}", "--LabApp.news_url=None",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--allow-root",
         "--LabApp.expose_app_in_browser=True"],  # window.jupyterapp: run JupyterLab commands
        env=env, stdout=subprocess.DEVNULL, stderr=open(root / "server.log", "w"))
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"jupyter lab exited: {(root / 'server.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield base, token, chromium
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="module")
def page(lab):
    from playwright.sync_api import sync_playwright

    _, _, chromium = lab
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        yield page
        browser.close()


# window.jupyterapp appears only once JupyterLab has started: until then the kernel is not idle
KERNEL_IDLE = ("() => { const s = window.jupyterapp?.shell?.currentWidget?.sessionContext;"
               " return s?.session?.kernel?.status === 'idle'; }")


def _open_and_run_all(page, lab, name: str) -> bool:
    """Open the notebook, wait for its kernel, Run All Cells; True if no cell failed."""
    base, token, _ = lab
    # a workspace of its own, reset: only this notebook is open
    page.goto(f"{base}/lab/workspaces/{Path(name).stem}/tree/{name}?reset&token={token}")
    page.wait_for_function(KERNEL_IDLE, timeout=180_000, polling=500)
    # the Run menu's "Run All Cells"; the promise resolves when the last cell has run
    ok = page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(KERNEL_IDLE, timeout=180_000, polling=500)
    return ok


def _cell(page, code: str):
    """The code cell whose source contains `code`."""
    return page.locator(".jp-CodeCell", has=page.locator(".jp-InputArea", has_text=code))


def _check_clean(page, name: str) -> None:
    stderr = page.locator(f".jp-OutputArea-output{STDERR}")
    texts = [stderr.nth(i).inner_text()[:500] for i in range(stderr.count())]
    assert not texts, f"{name}: error or stderr output in the notebook: {texts}"
    broken = page.get_by_text(re.compile("Error displaying widget|Error rendering output"))
    assert broken.count() == 0, f"{name}: a widget or output did not render"


def _words(text: str) -> list[str]:
    return text.split()


def _check_marked_outputs(page, name: str) -> None:
    """Cells marked NBVAL_CHECK_OUTPUT show the text stored in the committed notebook (what
    nbval checks when the notebooks run without a browser)."""
    import nbformat

    nb = nbformat.read(course.NOTEBOOKS / name, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code" or "NBVAL_CHECK_OUTPUT" not in cell.source:
            continue
        stored = "".join(o.get("text", "") for o in cell.get("outputs", [])
                         if o.get("output_type") == "stream")
        first_line = cell.source.splitlines()[1]  # the line after the marker
        shown = _cell(page, first_line).first.locator(".jp-OutputArea").inner_text()
        assert _words(shown) == _words(stored), f"{name}: {first_line!r} shows {shown!r}"


def _screenshot(page, name: str, cell=None) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name.replace(".ipynb", ".png")
    if cell is not None:
        cell.scroll_into_view_if_needed()
    page.screenshot(path=str(path))
    return path


def _audio_loads(page, cell) -> None:
    audio = cell.locator("audio").first
    audio.wait_for(state="attached", timeout=60_000)
    duration = audio.evaluate(
        "a => a.readyState >= 1 ? a.duration : new Promise((ok, fail) => {"
        " a.addEventListener('loadedmetadata', () => ok(a.duration));"
        " a.addEventListener('error', () => fail(new Error('audio error')));"
        " a.load(); })")
    assert duration > 0.1, duration


def _check_clip_player(page) -> object:
    cell = _cell(page, "ClipPlayer(")
    assert cell.locator(".widget-dropdown").count() >= 4  # split, class, attack, file
    _audio_loads(page, cell)
    return cell


def _check_sinc_explorer(page) -> object:
    cell = _cell(page, "SincExplorer(")
    plot = cell.locator(".jp-OutputArea-output img").last
    plot.wait_for(timeout=60_000)
    before = plot.get_attribute("src")
    readout = cell.locator(".widget-slider", has_text="low (Hz)").locator(".widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("2500")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "([el, before]) => { const imgs = el.querySelectorAll('.jp-OutputArea-output img');"
        " return imgs.length && imgs[imgs.length - 1].src !== before; }",
        arg=[cell.element_handle(), before], timeout=60_000)
    assert "2500" in cell.inner_text()  # the new cut-off is in the plot's title
    return cell


def _check_score_explorer(page) -> object:
    cell = _cell(page, "ScoreExplorer(")
    text = cell.inner_text()
    assert re.search(r"score[^\n]*\d\.\d{3}", text), text[:1000]
    _audio_loads(page, cell)
    return cell


WIDGETS = {"01_data.ipynb": _check_clip_player, "02_sincconv.ipynb": _check_sinc_explorer,
           "05_evaluation.ipynb": _check_score_explorer}


def _shut_down_kernels(lab) -> None:
    """Free the memory of the notebook's kernel (each holds a TensorFlow) before the next one."""
    base, token, _ = lab
    with urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=30) as r:
        sessions = json.load(r)
    for session in sessions:
        request = urllib.request.Request(f"{base}/api/sessions/{session['id']}?token={token}",
                                         method="DELETE")
        urllib.request.urlopen(request, timeout=60).close()


@pytest.mark.parametrize("name", [p.name for p in runner.notebooks()])
def test_notebook_runs_clean_in_jupyterlab(page, lab, name):
    try:
        ran = _open_and_run_all(page, lab, name)
        _check_clean(page, name)
        assert ran, f"{name}: Run All Cells stopped early"
        _check_marked_outputs(page, name)
        cell = WIDGETS[name](page) if name in WIDGETS else None
        _screenshot(page, name, cell)
    finally:
        _shut_down_kernels(lab)
