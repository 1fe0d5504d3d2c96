"""The requirements install on every supported platform.

pip evaluates environment markers for the machine it runs on, even with --platform, so the
check is done in two steps: `packaging` evaluates the markers for the target platform (offline),
then `pip install --dry-run --platform ...` resolves the remaining pins against PyPI (network,
a few seconds per platform: runs with CI=true or LCNN_CHECK_PLATFORMS=1).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ("requirements.txt", "requirements-course.txt")

# marker environment and the wheel tags pip may use, per supported platform
PLATFORMS = {
    "linux-x86_64": (
        {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
         "os_name": "posix"},
        ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
         "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"],
    ),
    "windows-x86_64": (
        {"sys_platform": "win32", "platform_system": "Windows", "platform_machine": "AMD64",
         "os_name": "nt"},
        ["win_amd64"],
    ),
    "macos-arm64": (
        {"sys_platform": "darwin", "platform_system": "Darwin", "platform_machine": "arm64",
         "os_name": "posix"},
        # macOS 14: the oldest the av wheels support; pip also accepts wheels for older macOS
        ["macosx_14_0_arm64"],
    ),
}


def requirements_for(environment: dict[str, str]) -> list[Requirement]:
    """The project's requirements (package + course) that apply on `environment`."""
    found = []
    for name in REQUIREMENTS:
        for line in (ROOT / name).read_text().splitlines():
            line = line.split(" #")[0].strip()
            if not line or line.startswith(("#", "-r")):
                continue
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate(environment):
                found.append(req)
    return found


@pytest.mark.parametrize("platform", PLATFORMS)
def test_each_platform_gets_one_tensorflow_of_the_same_version(platform):
    environment, _ = PLATFORMS[platform]
    tensorflow = [r for r in requirements_for(environment)
                  if r.name in ("tensorflow", "tensorflow-cpu")]
    assert len(tensorflow) == 1, tensorflow
    expected = "tensorflow" if platform.startswith("macos") else "tensorflow-cpu"
    assert tensorflow[0].name == expected
    assert str(tensorflow[0].specifier) == "==2.21.0"


def test_course_extra_lists_what_the_widgets_and_notebooks_import():
    names = {r.name for r in requirements_for(PLATFORMS["linux-x86_64"][0])}
    assert {"ipywidgets", "jupyterlab", "ipykernel", "nbclient", "nbformat"} <= names
    lines = (ROOT / "requirements-course.txt").read_text().splitlines()
    assert not [line for line in lines if line.startswith("-")]  # setuptools reads this file


@pytest.mark.skipif(not (os.environ.get("CI") == "true" or os.environ.get("LCNN_CHECK_PLATFORMS")),
                    reason="needs PyPI: set LCNN_CHECK_PLATFORMS=1 (CI=true runs it)")
@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("python", ["3.11", "3.13"])
def test_requirements_resolve_on_pypi(platform, python, tmp_path):
    environment, tags = PLATFORMS[platform]
    pins = tmp_path / "requirements.txt"
    pins.write_text("\n".join(str(r) for r in requirements_for(environment)) + "\n")
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
               "--quiet", "--only-binary=:all:", "--python-version", python,
               "--target", str(tmp_path / "target"), "-r", str(pins)]
    for tag in tags:
        command += ["--platform", tag]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
