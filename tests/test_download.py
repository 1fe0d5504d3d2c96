"""The FoR downloader against a local HTTP server on 127.0.0.1 (no internet needed)."""

from __future__ import annotations

import io
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lcnn.app import download
from lcnn.app.download import Dataset, download_dataset, file_sha256, find_dataset_root
from lcnn.errors import LayoutError, LcnnError
from lcnn.io import HOST, TMP_TAG

SPLITS = ("training", "validation", "testing")
TOP = "for-2seconds"


# --- a small HTTP server that understands Range and can drop a connection -------------------


@dataclass
class ServerState:
    files: dict[str, bytes] = field(default_factory=dict)
    cut_after: int | None = None  # send only this many body bytes once, then hang up
    ignore_range: bool = False  # answer 200 with the whole file, like a server without Range
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range)
    base: str = ""


class RangeHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        state: ServerState = self.server.state
        requested = self.headers.get("Range")
        state.requests.append((self.path, requested))
        body = state.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        if requested and not state.ignore_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", requested).group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if state.cut_after is not None:
            payload, state.cut_after = payload[: state.cut_after], None
        self.wfile.write(payload)  # HTTP/1.0: the server closes the connection afterwards

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.state = ServerState(base=f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield httpd.state
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture(autouse=True)
def short_timeout(monkeypatch):
    monkeypatch.setattr(download, "TIMEOUT_S", 5.0)


# --- archives ----------------------------------------------------------------------------------


def make_for_archive(path: Path) -> bytes:
    """A tiny tar.gz in FoR's layout: for-2seconds/<split>/<class>/x.wav (0.1 s of noise)."""
    staging = path.parent / "staging"
    rng = np.random.default_rng(0)
    for split in SPLITS:
        for cls in ("real", "fake"):
            folder = staging / TOP / split / cls
            folder.mkdir(parents=True)
            sf.write(folder / "x.wav", 0.1 * rng.standard_normal(1600), 16000, subtype="PCM_16")
    with tarfile.open(path, "w:gz") as tar:
        tar.add(staging / TOP, arcname=TOP)
    shutil.rmtree(staging)
    return path.read_bytes()


def make_tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


@pytest.fixture
def archive_bytes(tmp_path) -> bytes:
    return make_for_archive(tmp_path / "src.tar.gz")


@pytest.fixture
def registered(monkeypatch, server, archive_bytes) -> ServerState:
    """A registry entry 'for-test' whose URL is the local server's copy of the archive."""
    server.files["/for-test.tar.gz"] = archive_bytes
    spec = Dataset("for-test", f"{server.base}/for-test.tar.gz", url_verified=True)
    monkeypatch.setitem(download.DATASETS, "for-test", spec)
    return server


def register(monkeypatch, server: ServerState, **fields) -> None:
    spec = Dataset("for-test", f"{server.base}/for-test.tar.gz", **fields)
    monkeypatch.setitem(download.DATASETS, "for-test", spec)


# --- tests -------------------------------------------------------------------------------------


def test_registry_has_the_four_for_versions():
    assert set(download.DATASETS) == {"for-2sec", "for-norm", "for-rerec", "for-original"}
    for name, spec in download.DATASETS.items():
        assert spec.url == f"https://bil.eecs.yorku.ca/share/{name}.tar.gz"


def test_full_download_gives_for_layout(tmp_path, registered, archive_bytes, capsys):
    dest = tmp_path / "data"
    root = download_dataset("for-test", dest, progress=False)

    assert root == dest / "for-test" / TOP
    for split in SPLITS:
        for cls in ("real", "fake"):
            wav = root / split / cls / "x.wav"
            assert sf.info(wav).samplerate == 16000 and sf.info(wav).frames == 1600
    assert (dest / "downloads" / "for-test.tar.gz").read_bytes() == archive_bytes
    assert not list((dest / "downloads").glob("*.part"))
    assert sorted(p.name for p in dest.iterdir()) == ["downloads", "for-test"]  # no temp left
    out = capsys.readouterr().out
    assert f"--data_path {root}" in out and "python -m lcnn train" in out
    assert download.LANDING_PAGE in out  # the licence note


def test_result_is_accepted_by_the_data_loader(tmp_path, registered):
    from lcnn.dataset import find_splits  # imports TensorFlow, so only this test pays for it

    dest = tmp_path / "data"
    root = download_dataset("for-test", dest, progress=False)
    expected = {split: root / split for split in SPLITS}
    assert find_splits(root) == expected
    assert find_splits(dest / "for-test") == expected  # the extracted top folder works too


def test_interrupted_download_resumes_with_range(tmp_path, registered, archive_bytes):
    dest = tmp_path / "data"
    registered.cut_after = 5000
    url = f"{registered.base}/for-test.tar.gz"
    with pytest.raises(LcnnError, match="interrupted after 5000 of") as err:
        download_dataset("for-test", dest, progress=False)
    assert url in str(err.value)
    part = dest / "downloads" / "for-test.tar.gz.part"
    assert part.stat().st_size == 5000
    assert not (dest / "for-test").exists()

    root = download_dataset("for-test", dest, progress=False)

    assert registered.requests[-1] == ("/for-test.tar.gz", "bytes=5000-")
    assert (dest / "downloads" / "for-test.tar.gz").read_bytes() == archive_bytes
    assert find_dataset_root(dest / "for-test") == root
    assert not part.exists()


def test_a_part_file_is_resumed_only_from_the_url_it_came_from(tmp_path, registered,
                                                                archive_bytes):
    dest = tmp_path / "data"
    registered.files["/other.tar.gz"] = b"x" * len(archive_bytes)  # another file, same size
    registered.cut_after = 5000
    with pytest.raises(LcnnError, match="interrupted"):
        download_dataset("for-test", dest, url=f"{registered.base}/other.tar.gz",
                         progress=False)
    registered.cut_after = None

    download_dataset("for-test", dest, progress=False)  # the registry's URL: not spliced

    assert registered.requests[-1] == ("/for-test.tar.gz", None)
    assert (dest / "downloads" / "for-test.tar.gz").read_bytes() == archive_bytes
    assert not list((dest / "downloads").glob("*.part*"))


def test_server_ignoring_range_restarts_cleanly(tmp_path, registered, archive_bytes):
    dest = tmp_path / "data"
    registered.cut_after = 3000
    with pytest.raises(LcnnError, match="interrupted"):
        download_dataset("for-test", dest, progress=False)
    registered.ignore_range = True

    download_dataset("for-test", dest, progress=False)

    assert registered.requests[-1][1] == "bytes=3000-"  # asked to resume, got the whole file
    assert (dest / "downloads" / "for-test.tar.gz").read_bytes() == archive_bytes


@pytest.mark.parametrize("extra", [b"", b"trailing junk"], ids=["complete-part", "too-long"])
def test_http_416_is_handled(tmp_path, registered, archive_bytes, extra):
    downloads = tmp_path / "data" / "downloads"
    downloads.mkdir(parents=True)
    (downloads / "for-test.tar.gz.part").write_bytes(archive_bytes + extra)

    download_dataset("for-test", tmp_path / "data", progress=False)

    assert (downloads / "for-test.tar.gz").read_bytes() == archive_bytes
    assert registered.requests[0][1] == f"bytes={len(archive_bytes) + len(extra)}-"


def test_existing_dataset_is_reused_not_overwritten(tmp_path, registered):
    dest = tmp_path / "data"
    root = download_dataset("for-test", dest, progress=False)
    sentinel = root / "training" / "real" / "mine.txt"
    sentinel.write_text("keep me")
    n_requests = len(registered.requests)

    again = download_dataset("for-test", dest, progress=False)

    assert again == root and sentinel.read_text() == "keep me"
    assert len(registered.requests) == n_requests  # no network at all


def test_existing_non_dataset_folder_is_refused(tmp_path, registered):
    dest = tmp_path / "data"
    (dest / "for-test").mkdir(parents=True)
    (dest / "for-test" / "notes.txt").write_text("not a dataset")
    with pytest.raises(LcnnError, match="--force"):
        download_dataset("for-test", dest, progress=False)
    assert (dest / "for-test" / "notes.txt").read_text() == "not a dataset"
    assert registered.requests == []


def test_existing_file_in_the_way_is_refused(tmp_path, registered):
    (tmp_path / "for-test").write_text("a file, not a folder")
    with pytest.raises(LcnnError, match="does not hold the FoR layout.*--force"):
        download_dataset("for-test", tmp_path, progress=False)
    assert (tmp_path / "for-test").read_text() == "a file, not a folder"


def test_force_replaces_existing_folder(tmp_path, registered):
    dest = tmp_path / "data"
    (dest / "for-test").mkdir(parents=True)
    (dest / "for-test" / "notes.txt").write_text("old")

    root = download_dataset("for-test", dest, force=True, progress=False)

    assert not (dest / "for-test" / "notes.txt").exists()
    assert find_dataset_root(dest / "for-test") == root
    assert sorted(p.name for p in dest.iterdir()) == ["downloads", "for-test"]


def test_a_replacement_killed_midway_is_undone_without_downloading(tmp_path, registered):
    """Killed between moving the old copy aside and moving the new one in, or while extracting:
    the next run puts the old copy back and deletes the unfinished extraction."""
    dest = tmp_path / "data"
    download_dataset("for-test", dest, progress=False)
    final, asked = dest / "for-test", len(registered.requests)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    hidden = f".for-test{TMP_TAG}-{HOST}-{dead.pid}"
    final.rename(dest / f"{hidden}-old")
    (dest / f"{hidden}-k2j3h4.partial" / "half").mkdir(parents=True)

    root = download_dataset("for-test", dest, progress=False)

    assert find_dataset_root(final) == root and len(registered.requests) == asked
    assert sorted(p.name for p in dest.iterdir()) == ["downloads", "for-test"]


def test_unknown_name_lists_valid_names(tmp_path):
    with pytest.raises(LcnnError, match="for-2sec, for-norm, for-original, for-rerec"):
        download_dataset("for-3sec", tmp_path)


def test_404_names_the_url(tmp_path, registered):
    url = f"{registered.base}/missing.tar.gz"
    with pytest.raises(LcnnError) as err:
        download_dataset("for-test", tmp_path / "data", url=url, progress=False)
    assert url in str(err.value) and "HTTP 404" in str(err.value)
    assert not (tmp_path / "data" / "for-test").exists()


def test_404_on_unverified_registry_url_says_so(tmp_path, monkeypatch, server):
    register(monkeypatch, server)  # url_verified=False, and the server has no such file
    with pytest.raises(LcnnError, match="unverified") as err:
        download_dataset("for-test", tmp_path / "data", progress=False)
    assert download.LANDING_PAGE in str(err.value) and "--url" in str(err.value)


def test_connection_refused_names_the_url(tmp_path):
    with socket.socket() as s:  # a port nobody listens on any more
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/for-2sec.tar.gz"
    with pytest.raises(LcnnError, match="cannot connect") as err:
        download_dataset("for-2sec", tmp_path, url=url, progress=False)
    assert url in str(err.value)


def test_silent_server_times_out(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "TIMEOUT_S", 0.3)
    with socket.socket() as listener:  # accepts the TCP handshake but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/for-2sec.tar.gz"
        with pytest.raises(LcnnError, match="timed out after 0.3 s") as err:
            download_dataset("for-2sec", tmp_path, url=url, progress=False)
    assert url in str(err.value)


def test_wrong_sha256_is_refused(tmp_path, monkeypatch, server, archive_bytes):
    server.files["/for-test.tar.gz"] = archive_bytes
    register(monkeypatch, server, sha256="0" * 64)
    dest = tmp_path / "data"
    with pytest.raises(LcnnError, match="SHA-256 mismatch"):
        download_dataset("for-test", dest, progress=False)
    assert list((dest / "downloads").iterdir()) == []  # the bad file is not kept
    assert not (dest / "for-test").exists()


def test_right_sha256_and_size_are_accepted(tmp_path, monkeypatch, server, archive_bytes):
    server.files["/for-test.tar.gz"] = archive_bytes
    (tmp_path / "a.tar.gz").write_bytes(archive_bytes)
    digest = file_sha256(tmp_path / "a.tar.gz")
    register(monkeypatch, server, size=len(archive_bytes), sha256=digest)
    assert download_dataset("for-test", tmp_path / "data", progress=False).is_dir()


def test_wrong_size_is_refused_before_downloading(tmp_path, monkeypatch, server, archive_bytes):
    server.files["/for-test.tar.gz"] = archive_bytes
    register(monkeypatch, server, size=len(archive_bytes) + 1)
    with pytest.raises(LcnnError, match=f"server reports {len(archive_bytes)} bytes"):
        download_dataset("for-test", tmp_path / "data", progress=False)
    assert list((tmp_path / "data" / "downloads").iterdir()) == []


def fake_disk_usage(free: int):
    return lambda path: shutil._ntuple_diskusage(10**12, 10**12 - free, free)


def test_disk_space_from_content_length(tmp_path, monkeypatch, registered):
    monkeypatch.setattr(shutil, "disk_usage", fake_disk_usage(1000))
    dest = tmp_path / "data"
    with pytest.raises(LcnnError, match=r"not enough free disk space in .*short by") as err:
        download_dataset("for-test", dest, progress=False)
    assert str(dest) in str(err.value)
    assert list((dest / "downloads").iterdir()) == []  # refused before writing


def test_disk_space_precheck_uses_known_size(tmp_path, monkeypatch, server):
    register(monkeypatch, server, approx_size=10**9)
    monkeypatch.setattr(shutil, "disk_usage", fake_disk_usage(10**9))
    with pytest.raises(LcnnError, match=r"needs about 2\.2 GB, only 1\.0 GB free"):
        download_dataset("for-test", tmp_path / "data", progress=False)
    assert server.requests == []  # refused before any network traffic


MALICIOUS = {
    "dotdot": [(entry("../evil.txt"), b"evil")],
    "absolute": [(entry("/ABS/evil.txt"), b"evil")],  # /ABS is replaced by a tmp path below
    "symlink-out": [
        (entry(f"{TOP}/link", tarfile.SYMTYPE, "../../../outside"), b""),
        (entry(f"{TOP}/link/evil.txt"), b"evil"),
    ],
    "device": [(entry(f"{TOP}/dev", tarfile.CHRTYPE), b"")],
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_archive_is_refused(tmp_path, monkeypatch, server, case):
    outside = tmp_path / "outside"
    outside.mkdir()
    members = [(entry(f"{TOP}/training/real/ok.txt"), b"harmless, comes first")]
    for info, data in MALICIOUS[case]:
        info.name = info.name.replace("/ABS", str(outside))
        members.append((info, data))
    server.files["/for-test.tar.gz"] = make_tar(members)
    register(monkeypatch, server)
    dest = tmp_path / "data"

    with pytest.raises(LcnnError, match="refusing unsafe member") as err:
        download_dataset("for-test", dest, progress=False)

    assert members[-1][0].name in str(err.value) or members[-2][0].name in str(err.value)
    assert sorted(p.name for p in dest.iterdir()) == ["downloads"]  # nothing extracted
    assert list(tmp_path.rglob("evil.txt")) == [] and list(outside.iterdir()) == []


def test_corrupt_archive_is_a_clear_error(tmp_path, monkeypatch, server):
    server.files["/for-test.tar.gz"] = np.random.default_rng(1).bytes(4000)
    register(monkeypatch, server)
    with pytest.raises(LcnnError, match="not a readable .tar.gz"):
        download_dataset("for-test", tmp_path / "data", progress=False)
    assert not (tmp_path / "data" / "for-test").exists()


def test_archive_without_for_layout_is_a_layout_error(tmp_path, monkeypatch, server):
    server.files["/for-test.tar.gz"] = make_tar([(entry("README.txt"), b"hello")])
    register(monkeypatch, server)
    dest = tmp_path / "data"
    with pytest.raises(LayoutError, match="README.txt"):
        download_dataset("for-test", dest, progress=False)
    assert sorted(p.name for p in dest.iterdir()) == ["downloads"]


def test_file_url_works_for_an_archive_already_on_disk(tmp_path, monkeypatch, archive_bytes):
    monkeypatch.setitem(download.DATASETS, "for-test", Dataset("for-test", "http://unused"))
    dest = tmp_path / "data"
    url = (tmp_path / "src.tar.gz").as_uri()
    root = download_dataset("for-test", dest, url=url, progress=False)
    assert root == dest / "for-test" / TOP
    assert (dest / "downloads" / "for-test.tar.gz").read_bytes() == archive_bytes


# --- the command line -------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lcnn", "download", *args],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[1],
    )


def test_cli_unknown_name_is_one_line_error(tmp_path):
    result = run_cli("for-3sec", "--dest", str(tmp_path / "data"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "lcnn download: error: unknown dataset 'for-3sec'; "
        "choose one of: for-2sec, for-norm, for-original, for-rerec"
    ]
    assert not (tmp_path / "data").exists()


def test_cli_downloads_from_mirror_and_reports_404(tmp_path, server, archive_bytes):
    # for-2sec's registry entry asks for ~2.2 GB free before downloading (about 1 GB archive).
    if shutil.disk_usage(tmp_path).free < 2.5e9:
        pytest.skip("the real for-2sec entry's disk-space pre-check needs ~2.2 GB free")
    server.files["/mirror/for-2sec.tar.gz"] = archive_bytes
    dest = tmp_path / "data"

    ok = run_cli("for-2sec", "--dest", str(dest), "--url", f"{server.base}/mirror/for-2sec.tar.gz")
    assert ok.returncode == 0, ok.stderr
    root = dest / "for-2sec" / TOP
    assert f"python -m lcnn train --data_path {root}" in ok.stdout
    assert find_dataset_root(dest / "for-2sec") == root

    missing = f"{server.base}/nothing-here.tar.gz"
    bad = run_cli("for-2sec", "--dest", str(tmp_path / "other"), "--url", missing)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1] == (
        f"lcnn download: error: {missing}: HTTP 404 Not Found"
    )


def test_force_keeps_the_old_archive_and_resumes_its_own_part(tmp_path, registered,
                                                              archive_bytes):
    dest = tmp_path / "data"
    download_dataset("for-test", dest, progress=False)
    archive = dest / "downloads" / "for-test.tar.gz"
    registered.cut_after = 4000
    with pytest.raises(LcnnError, match="interrupted"):
        download_dataset("for-test", dest, force=True, progress=False)
    # the failed forced download deleted nothing: the old archive, and the new one's start
    assert archive.read_bytes() == archive_bytes
    assert (dest / "downloads" / "for-test.tar.gz.part").stat().st_size == 4000

    download_dataset("for-test", dest, force=True, progress=False)

    assert registered.requests[-1] == ("/for-test.tar.gz", "bytes=4000-")
    assert archive.read_bytes() == archive_bytes
