"""The benchmark's pure helpers on made-up numbers: statistics, turns, targets, report."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest

from bench import common, report


def test_summary_matches_the_statistics_module():
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0]
    s = common.summary(values)
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    assert s["median"] == statistics.median(values)
    assert (s["min"], s["max"], s["n"]) == (1.0, 9.0, 7)
    assert s["q1"] == pytest.approx(q1) and s["q3"] == pytest.approx(q3)


def test_interleaved_takes_turns_in_alternating_order():
    calls = []
    fns = {name: (lambda n=name: calls.append(n)) for name in "abc"}
    times = common.interleaved(fns, repeats=3, warmup=1)
    assert calls == list("abc") + list("abc") + list("cba") + list("abc")
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}


def test_round_ratios_pair_rounds():
    r = common.round_ratios([10.0, 20.0, 30.0], [5.0, 5.0, 10.0])
    assert r["each"] == [2.0, 4.0, 3.0]
    assert (r["median"], r["min"], r["max"]) == (3.0, 2.0, 4.0)
    with pytest.raises(ValueError):
        common.round_ratios([1.0], [1.0, 2.0])


def test_parse_settings_reads_json_values_and_refuses_unknown_fields():
    assert common.parse_settings(["sinc_stride=4", "sinc_log=true", "focal_alpha=null",
                                  "model=baseline", "learning_rate=1e-3"]) == {
        "sinc_stride": 4, "sinc_log": True, "focal_alpha": None, "model": "baseline",
        "learning_rate": 1e-3}
    # the same reading and message as `python -m lcnn train --set` (lcnn.config.parse_setting)
    with pytest.raises(SystemExit, match=r"^--set 'sinc_strid=4': expected KEY=VALUE with KEY "
                                         r"one of (\w+, )*augment_codec, .*, sinc_stride, "):
        common.parse_settings(["sinc_strid=4", "sinc_stride=4"])
    with pytest.raises(SystemExit, match="^--set 'sinc_stride': expected KEY=VALUE"):
        common.parse_settings(["sinc_stride"])
    assert common.parse_settings([]) == {}


def fake_results() -> dict:
    def s(median, low=None, high=None):
        low, high = low or median, high or median
        return {"median": median, "min": low, "max": high, "q1": low, "q3": high, "n": 5,
                "each": [low, median, high]}

    run = {"params": 1000, "gflop_per_clip": 0.1, "train_clips_per_s": s(200.0), "epochs": 3,
           "best_epoch": 2, "val_eer": 0.1, "test_eer": 0.2, "eer_by_attack": {"x": 0.3}}
    return {
        "training_ratio": {"rounds": 5, "clips_per_pass": 320, "batch_size": 64, "matrix": 4096,
                           "speedup_vs_baseline": s(8.5, 7.9, 9.0),
                           "clips_per_s": {"lcnn": s(350.0), "baseline": s(41.0)},
                           "model_gflops": s(30.0), "flop_fraction_of_tf_matmul": s(0.5),
                           "flop_fraction_of_numpy_matmul": s(0.2),
                           "matmul_gflops": {"matmul_tensorflow": s(60.0),
                                             "matmul_numpy": s(150.0)}},
        "pipeline": {"uncached_epoch_s": s(0.4), "cached_epoch_s": s(0.2),
                     "cache_speedup": s(2.0), "cache_speedup_no_augmentation": s(3.0),
                     "pipeline_clips_per_s": s(1750.0)},
        "inference": {"infer_clips_per_s": s(1000.0), "latency_ms_keras": s(5.0),
                      "latency_ms_tflite_fp32": s(1.5), "latency_ms_tflite_int8": s(2.5)},
        "tflite": {"fp32": {"bytes": 400_000, "test_eer": 0.20, "test_eer_ci95": (0.15, 0.25)},
                   "int8": {"bytes": 170_000, "test_eer": 0.27,
                            "score_error": {"median": 0.001, "max": 0.01}}},
        "compare": {"epochs": 6, "seeds": [1, 2], "lcnn": [0.25, 0.27],
                    "baseline": [0.30, 0.30], "gain": [0.05, 0.03]},
        "runs": {"lcnn": run, "baseline, 6 epochs": run},
        "unseen_attacks": ["x"],
    }


def test_ratios_and_targets_on_made_up_results():
    r = fake_results()
    ratio = report.ratios(r)
    assert ratio["train_speedup_vs_baseline"] == 8.5
    assert ratio["int8_eer_outside_float_ci_pp"] == pytest.approx(2.0)  # 27% vs CI top 25%
    assert ratio["pipeline_headroom"] == pytest.approx(5.0)
    assert ratio["eer_gain_vs_baseline_pp"] == pytest.approx(4.0)  # mean of 5 and 3 points
    passed = {t["key"]: t["pass"] for t in report.check_targets(ratio)}
    assert passed["train_speedup_vs_baseline"] and passed["cache_speedup"]  # 2.0 >= 2 holds
    assert not passed["latency_ms_tflite_int8"] and not passed["int8_eer_outside_float_ci_pp"]
    r["tflite"]["int8"]["test_eer"] = 0.16  # inside the CI now
    assert report.ratios(r)["int8_eer_outside_float_ci_pp"] == 0.0


def test_a_missing_value_fails_its_target():
    rows = report.check_targets({})
    assert len(rows) == len(report.TARGETS) and not any(t["pass"] for t in rows)


def test_comparison_pairs_the_short_runs_by_seed():
    from bench.run import comparison

    runs = {f"{m}, 6 epochs, seed {s}": {"test_eer": e}
            for m, s, e in [("lcnn", 1, 0.2), ("baseline", 1, 0.3), ("lcnn", 2, 0.4),
                            ("baseline", 2, 0.35)]}
    c = comparison(runs, 6, [1, 2])
    assert (c["lcnn"], c["baseline"]) == ([0.2, 0.4], [0.3, 0.35])
    assert c["gain"] == pytest.approx([0.1, -0.05])


def test_results_table_shows_rounds_spread_and_verdicts():
    r = fake_results()
    r["targets"] = report.check_targets(report.ratios(r))
    table = report.results_table(r)
    assert "Ratios per round: 7.90, 8.50, 9.00." in table
    assert "| 8.50 | 7.90 - 9.00 | 7.90 - 9.00 |" in table
    assert "20.0% (95% CI 15.0 - 25.0)" in table
    # sample sd of (25, 27) is sqrt(2) = 1.4 points; of the gains (5, 3) too
    assert ("testing EER 26.0 ± 1.4 % (25.0, 27.0) against 30.0 ± 0.0 % (30.0, 30.0); "
            "baseline minus default, paired by seed: 4.0 ± 1.4 % (5.0, 3.0)") in table
    assert "| int8 TFLite single-clip latency <= 2 ms (latency_ms_tflite_int8 <= 2) | 2.5 | " \
           "**no** |" in table


def test_replace_section_keeps_the_text_around_it():
    text = f"intro\n{report.README_START}\nold\n{report.README_END}\noutro\n"
    new = report.replace_section(text, "TABLE", "HEAD")
    assert new == f"intro\n{report.README_START}\nHEAD\n\nTABLE\n{report.README_END}\noutro\n"
    assert report.replace_section(new, "TABLE", "HEAD") == new
    assert report.replace_section("", "T", "H").count(report.README_START) == 1


def test_uncached_pipeline_gives_make_datasets_batches():
    """Decoding the files on every read must change only where the rows come from."""
    import dataclasses
    from pathlib import Path

    from bench.measure import uncached_dataset
    from lcnn.config import Config
    from lcnn.detector import data

    cfg = Config(batch_size=8)
    clips = data.load_split(Path(common.ROOT, "data", "demo"), "training", cfg, progress=False)
    few = dataclasses.replace(clips, audio=clips.audio[:20], lengths=clips.lengths[:20],
                              labels=clips.labels[:20], files=clips.files[:20])
    cached = list(data.make_dataset(few, cfg, training=True))
    decoded = list(uncached_dataset(few, cfg))
    assert len(cached) == len(decoded) == 3
    for (x1, y1), (x2, y2) in zip(cached, decoded, strict=True):
        np.testing.assert_array_equal(x1.numpy(), x2.numpy())
        np.testing.assert_array_equal(y1.numpy(), y2.numpy())


def test_augment_speed_runs_end_to_end_on_a_tiny_corpus(tmp_path):
    """bench.augment_speed trains with lcnn's step as `train` does (it broke once when the
    step gained its strategy argument and nothing ran it)."""
    import soundfile as sf

    from bench.augment_speed import measure

    rng = np.random.default_rng(0)
    for label in ("real", "fake"):
        folder = tmp_path / "data" / "training" / label
        folder.mkdir(parents=True)
        for i in range(4):
            sf.write(folder / f"{i}.wav", 0.1 * rng.standard_normal(8000), 16000)
    r = measure(tmp_path / "data", ["rawboost"], variants=1, repeats=1,
                cache_dir=str(tmp_path / "cache"))
    assert r["clips"] == 8 and r["variants"] == 1
    assert r["train_clips_per_s_on"]["n"] == r["pipeline_clips_per_s_off"]["n"] == 1


def test_ablation_tables_leave_out_diverged_seeds_and_say_so():
    from bench.ablation import model_table, table, transfer_table

    front = {"kind": "mel", "filters": 64, "kernel": 129, "stride": 16, "pool": 4,
             "frames_per_s": 250}

    def ok(seed, eer):
        return {"seed": seed, "params": 1, "gflop_per_clip": 0.1,
                "train_clips_per_s": {"median": 100}, "val_eer": eer, "test_eer": eer,
                "test_min_dcf": 0.5, "unseen_eer": {"x": eer}}

    nan = {"seed": 2, "diverged": True}
    text = table([{"name": "a", "front_end": front, "runs": [ok(1, 0.2), nan]}], ["x"])
    assert "| a (1 of 2 seeds diverged) | mel 64 bands | 250 | 1 | 0.100 | 100 | 20.0 | 20.0 |" \
        in text
    # the channel table follows when every finished run has been through the channels
    through = {**ok(1, 0.2), "condition_eer": {"clean": 0.2, "mp3-32k": 0.4}}
    text = model_table([{"name": "a", "front_end": front, "runs": [through, nan]}], ["x"])
    assert "| a (1 of 2 seeds diverged) | 20.0 | 20.0 | 30.0 | 40.0 (mp3-32k, seed 1) |" in text
    assert "channels" not in model_table(
        [{"name": "a", "front_end": front, "runs": [through, ok(3, 0.1)]}], ["x"])
    text = transfer_table([
        {"column": "attack", "value": "v", "test_real": 3, "test_fake": 3,
         "runs": [ok(1, 0.2), nan]},
        {"column": "attack", "value": "w", "test_real": 3, "test_fake": 3,
         "runs": [ok(1, 0.4), ok(2, 0.3)]}])
    assert "| attack v | 3 / 3 | 20.0 (1 diverged) |" in text
    # per seed, the mean over the values that finished: seed 1 (20 + 40) / 2, seed 2 30
    assert "| **mean over 2 attack values** | | 30.0 ± 0.0 [30.0, 30.0] (30.0, 30.0) |" in text
    # a row extended with more seeds: the mean takes only the seeds every row was run with
    text = transfer_table([
        {"column": "attack", "value": "v", "test_real": 3, "test_fake": 3,
         "runs": [ok(1, 0.2), ok(2, 0.4)]},
        {"column": "attack", "value": "w", "test_real": 3, "test_fake": 3,
         "runs": [ok(1, 0.4), ok(2, 0.2), ok(3, 0.9)]}])
    assert ("| **mean over 2 attack values** (seeds that every row has) | | "
            "30.0 ± 0.0 [30.0, 30.0] (30.0, 30.0) |") in text


def test_a_table_header_names_the_seeds_of_each_row_when_they_differ():
    from bench.ablation import seeds_text

    def row(*seeds):
        return {"runs": [{"seed": s} for s in seeds]}

    assert seeds_text({"seeds": [1, 2, 3], "rows": [row(1, 2), row(1, 2)]}) == "seeds 1, 2"
    assert seeds_text({"seeds": [1, 2, 3], "rows": []}) == "seeds 1, 2, 3"
    assert seeds_text({"seeds": [1, 2, 3], "rows": [row(1, 2), row(1, 2, 3), row(1, 2)]}) == (
        "seeds 1, 2 (2 rows); 1, 2, 3 (1 row)")


def test_fusion_table_gives_the_fused_metrics_over_the_seeds_that_finished():
    from bench.ablation import fusion_table

    def fused(seed, eer):
        return {"seed": seed, "weights": [-1.0, -2.5], "b": 0.25, "test_eer": eer,
                "test_min_dcf": 0.4, "cllr": 0.7, "unseen_eer": {"x": eer}}

    rows = [{"name": "a + b", "runs": [fused(1, 0.1), {"seed": 2, "diverged": True},
                                       fused(3, 0.2)]}]
    assert ("| a + b (1 of 3 seeds diverged) | 15.0 ± 7.1 [-48.5, 78.5] (10.0, 20.0) | "
            "0.400 ± 0.000 [0.400, 0.400] (0.400, 0.400) | 0.700 ± 0.000 [0.700, 0.700] "
            "(0.700, 0.700) | 15.0 ± 7.1 [-48.5, 78.5] (10.0, 20.0) | -1.00, -2.50; b 0.25 |"
            ) in fusion_table(rows, ["x"])


def test_rows_are_picked_by_run_folder_name():
    from bench.ablation import AUGMENT_SETTINGS, picked, slug

    chosen = picked(AUGMENT_SETTINGS, ["default", "codec--reverb--telephone-copies"])
    assert [slug(name) for name, _ in chosen] == ["default", "codec--reverb--telephone-copies"]
    assert chosen[0][1] == {}  # the default: no channel augmentation
    assert picked(AUGMENT_SETTINGS, []) == AUGMENT_SETTINGS
    assert len({slug(name) for name, _ in AUGMENT_SETTINGS}) == len(AUGMENT_SETTINGS)


def test_held_out_values_are_picked_by_run_folder_name_too():
    from argparse import Namespace

    from bench.ablation import holdout_name, partial, transfer_picks

    assert holdout_name("attack", "hifigan-universal") == "attack-hifigan-universal"
    assert holdout_name("speaker", "june wallack") == "speaker-june-wallack"
    both = ["attack", "speaker"]
    args = Namespace(rows=["default", "attack-hifigan-universal"], holdouts=both)
    assert transfer_picks(args) == ["attack-hifigan-universal"]
    assert partial("transfer", args)  # the other held-out values' stored rows stay
    assert not partial("transfer", Namespace(rows=["default"], holdouts=both))
    assert partial("transfer", Namespace(rows=[], holdouts=["speaker"]))


def test_rows_run_again_replace_their_stored_rows_and_keep_the_others_in_table_order():
    from bench.ablation import AUGMENT_SETTINGS, merged_rows

    def runs(*seeds, by="new"):
        return [{"seed": s, "by": by} for s in seeds]

    names = [name for name, _ in AUGMENT_SETTINGS]
    old = {"command": "python -m bench.ablation --tables augment", "date": "D",
           "rows": [{"name": names[0], "runs": runs(42, by="old")},
                    {"name": names[2], "runs": runs(42, by="old")}]}
    fresh = [{"name": names[2], "runs": runs(42)}, {"name": names[1], "runs": runs(42)}]
    rows, command = merged_rows(old, fresh, "augment", "python -m bench.ablation --rows x")
    assert [(r["name"], r["runs"]) for r in rows] == [
        (names[0], runs(42, by="old")), (names[1], runs(42)), (names[2], runs(42))]
    assert command == ("python -m bench.ablation --tables augment (D), "
                       "then python -m bench.ablation --rows x")
    # nothing kept: the table is just the new rows, under the new command alone
    old["rows"] = [{"name": names[1], "runs": runs(42, by="old")}]
    assert merged_rows(old, fresh, "augment", "c") == (fresh, "c")
    # the transfer table: held-out values not run again stay, attack first, then by value
    old = {"command": "a", "date": "D",
           "rows": [{"column": "attack", "value": "x", "runs": runs(42, by="old")},
                    {"column": "attack", "value": "z", "runs": runs(42, by="old")},
                    {"column": "speaker", "value": "s", "runs": runs(42, by="old")}]}
    fresh = [{"column": "speaker", "value": "s", "runs": runs(42)},
             {"column": "attack", "value": "y", "runs": runs(42)}]
    rows, _ = merged_rows(old, fresh, "transfer", "b")
    assert [(r["value"], r["runs"]) for r in rows] == [
        ("x", runs(42, by="old")), ("y", runs(42)), ("z", runs(42, by="old")), ("s", runs(42))]


def test_seeds_run_again_extend_a_stored_row_and_replace_only_their_own_runs():
    from bench.ablation import merged_rows, seeds_text

    old = {"command": "a", "date": "D",
           "rows": [{"column": "attack", "value": "x", "test_real": 9,
                     "runs": [{"seed": s, "by": "old"} for s in (42, 43, 44)]}]}
    fresh = [{"column": "attack", "value": "x", "test_real": 10,
              "runs": [{"seed": s, "by": "new"} for s in (44, 45)]}]
    rows, command = merged_rows(old, fresh, "transfer", "b --seeds 44 45")
    assert [(r["seed"], r["by"]) for r in rows[0]["runs"]] == [
        (42, "old"), (43, "old"), (44, "new"), (45, "new")]
    assert rows[0]["test_real"] == 10  # the row's other fields are the new run's
    assert command == "a (D), then b --seeds 44 45"
    assert seeds_text({"rows": rows, "seeds": [44, 45]}) == "seeds 42, 43, 44, 45"


def test_table_headers_name_the_base_settings_that_differ_from_todays_defaults():
    import dataclasses

    from bench.ablation import base_settings
    from bench.common import THREADS
    from lcnn.config import Config, parse_setting

    today = dataclasses.asdict(Config(threads=THREADS))
    assert base_settings(today) == "today's defaults (lcnn.config.Config)"
    assert base_settings({**today, "threads": 1}) == "today's defaults (lcnn.config.Config)"
    assert base_settings({**today, "epochs": 40}) == "today's defaults except epochs=40"
    older = {k: v for k, v in today.items() if k != "augment_band_mask"}  # stored before it
    assert base_settings({**older, "front_end": "mel"}) == (
        "today's defaults except front_end=mel")
    # an empty text reads as one, and --set reads it back as the same empty text
    assert base_settings({**today, "augment_rawboost": ""}) == (
        "today's defaults except augment_rawboost=\"\"")
    assert parse_setting('augment_rawboost=""') == ("augment_rawboost", "")


def test_a_table_on_other_base_settings_is_kept_beside_the_defaults():
    import dataclasses

    from bench.ablation import render, runs_folder, table_key, table_of
    from bench.common import THREADS
    from lcnn.config import Config

    today = dataclasses.asdict(Config(threads=THREADS))
    other = {**today, "sinc_log": not today["sinc_log"], "augment_rawboost": "1 2"}
    key = table_key("transfer", other)
    assert key == f"transfer with augment_rawboost=1 2, sinc_log={str(other['sinc_log']).lower()}"
    assert table_of(key) == "transfer"
    assert table_key("transfer", {**today, "threads": 1}) == "transfer"
    # a shorter schedule is other settings, with a table of its own
    assert table_key("transfer", {**today, "epochs": 40}) == "transfer with epochs=40"
    # and runs of its own, beside the default's
    assert runs_folder(Path("r"), today) == Path("r")
    assert runs_folder(Path("r"), other).parent == Path("r")
    assert runs_folder(Path("r"), other).name.startswith("with-augment_rawboost=1_2-sinc_log=")
    table = {"command": "c", "date": "d", "config": {"sinc_log": True}, "epochs": 1, "patience": 1,
             "seeds": [1], "threads": 2, "seconds": 0, "unseen": [], "rows": []}
    text = render({key: table, "transfer": table, "augment": table})
    headings = [line for line in text.splitlines() if line.startswith("### ")]
    assert headings == ["### Channel augmentation", "### Transfer to held-out attacks and speakers",
                        "### Transfer to held-out attacks and speakers, "
                        + key.removeprefix("transfer ")]


def test_stored_tables_are_keyed_by_how_their_base_differs_from_todays_defaults(tmp_path):
    """A table stored as the default's when the defaults were others is read as a table on other
    settings, and one stored as such, on what are today's defaults, as the default's."""
    import dataclasses

    from bench.ablation import stored_tables
    from bench.common import THREADS
    from lcnn.config import Config

    today = dataclasses.asdict(Config(threads=THREADS))
    then = {**today, "sinc_trainable": not today["sinc_trainable"]}
    flag = str(then["sinc_trainable"]).lower()
    path = tmp_path / "ablation.json"
    path.write_text(json.dumps({"transfer": {"config": then},
                                f"transfer with sinc_trainable={flag}x": {"config": today},
                                "speed": {"config": today}}))
    assert stored_tables(path) == {f"transfer with sinc_trainable={flag}": {"config": then},
                                    "transfer": {"config": today}}


def test_render_rewrites_only_the_generated_block_under_todays_keys(tmp_path):
    """`--render` (write_markdown): a table stored when the defaults were others gets the
    header of a table on other settings; the prose around the block stays."""
    import dataclasses

    from bench.ablation import ROOT, write_markdown
    from bench.common import THREADS
    from lcnn.config import Config

    today = dataclasses.asdict(Config(threads=THREADS))
    then = {**today, "epochs": today["epochs"] + 1}
    table = {"command": "c", "date": "d", "config": then, "epochs": then["epochs"],
             "patience": 1, "seeds": [1], "threads": 2, "seconds": 0, "unseen": [], "rows": []}
    (tmp_path / "ablation.json").write_text(json.dumps({"transfer": table}))
    md = tmp_path / "ablation.md"
    md.write_text(f"before\n{report.README_START}\nold\n{report.README_END}\nafter\n")
    write_markdown(tmp_path / "ablation.json", ROOT / "data" / "demo", md)
    text = md.read_text()
    assert text.startswith("before\n") and text.endswith("after\n") and "\nold\n" not in text
    assert f"### Transfer to held-out attacks and speakers, with epochs={then['epochs']}" in text


def test_paired_compares_runs_of_the_same_seed_as_scipys_paired_t_test(tmp_path, capsys):
    """bench.paired: pairs only seeds both rows finished, pools several --pair options, and
    its mean difference and 95 % interval are scipy.stats.ttest_rel's."""
    import dataclasses

    from scipy import stats

    from bench import paired
    from bench.common import THREADS
    from lcnn.config import Config

    today = dataclasses.asdict(Config(threads=THREADS))
    other = {**today, "epochs": today["epochs"] + 1}

    def table(config, runs_by_value):
        return {"command": "c", "date": "d", "config": config, "epochs": 1, "patience": 1,
                "seeds": [1], "threads": 2, "seconds": 0, "unseen": [],
                "rows": [{"column": "attack", "value": value, "runs": runs}
                         for value, runs in runs_by_value.items()]}

    a = {"x": [{"seed": 1, "test_eer": 0.10}, {"seed": 2, "test_eer": 0.20},
               {"seed": 3, "test_eer": 0.30}],
         "y": [{"seed": 1, "test_eer": 0.05}, {"seed": 2, "diverged": True}]}
    b = {"x": [{"seed": 1, "test_eer": 0.12}, {"seed": 2, "test_eer": 0.17},
               {"seed": 4, "test_eer": 0.90}],
         "y": [{"seed": 1, "test_eer": 0.09}, {"seed": 2, "test_eer": 0.5}]}
    path = tmp_path / "ablation.json"
    path.write_text(json.dumps({"transfer": table(today, a),
                                f"transfer with epochs={other['epochs']}": table(other, b)}))
    other_key = f"transfer with epochs={other['epochs']}"
    assert paired.main(["--json", str(path),
                        "--pair", "transfer:attack-x", f"{other_key}:attack-x",
                        "--pair", "transfer:attack-y", f"{other_key}:attack-y"]) == 0
    out = capsys.readouterr().out
    diffs = [2.0, -3.0, 4.0]  # seeds 1, 2 of x and seed 1 of y, in points
    test = stats.ttest_rel([12.0, 17.0, 9.0], [10.0, 20.0, 5.0])
    low, high = test.confidence_interval()
    assert (f"over 3 pairs: {np.mean(diffs):.1f} ± {np.std(diffs, ddof=1):.1f} "
            f"[{low:.1f}, {high:.1f}]") in out
    assert "B lower on 1, higher on 2" in out
    run = {"condition_eer": {"clean": 0.1, "noise-10db": 0.4}}
    assert paired.measure_of(run, "condition_eer.noise-10db") == 0.4
    assert paired.measure_of(run, "condition_eer") == pytest.approx(0.25)  # the mean
    assert paired.measure_of({"diverged": True}, "test_eer") is None
    with pytest.raises(SystemExit) as stop:
        paired.main(["--json", str(path), "--pair", "transfer:attack-z", "transfer:attack-x"])
    assert stop.value.code == 2
    assert "no row 'attack-z' in 'transfer'; rows: attack-x, attack-y" in capsys.readouterr().err
