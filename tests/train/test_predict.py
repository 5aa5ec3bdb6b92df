import numpy as np
import pytest

from minicnn.zoo import airbench
from minicnn.predict import main
from minicnn.train import save_json


@pytest.fixture
def run_dir(tmp_path):
    model = airbench((4, 8, 8), rng=0)
    model.save(tmp_path / "model.npz")
    save_json({"model": "airbench", "widths": [4, 8, 8], "mean": [0.5, 0.5, 0.5],
               "std": [0.25, 0.25, 0.25], "class_names": [f"c{i}" for i in range(10)]},
              tmp_path / "config.json")
    return tmp_path


def test_predict_prints_top3_for_png_and_jpeg(run_dir, tmp_path, capsys):
    from PIL import Image
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).convert("L").save(tmp_path / "b.jpg")
    lines = main(["--run", str(run_dir), str(tmp_path / "a.png"), str(tmp_path / "b.jpg")])
    assert len(lines) == 2
    for line in lines:
        parts = line.split(": ", 1)[1].split(", ")
        assert len(parts) == 3
        probs = [float(p.split()[1].rstrip("%")) for p in parts]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 100.01
    assert capsys.readouterr().out.count("c") >= 6


def test_predict_errors_are_clear(run_dir, tmp_path):
    (tmp_path / "notimage.png").write_bytes(b"hello")
    with pytest.raises(SystemExit, match="not a readable PNG/JPEG image"):
        main(["--run", str(run_dir), str(tmp_path / "notimage.png")])
    with pytest.raises(SystemExit, match="image not found"):
        main(["--run", str(run_dir), str(tmp_path / "missing.png")])
    with pytest.raises(SystemExit, match="expected a finished run directory"):
        main(["--run", str(tmp_path / "nowhere"), str(tmp_path / "notimage.png")])


def test_the_command_exits_zero_and_prints_only_the_predictions(run_dir, tmp_path):
    import subprocess
    import sys
    from PIL import Image
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "black.png")
    done = subprocess.run([sys.executable, "-m", "minicnn.predict", "--run", str(run_dir),
                           str(tmp_path / "black.png")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(str(tmp_path / "black.png") + ": ") and "[" not in done.stderr
