"""Every flag of examples/train_cifar10.py is checked before any data is read: a nonsensical
value ends in one line naming the flag, what it accepts and what it got (exit status 2)."""

import pytest
from helpers import load_example


@pytest.fixture(scope="module")
def script():
    return load_example()


BAD = [
    (["--epochs", "0"], "--epochs: expected a whole number at least 1, got '0'"),
    (["--epochs", "-2"], "--epochs: expected a whole number at least 1, got '-2'"),
    (["--batch-size", "0"], "--batch-size: expected a whole number at least 1, got '0'"),
    (["--batch-size", "1.5"], "--batch-size: expected a whole number at least 1, got '1.5'"),
    (["--lr", "nan"], "--lr: expected a finite number in (0, inf), got 'nan'"),
    (["--lr", "-0.1"], "--lr: expected a finite number in (0, inf), got '-0.1'"),
    (["--lr", "inf"], "--lr: expected a finite number in (0, inf), got 'inf'"),
    (["--label-smoothing", "1"], "--label-smoothing: expected a finite number in [0, 1), got '1'"),
    (["--seed", "-1"], "--seed: expected a whole number at least 0, got '-1'"),
    (["--translate", "-3"], "--translate: expected a whole number from 0 to 16, got '-3'"),
    (["--translate", "40"], "--translate: expected a whole number from 0 to 16, got '40'"),
    (["--limit-train", "0"], "--limit-train: expected a whole number at least 1, got '0'"),
    (["--limit-train", "-5"], "--limit-train: expected a whole number at least 1, got '-5'"),
    (["--val-size", "-1"], "--val-size: expected a whole number at least 0, got '-1'"),
    (["--patience", "0"], "--patience: expected a whole number at least 1, got '0'"),
    (["--bn-lr-scale", "0"], "--bn-lr-scale: expected a finite number in (0, inf), got '0'"),
    (["--widths", "64", "0", "256"], "--widths: expected a whole number at least 1, got '0'"),
    (["--trace-every", "0"], "--trace-every: expected a whole number at least 1, got '0'"),
    (["--limit-train", "100", "--val-size", "0", "--batch-size", "512"],
     "--batch-size 512: larger than the 100 training images"),
    (["--limit-train", "100", "--val-size", "100"],
     "--val-size 100: must leave training images; only 100 are used"),
    (["--limit-train", "5"], "--val-size 5000 (preset default): must leave training images; "
                             "only 5 are used (--val-size 0 holds none out)"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_nonsensical_flags_fail_before_any_data_is_read(script, monkeypatch, capsys, argv, message):
    def no_data(*a, **k):
        raise AssertionError("the data was read before the flags were checked")
    monkeypatch.setattr(script, "load_cifar10", no_data)
    with pytest.raises(SystemExit) as stop:
        script.main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in err


def test_paths_are_checked_before_any_data_is_read(script, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(script, "load_cifar10", lambda *a, **k: pytest.fail("data was read"))
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    for argv, message in ((["--out", str(a_file)], "is a file; expected a run folder"),
                          (["--data-dir", str(tmp_path / "missing")], "no such file or folder")):
        with pytest.raises(SystemExit) as stop:
            script.main(argv)
        assert stop.value.code == 2 and message in capsys.readouterr().err


def test_good_flags_parse(script, tmp_path):
    args = script.parse_args(["--epochs", "3", "--lr", "0.5", "--label-smoothing", "0",
                              "--translate", "0", "--seed", "0", "--out", str(tmp_path / "new"),
                              "--limit-train", "600", "--val-size", "100", "--batch-size", "500"])
    assert (args.epochs, args.lr, args.label_smoothing, args.translate) == (3, 0.5, 0.0, 0)


def test_an_out_folder_that_cannot_be_written_fails_before_any_data_is_read(script, monkeypatch,
                                                                            capsys, tmp_path):
    """As root every folder is writable, so a refused write is played by the probe file."""
    monkeypatch.setattr(script, "load_cifar10", lambda *a, **k: pytest.fail("data was read"))
    real_write = script.Path.write_bytes

    def read_only(path, data):
        if path.name == ".write-probe":
            raise PermissionError(13, "Permission denied")
        return real_write(path, data)
    monkeypatch.setattr(script.Path, "write_bytes", read_only)
    with pytest.raises(SystemExit) as stop:
        script.main(["--out", str(tmp_path / "run"), "--no-progress"])
    assert stop.value.code == 2
    assert "cannot write there (Permission denied)" in capsys.readouterr().err


def test_fast94_is_the_muon_recipe_and_fast94_sgd_the_sgd_one(script):
    """README's 94% command: fast94 trains with Muon (8 epochs at batch 2000, no lookahead);
    the airbench94 SGD recipe stays available as fast94_sgd."""
    muon, _ = script.make_config(script.parse_args(["--preset", "fast94"]))
    sgd, _ = script.make_config(script.parse_args(["--preset", "fast94_sgd"]))
    assert (muon["optimizer"], muon["epochs"], muon["batch_size"], muon["lookahead"]) == \
        ("muon", 8, 2000, False)
    assert (sgd["optimizer"], sgd["epochs"], sgd["batch_size"], sgd["lookahead"]) == \
        ("sgd", 10, 1024, True)
    assert muon["widths"] == sgd["widths"] == [64, 256, 256]
    assert "fast94_muon" not in script.PRESETS


def test_reading_the_flags_does_not_depend_on_runs_in_the_working_folder(script, tmp_path,
                                                                         monkeypatch):
    """A run left in runs/ (the README's main command writes runs/fast94-seed0) does not
    change what the flags mean; only starting a new run there is refused."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "fast94-seed0").mkdir(parents=True)
    (tmp_path / "runs" / "fast94-seed0" / "checkpoint.npz").write_bytes(b"not read")
    args = script.parse_args(["--preset", "fast94"])
    config, out = script.make_config(args)
    assert config["optimizer"] == "muon" and str(out) == "runs/fast94-seed0"
    with pytest.raises(SystemExit, match="runs/fast94-seed0 already holds a run"):
        script.refuse_to_overwrite(args, out)
    script.refuse_to_overwrite(script.parse_args(["--preset", "fast94", "--overwrite"]), out)
    script.refuse_to_overwrite(args, tmp_path / "elsewhere")               # a free folder
