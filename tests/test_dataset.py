"""Dataset layouts: FoR folders, ASVspoof protocol files, CSV manifests and In-the-Wild's
meta.csv, each on small generated examples."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from lcnn import FAKE, REAL
from lcnn.dataset import CsvSource, FoldersSource, ProtocolSource, open_source, read_protocol
from lcnn.errors import LayoutError


def _tone(path, seconds=0.5, rate=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, 0.1 * np.sin(2 * np.pi * 440 * t), rate)
    return path


# Lines as the ASVspoof protocols print them (file names made up).
LA2019 = """LA_0079 LA_T_1000001 - - bonafide
LA_0079 LA_T_1000002 - A01 spoof
LA_0080 LA_T_1000003 - A02 spoof
"""
LA2021 = """LA_0009 LA_E_2000001 alaw ita_tx bonafide bonafide notrim eval
LA_0009 LA_E_2000002 alaw ita_tx A07 spoof notrim eval
"""
ASV5 = """T_4850 T_0000000001 F - - - - bonafide bonafide -
T_4851 T_0000000002 M - - - AC3 A05 spoof -
"""


@pytest.mark.parametrize("text, speakers, attacks, labels", [
    (LA2019, ["LA_0079", "LA_0079", "LA_0080"], ["bonafide", "A01", "A02"], [REAL, FAKE, FAKE]),
    (LA2021, ["LA_0009", "LA_0009"], ["bonafide", "A07"], [REAL, FAKE]),
    (ASV5, ["T_4850", "T_4851"], ["bonafide", "A05"], [REAL, FAKE]),
])  # fmt: skip
def test_asvspoof_protocols(tmp_path, text, speakers, attacks, labels):
    protocol = tmp_path / "protocol.txt"
    protocol.write_text(text)
    for line in text.splitlines():
        _tone(tmp_path / "flac" / f"{line.split()[1]}.flac")
    listing = read_protocol(protocol, tmp_path / "flac")
    assert [f.name for f in listing.files] == [f"{ln.split()[1]}.flac" for ln in text.splitlines()]
    assert listing.labels.tolist() == labels
    assert listing.meta["speaker"].tolist() == speakers
    assert listing.meta["attack"].tolist() == attacks
    assert listing.root == tmp_path / "flac"


def test_asvspoof5_protocol_has_gender(tmp_path):
    (tmp_path / "p.tsv").write_text(ASV5)
    for name in ("T_0000000001", "T_0000000002"):
        _tone(tmp_path / f"{name}.flac")
    assert read_protocol(tmp_path / "p.tsv", tmp_path).meta["gender"].tolist() == ["F", "M"]


def test_protocol_errors_name_the_problem(tmp_path):
    (tmp_path / "p.txt").write_text(LA2019)
    with pytest.raises(LayoutError, match=r"3 listed file\(s\) not found: .*LA_T_1000001.flac"):
        read_protocol(tmp_path / "p.txt", tmp_path)
    (tmp_path / "bad.txt").write_text("LA_0079 LA_T_1 - A01 maybe\n")
    with pytest.raises(LayoutError, match=r"bad.txt, line 1: expected 'SPEAKER FILE"):
        read_protocol(tmp_path / "bad.txt", tmp_path)
    with pytest.raises(LayoutError, match="no such audio folder"):
        read_protocol(tmp_path / "p.txt", tmp_path / "nowhere")


def test_protocol_source_by_split_and_spec_round_trip(tmp_path):
    (tmp_path / "train.txt").write_text(LA2019)
    for line in LA2019.splitlines():
        _tone(tmp_path / "train" / f"{line.split()[1]}.wav")  # .wav found as well
    source = ProtocolSource({"train": tmp_path / "train.txt"}, {"train": tmp_path / "train"})
    assert source.splits() == ["training"]
    again = open_source(source.spec())
    assert again.listing("training").files == source.listing("training").files
    with pytest.raises(LayoutError, match="no protocol file for the validation split"):
        source.listing("dev")


def test_csv_manifest_with_splits_and_metadata(tmp_path):
    for i in range(4):
        _tone(tmp_path / "audio" / f"{i}.wav")
    (tmp_path / "list.csv").write_text(
        "path,label,split,attack,speaker\n"
        "audio/0.wav,real,train,bonafide,ann\n"
        "audio/1.wav,fake,train,vits,ann\n"
        "audio/2.wav,bona-fide,test,bonafide,bob\n"
        "audio/3.wav,spoof,test,hifigan,bob\n"
    )
    source = open_source(tmp_path / "list.csv")
    assert isinstance(source, CsvSource) and sorted(source.splits()) == ["testing", "training"]
    test = source.listing("testing")
    assert [f.name for f in test.files] == ["2.wav", "3.wav"]
    assert test.labels.tolist() == [REAL, FAKE]
    assert test.meta["attack"].tolist() == ["bonafide", "hifigan"]
    assert test.meta["speaker"].tolist() == ["bob", "bob"]


def test_csv_manifest_errors(tmp_path):
    _tone(tmp_path / "a.wav")
    (tmp_path / "l.csv").write_text("path,label\na.wav,real\na.wav,maybe\n")
    with pytest.raises(LayoutError, match=r"l.csv, line 3: unknown label 'maybe'"):
        open_source(tmp_path / "l.csv")
    (tmp_path / "one.csv").write_text("path,label\na.wav,real\n")
    with pytest.raises(LayoutError, match="only real files"):
        open_source(tmp_path / "one.csv")
    (tmp_path / "cols.csv").write_text("name,class\na.wav,real\n")
    with pytest.raises(LayoutError, match="needs a path .* column and a label column"):
        open_source(tmp_path / "cols.csv")


def test_in_the_wild_folder_is_a_testing_split(tmp_path):
    for i in range(3):
        _tone(tmp_path / f"{i}.wav")
    (tmp_path / "meta.csv").write_text(
        "file,speaker,label\n0.wav,Alec Guinness,spoof\n1.wav,Alec Guinness,bona-fide\n"
        "2.wav,Ayn Rand,bona-fide\n"
    )
    source = open_source(tmp_path)
    assert source.splits() == ["testing"]
    listing = source.listing("test")
    assert listing.labels.tolist() == [FAKE, REAL, REAL]
    assert listing.meta["speaker"].tolist()[-1] == "Ayn Rand"
    with pytest.raises(LayoutError, match="no rows in the training split"):
        source.listing("training")


def test_folders_source_reads_metadata_columns(tmp_path):
    for split in ("training", "testing"):
        _tone(tmp_path / split / "real" / "r.wav")
        _tone(tmp_path / split / "fake" / "f.wav")
    (tmp_path / "metadata.csv").write_text(
        "file,attack,speaker\n"
        + "".join(f"{s}/real/r.wav,bonafide,ann\n{s}/fake/f.wav,vits,ann\n"
                  for s in ("training", "testing"))
    )
    source = open_source(tmp_path)
    assert isinstance(source, FoldersSource)
    listing = source.listing("testing")
    assert listing.labels.tolist() == [REAL, FAKE]
    assert listing.meta["attack"].tolist() == ["bonafide", "vits"]


def test_load_split_decodes_a_manifest_with_its_metadata(tmp_path):
    from lcnn.config import Config
    from lcnn.detector import data

    for i in range(4):
        _tone(tmp_path / "a" / f"{i}.wav", seconds=2.0)
    (tmp_path / "l.csv").write_text(
        "path,label,attack\na/0.wav,real,bonafide\na/1.wav,fake,x\n"
        "a/2.wav,real,bonafide\na/3.wav,fake,y\n"
    )
    clips = data.load_split(tmp_path / "l.csv", "testing", Config(), cache_dir=tmp_path / "c",
                            progress=False)
    assert clips.labels.tolist() == [REAL, FAKE, REAL, FAKE]
    assert clips.meta["attack"].tolist() == ["bonafide", "x", "bonafide", "y"]
    assert clips.audio.shape[0] == 4


def test_train_and_evaluate_from_a_csv_list(tmp_path):
    """`train --data_path list.csv` trains on the rows of the training split and validates on
    the validation rows; evaluate scores the testing rows and reports the attack column."""
    import json
    import subprocess
    import sys

    rows = ["path,label,split,attack"]
    for split in ("train", "dev", "test"):
        for i in range(4):
            fake = i % 2
            rows.append(f"{split}/{i}.wav,{'spoof' if fake else 'bonafide'},{split},"
                        f"{'tone' if fake else 'bonafide'}")
            rng = np.random.default_rng(i)
            x = np.sin(np.linspace(0, 300, 8000)) if fake else rng.standard_normal(8000)
            (tmp_path / split).mkdir(exist_ok=True)
            sf.write(tmp_path / split / f"{i}.wav", 0.3 * x / np.abs(x).max(), 16000)
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    run = tmp_path / "run"

    def lcnn(*args):
        return subprocess.run([sys.executable, "-m", "lcnn", *map(str, args)],
                              capture_output=True, text=True, timeout=600)

    r = lcnn("train", "--data_path", tmp_path / "list.csv", "--run_dir", run, "--epochs", "1",
             "--set", "duration=0.5", "--set", "sinc_filters=16", "--quiet")
    assert r.returncode == 0, r.stderr
    r = lcnn("evaluate", "--run_dir", run, "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert (result["n_real"], result["n_fake"]) == (2, 2)
    assert set(result["eer_by_attack"]) == {"tone"}
    r = lcnn("train", "--data_path", tmp_path / "missing.csv", "--run_dir", tmp_path / "r2")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "missing.csv" in r.stderr and not (tmp_path / "r2").exists()
