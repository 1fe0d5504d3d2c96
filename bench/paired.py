"""Two ablation rows compared seed by seed: the difference of each pair of runs with the same seed.

Usage (from the repository root; tables as bench/ablation.md names them, rows as --rows does):

    python -m bench.paired \
        --pair "augment with augment_rawboost=12:reverb--RawBoost-12-copies" \
               "augment with augment_rawboost=12:reverb--RawBoost-123-copies" \
        --measure condition_eer.noise-10db
    python -m bench.paired \
        --pair "transfer with augment_rawboost=12:attack-hifigan-universal" \
               transfer:attack-hifigan-universal \
        --pair "transfer with augment_rawboost=12:attack-griffin-lim" transfer:attack-griffin-lim

Runs of the same seed start from the same weights and see the same batches, so their
difference takes out most of what the seed alone moves; several --pair options pool their
pairs. Prints each pair (B - A, in EER points), then the mean difference with its sd and 95 %
t-interval, and on how many pairs B was lower. Reads bench/ablation.json and trains nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.ablation import JSON_PATH, holdout_name, mean_sd, slug, stored_tables


def find_row(tables: dict, spec: str) -> dict:
    """The row `TABLE:ROW` of the stored tables (ROW: a setting's slug or a held-out value's
    name, as --rows takes them); ValueError naming what exists when there is no such row."""
    key, sep, name = spec.rpartition(":")
    if not sep or key not in tables:
        raise ValueError(f"{spec!r}: no table {key!r}; tables: {'; '.join(sorted(tables))}")
    rows = {_row_name(row): row for row in tables[key]["rows"]}
    if name not in rows:
        raise ValueError(f"{spec!r}: no row {name!r} in {key!r}; rows: {', '.join(rows)}")
    return rows[name]


def _row_name(row: dict) -> str:
    return slug(row["name"]) if "name" in row else holdout_name(row["column"], row["value"])


def measure_of(run: dict, measure: str) -> float | None:
    """A run's value of `measure` (a key, or a dotted path such as condition_eer.noise-10db;
    a key that holds several values, such as condition_eer, gives their mean); None if the run
    has none (it diverged, or predates that measure)."""
    value = run
    for part in measure.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return float(np.mean(list(value.values()))) if isinstance(value, dict) else float(value)


def pairs(a: dict, b: dict, measure: str) -> list[tuple[int, float, float]]:
    """(seed, A's value, B's value) for every seed both rows have a value for."""
    a_by_seed = {r["seed"]: measure_of(r, measure) for r in a["runs"]}
    out = []
    for run in b["runs"]:
        value_a, value_b = a_by_seed.get(run["seed"]), measure_of(run, measure)
        if value_a is not None and value_b is not None:
            out.append((run["seed"], value_a, value_b))
    return sorted(out)


def report(compared: list[tuple[str, str, list[tuple[int, float, float]]]]) -> str:
    """Each pair and the pooled summary of B - A, in points (x100)."""
    lines, diffs = [], []
    for a, b, seeds in compared:
        lines.append(f"B = {b}\nA = {a}")
        for seed, va, vb in seeds:
            lines.append(f"  seed {seed}: A {100 * va:5.1f}  B {100 * vb:5.1f}  "
                         f"B - A {100 * (vb - va):+5.1f}")
            diffs.append(vb - va)
    if not diffs:
        return "\n".join(lines + ["no seed has a value in both rows"])
    lower = sum(d < 0 for d in diffs)
    lines.append(f"B - A over {len(diffs)} pairs: {mean_sd(diffs)}; "
                 f"B lower on {lower}, higher on {sum(d > 0 for d in diffs)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", nargs=2, action="append", required=True, metavar=("A", "B"),
                        help="TABLE:ROW TABLE:ROW (repeat to pool pairs)")
    parser.add_argument("--measure", default="test_eer",
                        help="a run's key in bench/ablation.json, dotted for nested ones "
                             "(condition_eer: the mean over the conditions)")
    parser.add_argument("--json", type=Path, default=JSON_PATH)
    args = parser.parse_args(argv)
    tables = stored_tables(args.json)
    try:
        compared = [(a, b, pairs(find_row(tables, a), find_row(tables, b), args.measure))
                    for a, b in args.pair]
    except ValueError as e:
        parser.exit(2, f"bench.paired: {e}\n")
    print(report(compared))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
