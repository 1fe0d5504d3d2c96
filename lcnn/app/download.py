"""Download and unpack the Fake-or-Real (FoR) dataset, safely and resumably.

    root = download_dataset("for-2sec", "data")   # -> data/for-2sec/for-2seconds
    # then: python -m lcnn train --data_path data/for-2sec/for-2seconds

The archive goes to `<dest>/downloads/<name>.tar.gz` (via a `.part` file that an interrupted
run resumes with an HTTP Range request); it is unpacked with tarfile's "data" filter into a
temporary folder and moved to `<dest>/<name>/` in one step, so a failure never leaves a
half-extracted dataset behind. Only the standard library and tqdm are used for the transfer.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import http.client
import os
import re
import shlex
import shutil
import socket
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from lcnn import LABELS
from lcnn.dataset import SPLITS, find_splits
from lcnn.errors import LayoutError, LcnnError
from lcnn.io import TMP_TAG, atomic_write_text, temp_prefix

LANDING_PAGE = "https://bil.eecs.yorku.ca/datasets/"
LICENCE_NOTE = (
    f"Note: the FoR licence is not stated clearly; check {LANDING_PAGE} "
    "before using or sharing the data."
)

TIMEOUT_S = 60.0  # per socket operation (connect, each read), not for the whole transfer
CHUNK = 1 << 20
EXTRACT_FACTOR = 1.2  # WAV barely compresses, so the extracted tree is ~1.2x the archive
USER_AGENT = "lcnn-downloader/0.1 (python urllib)"


@dataclass(frozen=True)
class Dataset:
    """One downloadable archive. `size`/`sha256` are checked when known (None = unknown)."""

    name: str
    url: str
    size: int | None = None  # exact archive size in bytes
    sha256: str | None = None
    approx_size: int | None = None  # rough archive size, only for the disk-space pre-check
    url_verified: bool = False  # False: the URL is our best guess, not confirmed upstream


# No checksums or exact sizes are published. for-2sec's URL and ~1 GB size are those of the
# dataset's landing page (https://bil.eecs.yorku.ca/datasets/); the other three URLs are the
# names used by several independent public download scripts (not checked against that page).
DATASETS: dict[str, Dataset] = {
    "for-2sec": Dataset(
        "for-2sec",
        "https://bil.eecs.yorku.ca/share/for-2sec.tar.gz",
        approx_size=1_000_000_000,
        url_verified=True,
    ),
    "for-norm": Dataset("for-norm", "https://bil.eecs.yorku.ca/share/for-norm.tar.gz"),
    "for-rerec": Dataset("for-rerec", "https://bil.eecs.yorku.ca/share/for-rerec.tar.gz"),
    "for-original": Dataset("for-original", "https://bil.eecs.yorku.ca/share/for-original.tar.gz"),
}


def download_dataset(
    name: str,
    dest: str | Path,
    url: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Download and extract FoR version `name` under `dest`; return the folder for --data_path.

    If `<dest>/<name>/` already holds the FoR layout it is returned untouched (no network);
    `force=True` downloads and extracts again, replacing it only once the new copy is complete.
    `url` overrides the registry URL (e.g. a mirror); known sizes/checksums still apply.
    """
    spec = _lookup(name)
    dest = _prepare_dest(Path(dest))
    final = dest / spec.name
    downloads = dest / "downloads"
    archive = downloads / f"{spec.name}.tar.gz"
    part = archive.with_name(archive.name + ".part")

    _recover_interrupted(final)
    if final.exists() and not force:
        return _reuse_existing(final)

    print(LICENCE_NOTE)
    # force fetches the archive again but deletes nothing first: the new one replaces the old
    # only once complete, and an interrupted forced download resumes from its part file
    if archive.exists() and not force:
        print(f"Using the archive downloaded before: {archive}")
    else:
        if spec.approx_size:
            done = part.stat().st_size if part.exists() else 0
            _check_free_space(
                dest, int((1 + EXTRACT_FACTOR) * spec.approx_size) - done,
                f"{spec.name} (archive about {_human(spec.approx_size)} plus extracted files)",
            )
        downloads.mkdir(exist_ok=True)
        fetch_url(
            url or spec.url, archive, size=spec.size, sha256=spec.sha256, progress=progress,
            extra_space=EXTRACT_FACTOR, hint=_url_hint(spec, url),
        )

    root = extract_tar(archive, final, progress=progress)
    _print_usage(root, archive)
    return root


def fetch_url(
    url: str,
    target: str | Path,
    *,
    size: int | None = None,
    sha256: str | None = None,
    progress: bool = True,
    extra_space: float = 0.0,
    hint: str = "",
) -> Path:
    """Download `url` to `target` through `target.part`, resuming a previous partial download
    from the same URL (`target.part.url` records it; a part from another URL starts over).

    Checks the byte count against Content-Length (and `size` when known) and the SHA-256 when
    known, then renames the part file atomically. Refuses to start when the free space cannot
    hold the rest of the file plus `extra_space` times its size. Network failures raise
    LcnnError naming the URL and keep the part file for the next run.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    _start_or_resume_part(part, url)
    try:
        _fetch_checked(url, part, size, sha256, progress, extra_space, hint)
        os.replace(part, target)
    finally:  # the URL is kept only beside bytes to resume
        if not part.exists():
            _source_of(part).unlink(missing_ok=True)
    return target


def _fetch_checked(url: str, part: Path, size: int | None, sha256: str | None, progress: bool,
                   extra_space: float, hint: str) -> None:
    """Complete `part` from `url` and check its size and SHA-256 (deleting it if wrong)."""
    # Two attempts: the second starts from zero when the server cannot resume our part file.
    for _ in range(2):
        if _download_once(url, part, size, progress, extra_space, hint):
            break
    else:
        raise LcnnError(f"{url}: the server did not accept resuming {part}; delete it and retry")

    got = part.stat().st_size
    if size is not None and got != size:
        part.unlink()
        raise LcnnError(f"{url}: expected {size} bytes, downloaded {got}; the file was deleted")
    if sha256 is not None:
        digest = file_sha256(part)
        if digest != sha256.lower():
            part.unlink()
            raise LcnnError(
                f"{url}: SHA-256 mismatch (expected {sha256}, got {digest}); the download was "
                "deleted because the file is not the expected archive"
            )


def _source_of(part: Path) -> Path:
    """The file beside a part file naming the URL its bytes came from."""
    return part.with_name(part.name + ".url")


def _start_or_resume_part(part: Path, url: str) -> None:
    """Keep `part` for resuming only if its bytes came from `url` (another URL, a mirror given
    with --url, would splice two files); record the URL of a part file about to start."""
    source = _source_of(part)
    # a part file of an lcnn that did not record URLs is resumed, as it was then
    recorded = source.read_text().strip() if source.exists() else url
    if part.exists() and recorded != url:
        print(f"{part.name}: started from {recorded}, not {url}; downloading again from zero")
        part.unlink()
    atomic_write_text(source, url + "\n")


def extract_tar(archive: str | Path, target: str | Path, progress: bool = True) -> Path:
    """Safely extract `archive` into the new folder `target`; return the FoR root inside it.

    Every member is checked before anything is written: absolute paths, `..`, links leading
    out, and device files are refused (LcnnError naming the member). Extraction happens in a
    temporary sibling folder that replaces `target` only when complete and in FoR layout.
    """
    archive, target = Path(archive), Path(target)
    if not hasattr(tarfile, "data_filter"):
        raise LcnnError("safe extraction needs Python >= 3.10.12 / 3.11.4 (tarfile filters)")
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(target), suffix=".partial", dir=target.parent))
    try:
        print(f"Checking and extracting {archive} ...")
        _extract_checked(archive, tmp, progress)
        root = find_dataset_root(tmp)
        if root is None:
            raise LayoutError(
                f"{archive}: does not contain the FoR layout "
                f"<root>/{{{','.join(SPLITS)}}}/{{{','.join(LABELS)}}}/ "
                f"(top level: {', '.join(sorted(p.name for p in tmp.iterdir())) or 'empty'})"
            )
        relative = root.relative_to(tmp)
        _swap_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target / relative


def find_dataset_root(folder: str | Path) -> Path | None:
    """The folder holding all three FoR split folders, found as training finds it
    (lcnn.dataset.find_splits), or None."""
    try:
        splits = find_splits(folder)
    except LayoutError:
        return None
    return next(iter(splits.values())).parent if set(splits) == set(SPLITS) else None


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --- download internals -----------------------------------------------------------------------


class _NotSatisfiable(Exception):
    """HTTP 416 on a resume request, with the total size if the server told us."""

    def __init__(self, total: int | None):
        self.total = total


def _download_once(
    url: str, part: Path, size: int | None, progress: bool, extra_space: float, hint: str
) -> bool:
    """One request; True when `part` holds the whole file, False to retry from zero."""
    offset = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, offset, hint)
    except _NotSatisfiable as e:
        # 416: our part already covers the whole file, or it is longer than the file.
        if e.total is not None and e.total == offset:
            return True
        part.unlink()
        return False

    with response:
        status = response.status or 200  # file:// URLs carry no status
        if offset and status == 200:
            print(f"{url}: server does not support resuming; starting again from zero")
            offset = 0
        elif status == 206 and _content_range_start(response) != offset:
            part.unlink()
            return False
        elif offset:
            print(f"Resuming {part.name} from byte {offset}")
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        if size is not None and total is not None and total != size:
            raise LcnnError(f"{url}: server reports {total} bytes, expected {size}{hint}")
        if total is not None:
            _check_free_space(
                part.parent, total - offset + int(extra_space * total),
                f"downloading {url} ({_human(total)})",
            )
        _copy_body(response, part, offset, total, url, progress)
    return True


def _open(url: str, offset: int, hint: str) -> http.client.HTTPResponse:
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                      timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            total = re.fullmatch(r"bytes \*/(\d+)", e.headers.get("Content-Range", "") or "")
            raise _NotSatisfiable(int(total.group(1)) if total else None) from None
        raise LcnnError(f"{url}: HTTP {e.code} {e.reason}{hint}") from None
    except urllib.error.URLError as e:
        raise LcnnError(f"{url}: cannot connect ({_reason(e.reason)}){hint}") from None
    except (OSError, http.client.HTTPException) as e:
        raise LcnnError(f"{url}: cannot connect ({_reason(e)}){hint}") from None
    except ValueError as e:  # malformed URL
        raise LcnnError(f"{url}: not a valid URL ({e})") from None


def _copy_body(response, part: Path, offset: int, total: int | None, url: str,
               progress: bool) -> None:
    """Append (or write, if offset is 0) the response body to `part`, with a progress bar."""
    bar = tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
               desc=part.name.removesuffix(".part"), disable=not progress)
    try:
        with open(part, "ab" if offset else "wb") as f, bar:
            while chunk := response.read(CHUNK):
                f.write(chunk)
                bar.update(len(chunk))
    except (OSError, http.client.HTTPException) as e:
        raise _interrupted(url, part, total, _reason(e)) from None
    if total is not None and part.stat().st_size != total:
        raise _interrupted(url, part, total, "connection closed early")


def _interrupted(url: str, part: Path, total: int | None, reason: str) -> LcnnError:
    got = part.stat().st_size if part.exists() else 0
    of = f" of {total}" if total is not None else ""
    return LcnnError(
        f"{url}: download interrupted after {got}{of} bytes ({reason}); "
        f"{part} is kept, run the same command again to resume"
    )


def _content_range_start(response) -> int | None:
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", "") or "")
    return int(match.group(1)) if match else None


def _reason(error: object) -> str:
    if isinstance(error, (socket.timeout, TimeoutError)):
        return f"timed out after {TIMEOUT_S:g} s"
    return str(error) or type(error).__name__


def _url_hint(spec: Dataset, url: str | None) -> str:
    if url is not None:
        return ""
    if spec.url_verified:
        return f"; the landing page {LANDING_PAGE} has the current links (use --url)"
    return (
        f"; this URL is unverified (taken from public download scripts): find the "
        f"current link on {LANDING_PAGE} and pass it with --url"
    )


# --- extraction internals ---------------------------------------------------------------------


def _extract_checked(archive: Path, into: Path, progress: bool) -> None:
    """Check every member first, then extract with the "data" filter as a second guard."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            # getmembers() reads the whole archive once, so a bad member stops us before any
            # file is written and we know the exact unpacked size for the disk check.
            members = tar.getmembers()
            for member in members:
                _check_member(member, into, archive)
            _check_free_space(
                into.parent, sum(m.size for m in members if m.isfile()),
                f"extracting {archive.name}",
            )
            bar = tqdm(members, unit="file", desc="extracting", disable=not progress)
            tar.extractall(into, members=bar, filter="data")
    except tarfile.FilterError as e:
        raise LcnnError(f"{archive}: refusing unsafe member {e.tarinfo.name!r}: {e}") from None
    except (tarfile.ReadError, tarfile.CompressionError, EOFError, zlib.error,
            gzip.BadGzipFile) as e:
        raise LcnnError(
            f"{archive}: not a readable .tar.gz ({e}); delete it or run again with --force"
        ) from None
    except (tarfile.TarError, OSError) as e:  # e.g. disk full or no permission while writing
        raise LcnnError(f"cannot extract {archive} into {into.parent}: {e}") from None


def _check_member(member: tarfile.TarInfo, into: Path, archive: Path) -> None:
    # The data filter would silently strip a leading "/" and extract the file anyway; a real
    # dataset archive never has absolute names, so treat one as a sign of a hostile archive.
    parts = PurePosixPath(member.name).parts
    if member.name.startswith(("/", "\\")) or os.path.isabs(member.name) or ".." in parts:
        raise LcnnError(f"{archive}: refusing unsafe member {member.name!r}: path leaves the "
                        "destination folder; nothing was extracted")
    tarfile.data_filter(member, str(into))  # raises FilterError for links out, devices, ...


def _recover_interrupted(target: Path) -> None:
    """Undo what a killed extraction into `target` left beside it: the old copy it had moved
    aside is put back if `target` is missing, and unfinished extractions are deleted."""
    from lcnn.io import is_stale_temporary

    for entry in sorted(target.parent.glob(f".{glob.escape(target.name)}{TMP_TAG}-*")):
        if not (entry.is_dir() and is_stale_temporary(entry.name)):
            continue
        if entry.name.endswith("-old") and not target.exists():
            os.replace(entry, target)
            print(f"Restored {target}: a replacement of it had been interrupted")
        else:
            shutil.rmtree(entry, ignore_errors=True)


def _swap_into_place(tmp: Path, target: Path) -> None:
    """Move the finished extraction to `target`; an old `target` is removed only afterwards."""
    old = None
    if target.exists():
        old = target.with_name(f"{temp_prefix(target)}old")  # restored if killed right here
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --- small helpers ----------------------------------------------------------------------------


def _lookup(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise LcnnError(
            f"unknown dataset {name!r}; choose one of: {', '.join(sorted(DATASETS))}"
        ) from None


def _prepare_dest(dest: Path) -> Path:
    if dest.exists() and not dest.is_dir():
        raise LcnnError(f"--dest {dest}: exists and is not a folder")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LcnnError(f"--dest {dest}: cannot create the folder ({e.strerror})") from None
    return dest


def _reuse_existing(final: Path) -> Path:
    root = find_dataset_root(final)
    if root is None:
        raise LcnnError(
            f"{final} already exists but does not hold the FoR layout; move it away or pass "
            "--force to replace it"
        )
    print(f"{final} already exists; not downloading again (pass --force to replace it).")
    _print_usage(root)
    return root


def _check_free_space(folder: Path, needed: int, what: str) -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise LcnnError(
            f"not enough free disk space in {folder}: {what} needs about {_human(needed)}, "
            f"only {_human(free)} free (short by {_human(needed - free)}); free some space "
            "or choose another --dest"
        )


def _print_usage(root: Path, archive: Path | None = None) -> None:
    if archive is not None:
        print(f"The archive is kept at {archive}; delete it to save space.")
    print(f"Dataset ready. Use --data_path {shlex.quote(str(root))}, for example:")
    print(f"  python -m lcnn train --data_path {shlex.quote(str(root))}")


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
