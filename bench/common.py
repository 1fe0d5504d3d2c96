"""What the bench scripts share: timing in turns, summary statistics, a bootstrap, settings.

Pure helpers (no TensorFlow at import time), so tests/test_bench.py can check them on
made-up inputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lcnn.config import Config, parse_setting
from lcnn.errors import ConfigError
from lcnn.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
THREADS = 2  # every bench process runs TensorFlow on 2 threads (the course machines' cores)


def summary(values) -> dict:
    """Median with the spread (min, max, quartiles) of repeated measurements."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("summary of no values")
    q1, med, q3 = np.percentile(v, [25, 50, 75])
    return {"median": float(med), "min": float(v.min()), "max": float(v.max()),
            "q1": float(q1), "q3": float(q3), "n": int(v.size)}


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of fn takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def turn_order(names: list[str], round_: int) -> list[str]:
    """Names in order on even rounds, reversed on odd ones (A B C, C B A, A B C, ...), so that
    no function always runs right after the same other one."""
    return list(names) if round_ % 2 == 0 else list(reversed(names))


def interleaved(fns: dict[str, Callable[[], object]], repeats: int,
                warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each function, taking turns so that all see the same background load.

    Round r of `repeats` calls every function once (in `turn_order`); entry r of each list
    comes from that round, so ratios can be formed round by round.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(repeats):
        for name in turn_order(list(fns), r):
            times[name].append(timed(fns[name]))
    return times


def round_ratios(numerator: list[float], denominator: list[float]) -> dict:
    """numerator[r] / denominator[r] for each round r, with its summary (median, min-max, IQR)."""
    if len(numerator) != len(denominator):
        raise ValueError(f"{len(numerator)} vs {len(denominator)} rounds")
    each = [float(a) / float(b) for a, b in zip(numerator, denominator, strict=True)]
    return {**summary(each), "each": each}


def parse_settings(items: list[str]) -> dict:
    """["sinc_stride=4", "sinc_log=true"] -> {"sinc_stride": 4, "sinc_log": True}, each item
    read by lcnn.config.parse_setting (as `python -m lcnn train --set` reads it); a field that
    Config does not have ends the script here, before any training starts."""
    try:
        return dict(parse_setting(item) for item in items)
    except ConfigError as e:
        raise SystemExit(f"--set {e}") from None


def random_batch(cfg: Config, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One batch of quiet noise clips and random labels: enough to time a step."""
    x = (0.1 * rng.standard_normal((cfg.batch_size, cfg.n_samples))).astype("float32")
    y = rng.integers(0, 2, (cfg.batch_size, 1)).astype("float32")
    return x, y


def epoch_speeds(run_dir: Path, clips: int) -> list[float]:
    """Training clips/s of each epoch of a run, from its history.

    The first epoch also builds and compiles the training graph, so it is left out when
    there are later ones.
    """
    from lcnn.detector import runs

    history = runs.read_history(run_dir / runs.HISTORY)
    later = [row for row in history if row["epoch"] > 1] or history
    return [clips / row["seconds"] for row in later]


def atomic_write(path: Path, text: str) -> None:
    """Write text to path (parents created) so that a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
