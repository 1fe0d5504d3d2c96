"""Files written atomically: a temporary file beside the target, renamed over it.

os.replace is atomic on one file system, so a killed process leaves either the old or the
new file, never half of one; the new file's data is flushed to disk before the rename. Run
folders, caches, downloads and figures all use this. A temporary file is named after its
writer (host and process id), so that the next run can remove those of a killed one
(clean_temporaries).
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_TAG = ".lcnn-tmp"  # in the name of every temporary file lcnn writes
HOST = socket.gethostname().replace(os.sep, "_")
# .<target>.lcnn-tmp-<host>-<pid>-<random>[suffix]: whose it is, so a dead writer's are removed
_TMP_NAME = re.compile(re.escape(TMP_TAG) + r"-(?P<host>.+)-(?P<pid>\d+)-[a-z0-9_]+(\.\w+)?$")


def temp_prefix(target: str | Path) -> str:
    """The start of a temporary file's name for target: hidden, tagged, with host and pid, so
    that clean_temporaries can remove it if its writer was killed."""
    return f".{Path(target).name}{TMP_TAG}-{HOST}-{os.getpid()}-"


@contextmanager
def atomic_path(target: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `target`; move it into place only if the block succeeds.

    The temporary file gets an ordinary file's mode (mkstemp makes it private) and `suffix`
    (some writers pick the format from it: Keras wants .keras).
    """
    target = Path(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=temp_prefix(target), suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        _flush_to_disk(tmp)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _flush_to_disk(path: str) -> None:
    """Make the file's data durable before it is renamed into place: otherwise a power cut
    soon after can leave the new name holding an empty file, on file systems that may commit
    the rename first (ext4 without its default auto_da_alloc, XFS)."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write bytes to path atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write text to path atomically."""
    atomic_write_bytes(path, text.encode())


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (True when it cannot be told)."""
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows
        import psutil

        return psutil.pid_exists(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def is_stale_temporary(name: str) -> bool:
    """Whether name is an lcnn temporary file of a process on this machine that is gone."""
    match = _TMP_NAME.search(name)
    return bool(match and match["host"] == HOST and int(match["pid"]) != os.getpid()
                and not pid_alive(int(match["pid"])))


def clean_temporaries(folder: Path) -> list[str]:
    """Delete the temporary files killed lcnn processes left in folder; return their names."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        if is_stale_temporary(entry.name):
            try:
                entry.unlink()
                removed.append(entry.name)
            except OSError:
                pass  # gone already, or not ours to delete: leave it
    return removed
