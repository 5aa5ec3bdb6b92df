"""minicnn.predict: reading images of every kind, checking a run directory, the
arguments of its functions and the flags of the minicnn-predict command.
(tests/fuzz/test_fuzz_predict.py feeds the image reader damaged and random files.)"""
import io
import json
import os
import struct
import subprocess
import sys
import threading
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from minicnn.predict import (MAX_PIXELS, ImageError, RunError, classify, image_to_rgb,
                             load_run, main, predict, read_image, read_images)
from minicnn.train import save_json
from minicnn.zoo import airbench

CLASS_NAMES = [f"c{i}" for i in range(10)]
CONFIG = {"model": "airbench", "widths": [4, 8, 8], "mean": [0.5, 0.5, 0.5],
          "std": [0.25, 0.25, 0.25], "class_names": CLASS_NAMES}


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    airbench((4, 8, 8), rng=0).save(run / "model.npz")
    save_json(CONFIG, run / "config.json")
    return run


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "image.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(path)
    return path


def saved(im, path, **options):
    im.save(path, **options)
    return path


def uniform(x):
    """The single colour of a uniform (32, 32, 3) result."""
    assert x.shape == (32, 32, 3) and x.dtype == np.uint8
    assert (x == x[0, 0]).all(), "expected one colour everywhere"
    return tuple(int(c) for c in x[0, 0])


def close(colour, want, tolerance=1):
    return max(abs(a - b) for a, b in zip(colour, want)) <= tolerance


# -- the command: output and exit status ---------------------------------------------
def test_predict_prints_top3_for_png_and_jpeg(run_dir, tmp_path, capsys):
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
    out = capsys.readouterr()
    assert out.out == "\n".join(lines) + "\n" and out.err == ""


def test_the_command_exits_zero_and_prints_only_the_predictions(run_dir, tmp_path):
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "black.png")
    done = subprocess.run([sys.executable, "-m", "minicnn.predict", "--run", str(run_dir),
                           "--top", "2", str(tmp_path / "black.png")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(str(tmp_path / "black.png") + ": ")
    assert len(lines[0].split(": ", 1)[1].split(", ")) == 2


def test_the_command_exits_1_for_an_unusable_file_and_2_for_a_bad_flag(run_dir, tmp_path):
    (tmp_path / "text.png").write_bytes(b"hello")
    command = [sys.executable, "-m", "minicnn.predict", "--run", str(run_dir)]
    damaged = subprocess.run(command + [str(tmp_path / "text.png")],
                             capture_output=True, text=True, timeout=300)
    bad_flag = subprocess.run(command + ["--top", "0", str(tmp_path / "text.png")],
                              capture_output=True, text=True, timeout=300)
    assert damaged.returncode == 1 and damaged.stdout == ""
    assert damaged.stderr.strip().count("\n") == 0 and str(tmp_path / "text.png") in damaged.stderr
    assert bad_flag.returncode == 2 and bad_flag.stdout == ""
    assert bad_flag.stderr.strip().count("\n") == 0 and "--top" in bad_flag.stderr
    assert "Traceback" not in damaged.stderr + bad_flag.stderr


# -- the command: every flag checked --------------------------------------------------
def flag_error(capsys, argv):
    """The one line main(argv) prints before exiting with status 2."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    assert err.endswith("\n") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("value", ["0", "-1", "nan", "2.5", "three", "1001", "10**9", ""])
def test_top_must_be_a_whole_number_within_the_classes(run_dir, image, capsys, value):
    err = flag_error(capsys, ["--run", str(run_dir), "--top", value, str(image)])
    assert "--top" in err and "whole number from 1 to" in err and repr(value) in err


def test_top_larger_than_the_run_s_classes(run_dir, image, capsys):
    err = flag_error(capsys, ["--run", str(run_dir), "--top", "11", str(image)])
    assert "--top" in err and "from 1 to 10" in err and "got 11" in err


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "1.5", "4097", "1000000000"])
def test_batch_size_must_be_a_whole_number_in_range(run_dir, image, capsys, value):
    err = flag_error(capsys, ["--run", str(run_dir), "--batch-size", value, str(image)])
    assert "--batch-size" in err and "from 1 to 4096" in err and repr(value) in err


def test_batch_size_flag_is_used(run_dir, tmp_path, capsys):
    paths = [str(saved(Image.new("RGB", (8, 8), (40 * i, 0, 0)), tmp_path / f"{i}.png"))
             for i in range(5)]
    assert main(["--run", str(run_dir), "--batch-size", "2", *paths]) == \
        main(["--run", str(run_dir), "--batch-size", "7", *paths])


def test_run_must_be_a_finished_run_folder(run_dir, image, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    for run, what in [(tmp_path / "nowhere", "not found"), (image, "a file"),
                      (empty, "its config.json is not found"), ("", "got ''")]:
        err = flag_error(capsys, ["--run", str(run), str(image)])
        assert "--run" in err and "run folder" in err and what in err and repr(str(run)) in err
    (run_dir / "model.npz").unlink()
    (run_dir / "model.npz").mkdir()
    err = flag_error(capsys, ["--run", str(run_dir), str(image)])
    assert "model.npz is a folder" in err
    err = flag_error(capsys, [str(image)])
    assert "--run" in err and "required" in err


def test_each_image_must_be_a_file(run_dir, image, tmp_path, capsys):
    os.mkfifo(tmp_path / "pipe.png")
    for path, what in [(tmp_path / "missing.png", "not found"), (tmp_path, "a folder"),
                       (tmp_path / "pipe.png", "a named pipe (FIFO)"), ("/dev/null", "a device")]:
        err = flag_error(capsys, ["--run", str(run_dir), str(image), str(path)])
        assert "IMAGE" in err and "expected an image file" in err and what in err
        assert repr(str(path)) in err
    err = flag_error(capsys, ["--run", str(run_dir)])
    assert "IMAGE" in err and "required" in err


def test_an_unusable_file_ends_the_command_with_one_line_naming_it(run_dir, tmp_path):
    (tmp_path / "notimage.png").write_bytes(b"hello")
    with pytest.raises(SystemExit, match=r"^minicnn-predict: error: .*notimage\.png: not an image"):
        main(["--run", str(run_dir), str(tmp_path / "notimage.png")])
    (run_dir / "config.json").write_text("{not json")
    with pytest.raises(SystemExit, match=r"config\.json: not valid JSON"):
        main(["--run", str(run_dir), str(tmp_path / "notimage.png")])


# -- reading images: every mode and depth ----------------------------------------------
def test_16_bit_png_is_scaled_by_257(tmp_path):
    values = np.zeros((64, 64), np.uint16)
    values[:, 32:] = 65535
    path = saved(Image.fromarray(values), tmp_path / "grey16.png")
    with Image.open(path) as im:
        assert im.mode == "I;16"
    x = read_image(path)
    assert (x[:, :12] == 0).all() and (x[:, -12:] == 255).all()
    middle = saved(Image.fromarray(np.full((9, 9), 32896, np.uint16)), tmp_path / "mid.png")
    assert uniform(read_image(middle)) == (128, 128, 128)


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_16_bit_tiff_of_either_byte_order(tmp_path, mode):
    dtype = ">u2" if mode == "I;16B" else "<u2"
    raw = np.full((6, 5), 257 * 100, dtype).tobytes()
    path = saved(Image.frombytes(mode, (5, 6), raw), tmp_path / "grey16.tif")
    with Image.open(path) as im:
        assert im.mode == mode
    assert uniform(read_image(path)) == (100, 100, 100)


def test_32_bit_integer_image_is_read_as_16_bit_and_negative_values_refused(tmp_path):
    path = saved(Image.fromarray(np.full((4, 4), 65535, np.int32)), tmp_path / "int.tif")
    with Image.open(path) as im:
        assert im.mode == "I"
    assert uniform(read_image(path)) == (255, 255, 255)
    values = np.full((4, 4), 1000, np.int32)
    values[0, 0] = -3
    bad = saved(Image.fromarray(values), tmp_path / "negative.tif")
    with pytest.raises(ImageError, match=r"negative\.tif: 'I' image with values from -3 to 1000"):
        read_image(bad)


def test_float_tiff_in_0_1_is_scaled_by_255_and_in_0_255_used_as_is(tmp_path):
    half = saved(Image.fromarray(np.full((8, 8), 0.5, np.float32)), tmp_path / "half.tif")
    with Image.open(half) as im:
        assert im.mode == "F"
    assert uniform(read_image(half)) == (128, 128, 128)
    one = saved(Image.fromarray(np.full((8, 8), 1.0, np.float32)), tmp_path / "one.tif")
    assert uniform(read_image(one)) == (255, 255, 255)
    grey = saved(Image.fromarray(np.full((8, 8), 200.0, np.float32)), tmp_path / "200.tif")
    assert uniform(read_image(grey)) == (200, 200, 200)


@pytest.mark.parametrize("bad, message", [(300.0, "values from 0 to 300"),
                                          (-0.5, "values from -0.5 to 0"),
                                          (np.nan, "NaN or infinite"), (np.inf, "NaN or infinite")])
def test_float_tiff_outside_the_rules_is_refused(tmp_path, bad, message):
    values = np.zeros((8, 8), np.float32)
    values[3, 3] = bad
    path = saved(Image.fromarray(values), tmp_path / "float.tif")
    with pytest.raises(ImageError, match=rf"^{path}: float image .*{message}"):
        read_image(path)


def test_exif_orientation_is_applied(tmp_path):
    """A landscape picture stored left red, right blue, tagged "rotate 90 degrees
    clockwise to display" (orientation 6, a phone held upright): red must end on top."""
    stored = np.zeros((40, 80, 3), np.uint8)
    stored[:, :40] = (255, 0, 0)
    stored[:, 40:] = (0, 0, 255)
    for fmt, suffix in [("JPEG", "jpg"), ("PNG", "png"), ("TIFF", "tif")]:
        exif = Image.Exif()
        exif[0x0112] = 6
        path = saved(Image.fromarray(stored), tmp_path / f"phone.{suffix}", format=fmt, exif=exif)
        x = read_image(path).astype(int)
        assert close(x[:10].reshape(-1, 3).mean(0), (255, 0, 0), 8), fmt
        assert close(x[-10:].reshape(-1, 3).mean(0), (0, 0, 255), 8), fmt
    exif = Image.Exif()
    exif[0x0112] = 3                                   # upside down
    path = saved(Image.fromarray(stored), tmp_path / "upside-down.png", exif=exif)
    x = read_image(path)
    assert (x[:, :12] == (0, 0, 255)).all() and (x[:, -12:] == (255, 0, 0)).all()


def test_palette_png_with_and_without_a_transparent_entry(tmp_path):
    indices = np.zeros((16, 32), np.uint8)
    indices[:, 16:] = 1
    im = Image.fromarray(indices, mode="L").convert("P")
    im.putpalette([255, 0, 0, 0, 200, 0] + [0] * 762)
    x = read_image(saved(im, tmp_path / "palette.png"))
    assert (x[:, :12] == (255, 0, 0)).all() and (x[:, -12:] == (0, 200, 0)).all()
    path = saved(im, tmp_path / "transparent.png", transparency=0)
    with Image.open(path) as opened:
        assert opened.mode == "P" and opened.info["transparency"] == 0
    x = read_image(path)
    assert (x[:, :12] == 255).all() and (x[:, -12:] == (0, 200, 0)).all()


def test_alpha_is_composited_on_white(tmp_path):
    assert uniform(read_image(saved(Image.new("RGBA", (9, 9), (255, 0, 0, 0)), tmp_path / "a.png"))) \
        == (255, 255, 255)
    assert close(uniform(read_image(saved(Image.new("RGBA", (9, 9), (255, 0, 0, 128)),
                                          tmp_path / "b.png"))), (255, 127, 127))
    assert uniform(read_image(saved(Image.new("RGBA", (9, 9), (10, 20, 30, 255)),
                                    tmp_path / "c.png"))) == (10, 20, 30)
    assert close(uniform(read_image(saved(Image.new("LA", (9, 9), (0, 64)), tmp_path / "d.png"))),
                 (191, 191, 191))
    rgb = Image.new("RGB", (9, 9), (1, 2, 3))                       # a transparent colour (tRNS)
    assert uniform(read_image(saved(rgb, tmp_path / "e.png", transparency=(1, 2, 3)))) == (255, 255, 255)
    grey16 = Image.fromarray(np.full((9, 9), 4000, np.uint16))
    assert uniform(read_image(saved(grey16, tmp_path / "f.png", transparency=4000))) == (255, 255, 255)


def test_cmyk_jpeg_and_other_colour_spaces(tmp_path):
    red = saved(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), tmp_path / "red.jpg")
    with Image.open(red) as im:
        assert im.mode == "CMYK"
    assert close(uniform(read_image(red)), (255, 0, 0), 3)
    white = saved(Image.new("CMYK", (16, 16), (0, 0, 0, 0)), tmp_path / "white.jpg")
    assert close(uniform(read_image(white)), (255, 255, 255), 3)
    assert close(uniform(read_image(saved(Image.new("YCbCr", (8, 8), (76, 85, 255)),
                                          tmp_path / "ycbcr.tif"))), (254, 0, 0), 2)
    assert close(uniform(read_image(saved(Image.new("LAB", (8, 8), (255, 128, 128)),
                                          tmp_path / "lab.tif"))), (255, 255, 255), 2)
    assert uniform(read_image(saved(Image.new("1", (8, 8), 1), tmp_path / "bits.bmp"))) == (255, 255, 255)
    assert uniform(read_image(saved(Image.new("L", (8, 8), 77), tmp_path / "grey.gif"))) == (77, 77, 77)


def test_every_pillow_mode_converts_to_8_bit_rgb():
    for mode in sorted(Image.MODES):
        im = Image.new(mode, (3, 2))
        rgb = image_to_rgb(im, "new image")
        assert rgb.mode == "RGB" and rgb.size == (3, 2), mode
    hsv = Image.new("HSV", (2, 2), (0, 255, 255))
    assert image_to_rgb(hsv).getpixel((0, 0)) == (255, 0, 0)
    la = Image.new("La", (2, 2), (50, 128))                          # premultiplied: 50 + (255 - 128)
    assert close(image_to_rgb(la).getpixel((0, 0)), (177, 177, 177))


def test_a_gif_is_read_from_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), colour).convert("P") for colour in ((255, 0, 0), (0, 0, 255))]
    path = saved(frames[0], tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert uniform(read_image(path)) == (255, 0, 0)


# -- reading images: bounds and refusals -------------------------------------------------
def png_declaring(width, height):
    """A PNG file whose header declares width x height 8-bit grey pixels, followed by
    one tiny compressed row (not enough data for the size it declares)."""
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + \
            struct.pack(">I", zlib.crc32(kind + payload))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 9)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("width, height", [(8000, 8000), (10000, 10000), (100000, 100000), (1, 60000000)])
def test_an_enormous_declared_size_is_refused_before_decoding(tmp_path, monkeypatch, width, height):
    """Above MAX_PIXELS (50 M), including sizes where Pillow warns (above 89 M pixels)
    or refuses itself (above 179 M): one ImageError naming the file, its declared size
    and the bound, and not a pixel decoded."""
    path = tmp_path / "huge.png"
    path.write_bytes(png_declaring(width, height))
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda im: pytest.fail("decoding started"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(ImageError) as refused:
            read_image(path)
    message = str(refused.value)
    assert message.startswith(str(path)) and f"{MAX_PIXELS:,}" in message
    assert f"{width * height:,}" in message or f"{width * height}" in message


def test_max_pixels_is_the_bound(tmp_path):
    path = saved(Image.new("RGB", (10, 10)), tmp_path / "ten.png")
    assert read_image(path, max_pixels=100).shape == (32, 32, 3)
    with pytest.raises(ImageError, match=r"declares 10 x 10 = 100 pixels; this reader accepts 1 to 99"):
        read_image(path, max_pixels=99)


def test_truncated_and_foreign_files_are_refused_naming_them(tmp_path):
    data = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(data, "PNG", compress_level=0)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(data.getvalue()[:2000])
    with pytest.raises(ImageError, match=rf"^{truncated}: damaged or unreadable image file"):
        read_image(truncated)
    eps = tmp_path / "drawing.png"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")
    with pytest.raises(ImageError, match=rf"^{eps}: not an image in a format this reader accepts"):
        read_image(eps)


def read_within(seconds, *args):
    """read_image(*args) in a thread: its ImageError, or a test failure if it blocks."""
    outcome = []

    def run():
        try:
            read_image(*args)
        except ImageError as e:
            outcome.append(e)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "read_image blocked"
    assert outcome, "read_image did not refuse"
    return str(outcome[0])


def test_non_regular_files_are_refused_without_opening_them(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    message = read_within(20, tmp_path / "pipe.png")
    assert message == f"{tmp_path / 'pipe.png'}: a named pipe (FIFO); expected an image file"
    assert "a folder" in read_within(20, tmp_path)
    assert "/dev/zero: a device" in read_within(20, "/dev/zero")
    assert "missing.png: not found" in read_within(20, tmp_path / "missing.png")


# -- the run directory ----------------------------------------------------------------
def test_load_run_gives_the_model_and_its_config(run_dir):
    model, config = load_run(run_dir)
    assert config == CONFIG and model.predict(np.zeros((1, 32, 32, 3), np.float32)).shape == (1, 10)


@pytest.mark.parametrize("key, value, message", [
    ("std", [0.25, 0.0, 0.25], '"std" must be 3 finite numbers greater than 0'),
    ("std", [0.25, -0.1, 0.25], '"std" must be 3 finite numbers greater than 0'),
    ("std", [0.25, float("nan"), 0.25], '"std" must be 3 finite numbers greater than 0'),
    ("std", [0.25, float("inf"), 0.25], '"std" must be 3 finite numbers greater than 0'),
    ("std", [1e-50, 0.25, 0.25], '"std" must be 3 finite numbers greater than 0'),
    ("std", [0.25, 0.25], '"std" must be 3 finite numbers'),
    ("mean", [0.5, 0.5, 0.5, 0.5], '"mean" must be 3 finite numbers'),
    ("mean", [0.5, "0.5", 0.5], '"mean" must be 3 finite numbers'),
    ("mean", [0.5, float("-inf"), 0.5], '"mean" must be 3 finite numbers'),
    ("mean", [0.5, 1e39, 0.5], '"mean" must be 3 finite numbers'),
    ("mean", None, '"mean" must be 3 finite numbers'),
    ("model", "resnet", '"model" must be "airbench" or "simple"'),
    ("widths", [4, 8], '"widths" must be 3 whole numbers from 1 to 1024'),
    ("widths", [4, 8, 10 ** 6], '"widths" must be 3 whole numbers from 1 to 1024'),
    ("class_names", [], '"class_names" must be a list of 1 to 1000 strings'),
    ("class_names", [1, 2], '"class_names" must be a list of 1 to 1000 strings'),
])
def test_unusable_config_values_are_refused_naming_file_and_value(run_dir, key, value, message):
    config = dict(CONFIG, **{key: value})
    (run_dir / "config.json").write_text(json.dumps(config))     # NaN and Infinity as JSON allows
    with pytest.raises(RunError) as refused:
        load_run(run_dir)
    text = str(refused.value)
    assert text.startswith(str(run_dir / "config.json")) and message in text
    assert repr(value)[:20] in text


@pytest.mark.parametrize("text, message", [
    ("{\"model\": ", "not valid JSON"), ("", "not valid JSON"), ("[1, 2]", "expected a JSON object"),
    ("[" * 100000, "not valid JSON"), ('{"model": 1' + "0" * 5000 + "}", "not valid JSON"),
])
def test_a_corrupt_config_json_is_refused_naming_it(run_dir, text, message):
    (run_dir / "config.json").write_text(text)
    with pytest.raises(RunError, match=rf"^{run_dir / 'config.json'}: {message}"):
        load_run(run_dir)
    (run_dir / "config.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(RunError, match=r"config\.json: not UTF-8"):
        load_run(run_dir)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_refused_naming_the_array(run_dir, bad):
    model = airbench((4, 8, 8), rng=0)
    name, array = list(model.named_arrays())[3]
    array.flat[2] = bad
    model.save(run_dir / "model.npz")
    with pytest.raises(RunError, match=rf"^{run_dir / 'model.npz'}: array '{name}' holds 1 non-finite"):
        load_run(run_dir)


def test_a_negative_batchnorm_running_variance_is_refused(run_dir):
    model = airbench((4, 8, 8), rng=0)
    name, array = next((n, a) for n, a in model.named_arrays() if n.endswith("running_var"))
    array[0] = -1
    model.save(run_dir / "model.npz")
    with pytest.raises(RunError, match=rf"array '{name}' \(a BatchNorm running variance\)"):
        load_run(run_dir)


def test_damaged_or_foreign_weights_are_refused_naming_the_file(run_dir):
    weights = run_dir / "model.npz"
    data = weights.read_bytes()
    middle = len(data) // 2
    damaged = {
        "truncated": data[:middle],
        "bit-flipped": data[:middle] + bytes([data[middle] ^ 0x10]) + data[middle + 1:],
        "not a zip": b"hello",
        "empty": b"",
    }
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(3))
    damaged["a .npy array"] = buffer.getvalue()
    buffer = io.BytesIO()
    np.savez(buffer, other=np.zeros(3))
    damaged["other arrays"] = buffer.getvalue()
    for what, content in damaged.items():
        weights.write_bytes(content)
        with pytest.raises(RunError) as refused:
            load_run(run_dir)
        assert str(refused.value).startswith(str(weights)), what


def test_weights_of_another_architecture_are_refused(run_dir):
    airbench((4, 8, 16), rng=0).save(run_dir / "model.npz")
    with pytest.raises(RunError, match=r"model\.npz: cannot be used as the weights of the model "
                                       r".*config\.json \(airbench, widths \[4, 8, 8\], 10 classes\)"):
        load_run(run_dir)


@pytest.mark.parametrize("name", ["config.json", "model.npz"])
def test_a_run_file_that_is_a_pipe_or_folder_is_refused_at_once(run_dir, name):
    (run_dir / name).unlink()
    os.mkfifo(run_dir / name)
    with pytest.raises(RunError, match=rf"{name}: a named pipe \(FIFO\)"):
        load_run(run_dir)
    (run_dir / name).unlink()
    (run_dir / name).mkdir()
    with pytest.raises(RunError, match=rf"{name}: a folder"):
        load_run(run_dir)


# -- arguments of the functions ---------------------------------------------------------
@pytest.mark.parametrize("batch_size", [0, -1, 1.5, True, "8", None, 4097])
def test_predict_checks_batch_size(run_dir, image, batch_size):
    with pytest.raises(ValueError, match=r"predict: batch_size must be a whole number from 1 to 4096"):
        predict([image], run_dir, batch_size=batch_size)


@pytest.mark.parametrize("top", [0, -3, 2.0, 11])
def test_predict_checks_top(run_dir, image, top):
    with pytest.raises(ValueError, match=r"predict: top must be a whole number from 1 to"):
        predict([image], run_dir, top=top)


@pytest.mark.parametrize("paths", [[], (), "image.png", None, [None], [""]])
def test_predict_checks_the_image_list(run_dir, paths):
    with pytest.raises(ValueError, match=r"predict: image_paths"):
        predict(paths, run_dir)


def test_predict_returns_top_classes_per_image(run_dir, image):
    rows = predict([image, str(image)], run_dir, top=4, batch_size=1)
    assert len(rows) == 2 and rows[0] == rows[1] and len(rows[0]) == 4
    probs = [p for _, p in rows[0]]
    assert probs == sorted(probs, reverse=True) and all(name in CLASS_NAMES for name, _ in rows[0])


def test_the_reading_functions_check_their_arguments(image):
    with pytest.raises(ValueError, match=r"read_images: paths must be a non-empty list"):
        read_images([])
    with pytest.raises(ValueError, match=r"read_image: size must be a whole number from 1"):
        read_image(image, size=0)
    with pytest.raises(ValueError, match=r"read_image: max_pixels must be a whole number"):
        read_image(image, max_pixels=-1)
    with pytest.raises(ValueError, match=r"read_image: path must be a file path"):
        read_image(3)
    with pytest.raises(ValueError, match=r"load_run: run_dir must be a file path"):
        load_run(None)


def test_classify_checks_its_arguments(run_dir):
    model, config = load_run(run_dir)
    images = np.zeros((2, 32, 32, 3), np.uint8)
    for bad in [images.astype(np.float32), images[:0], images[:, :16], [[0]]]:
        with pytest.raises(ValueError, match=r"classify: images must be a uint8 array"):
            classify(model, config, bad)
    with pytest.raises(ValueError, match=r"classify: k must be a whole number from 1 to 10, got 11"):
        classify(model, config, images, k=11)
    with pytest.raises(ValueError, match=r"classify: batch_size must be a whole number"):
        classify(model, config, images, batch_size=0)
    with pytest.raises(RunError, match=r'"std" must be'):
        classify(model, dict(config, std=[0, 1, 1]), images)
    with pytest.raises(RunError, match=r"overflows float32"):
        classify(model, dict(config, std=[1e-44, 1, 1]), images)


def test_an_oversized_config_json_is_refused_unread(run_dir):
    (run_dir / "config.json").write_text(json.dumps(dict(CONFIG, padding="x" * 2_000_000)))
    with pytest.raises(RunError, match=r"config\.json: more than 1,000,000 bytes"):
        load_run(run_dir)
