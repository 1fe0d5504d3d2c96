"""Files written atomically: a temporary file beside the target, renamed over it.

os.replace is atomic on one file system, so a killed process leaves either the old or the
new file, never half of one. Run folders, caches, downloads and figures all use this.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(target: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `target`; move it into place only if the block succeeds.

    The temporary file gets an ordinary file's mode (mkstemp makes it private) and `suffix`
    (some writers pick the format from it: Keras wants .keras).
    """
    target = Path(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write bytes to path atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write text to path atomically."""
    atomic_write_bytes(path, text.encode())
