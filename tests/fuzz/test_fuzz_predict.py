"""Fuzzing what minicnn.predict reads: image files (``read_image``, ``image_to_rgb``)
and a run directory's config.json and model.npz (``load_run``).

Every image must give a (32, 32, 3) uint8 array, or raise ImageError (a ValueError)
whose message starts with the file's path: never another exception, a hang or an
unbounded allocation. Inputs: small PNG, JPEG, TIFF, BMP, GIF, WebP and PPM files
made in memory with Pillow, then truncated, bit-flipped or given an enormous declared
size; random bytes behind each format's signature; valid images of every mode.
A damaged config.json or model.npz must load or raise RunError naming the file.

Deterministic (derandomize=True) and fast by default: MINICNN_FUZZ_EXAMPLES examples
per target (60 unless set). A long run:

    MINICNN_FUZZ_EXAMPLES=2000 python -m pytest -q tests/fuzz/test_fuzz_predict.py

The number of cases each target ran (and how many were refused) is printed at the end.
"""
import collections
import contextlib
import io
import json
import os
import resource
import signal
import struct
import threading
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from minicnn.predict import ImageError, RunError, image_to_rgb, load_run, read_image
from minicnn.zoo import airbench

EXAMPLES = int(os.environ.get("MINICNN_FUZZ_EXAMPLES", "60"))
FUZZ = settings(derandomize=True, max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
BOUND = 1 << 20            # max_pixels while fuzzing: an accepted damaged header stays cheap
SECONDS_PER_CASE = 20      # a read that takes longer counts as a hang
CASES = collections.Counter()


# -- starting points ----------------------------------------------------------------
def encode(im, fmt, **options):
    buffer = io.BytesIO()
    im.save(buffer, fmt, **options)
    return buffer.getvalue()


def orientation(value):
    exif = Image.Exif()
    exif[0x0112] = value
    return exif


def starting_points():
    """{name: (file bytes, extension)}: small valid files of several formats and modes."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (17, 24, 3), dtype=np.uint8))
    grey16 = Image.fromarray(rng.integers(0, 65536, (17, 24), dtype=np.uint16))
    floats = Image.fromarray(rng.random((17, 24), dtype=np.float32))
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    second_frame = Image.fromarray(rng.integers(0, 256, (17, 24, 3), dtype=np.uint8)).convert("P")
    points = {
        "png": (encode(rgb, "PNG"), "png"),
        "png-exif": (encode(rgb.convert("RGBA"), "PNG", exif=orientation(6)), "png"),
        "png-palette": (encode(palette, "PNG", transparency=3), "png"),
        "png-16bit": (encode(grey16, "PNG"), "png"),
        "jpeg": (encode(rgb, "JPEG", exif=orientation(8)), "jpg"),
        "jpeg-cmyk": (encode(rgb.convert("CMYK"), "JPEG"), "jpg"),
        "jpeg-progressive": (encode(rgb.convert("L"), "JPEG", progressive=True), "jpg"),
        "tiff-float": (encode(floats, "TIFF"), "tif"),
        "tiff-16bit-deflate": (encode(grey16, "TIFF", compression="tiff_adobe_deflate"), "tif"),
        "tiff-lzw": (encode(rgb, "TIFF", compression="tiff_lzw"), "tif"),
        "bmp": (encode(rgb, "BMP"), "bmp"),
        "bmp-palette-rle": (encode(palette, "BMP"), "bmp"),
        "gif": (encode(palette, "GIF", transparency=0, save_all=True,
                       append_images=[second_frame]), "gif"),
        "ppm": (encode(rgb, "PPM"), "ppm"),
    }
    if "WEBP" in Image.SAVE:
        points["webp"] = (encode(rgb.convert("RGBA"), "WEBP", exif=orientation(3)), "webp")
    return points


STARTING_POINTS = starting_points()
SIGNATURES = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xc0", b"II*\x00",
              b"MM\x00*", b"BM", b"GIF89a", b"GIF87a", b"RIFF\x00\x00\x00\x00WEBPVP8 ",
              b"P6\n", b"P5\n", b"P4\n", b""]


# -- the checks -----------------------------------------------------------------------
class Hang(BaseException):
    """A read that did not finish within SECONDS_PER_CASE (a BaseException, so no
    `except Exception` in the code under test can swallow it)."""


@contextlib.contextmanager
def time_limit(seconds):
    """Raise Hang in the main thread after ``seconds`` (POSIX only; elsewhere no limit)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise Hang(f"the read took more than {seconds} s")
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def read_or_refuse(target, path, data, max_pixels=BOUND):
    """Write ``data`` to ``path`` and read it: the (32, 32, 3) uint8 array, or None if
    it was refused with an ImageError whose message starts with the path. Any other
    exception fails the test (hypothesis then shrinks the input and shows it)."""
    path.write_bytes(data)
    CASES[target] += 1
    try:
        with time_limit(SECONDS_PER_CASE):
            x = read_image(path, max_pixels=max_pixels)
    except ImageError as e:
        assert str(e).startswith(str(path)), f"the message does not start with the file: {e}"
        CASES[target + " refused"] += 1
        return None
    assert isinstance(x, np.ndarray) and x.shape == (32, 32, 3) and x.dtype == np.uint8
    return x


def peak_memory_mb():
    """The process's peak resident memory so far, in MB (Linux reports kB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20 if os.uname().sysname == "Darwin" else 1 << 10)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz predict")


@pytest.fixture(scope="module", autouse=True)
def report_case_counts(request):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        counts = ", ".join(f"{name} {n}" for name, n in sorted(CASES.items()))
        with capture.global_and_fixture_disabled():     # shown even though output is captured
            reporter.write_line(f"\nfuzz cases run (MINICNN_FUZZ_EXAMPLES={EXAMPLES}): {counts}")


def assert_ran(target):
    assert CASES[target] >= EXAMPLES // 2, f"{target}: only {CASES[target]} cases ran"


def damage_positions(data, positions):
    return [p % len(data) for p in positions]


# -- damaged files --------------------------------------------------------------------
def test_truncated_files_are_read_or_refused(workdir):
    @FUZZ
    @given(name=st.sampled_from(sorted(STARTING_POINTS)), keep=st.floats(0, 1, exclude_max=True))
    def run(name, keep):
        data, ext = STARTING_POINTS[name]
        read_or_refuse("truncated", workdir / f"truncated {name}.{ext}", data[:int(keep * len(data))])
    run()
    assert_ran("truncated")


def test_bit_flipped_files_are_read_or_refused(workdir):
    flips = st.lists(st.tuples(st.integers(0, 1 << 30), st.integers(0, 7)), min_size=1, max_size=8)

    @FUZZ
    @given(name=st.sampled_from(sorted(STARTING_POINTS)), flips=flips,
           overwrite=st.lists(st.tuples(st.integers(0, 1 << 30), st.integers(0, 255)), max_size=4))
    def run(name, flips, overwrite):
        data, ext = STARTING_POINTS[name]
        damaged = bytearray(data)
        for position, bit in flips:
            damaged[position % len(damaged)] ^= 1 << bit
        for position, value in overwrite:
            damaged[position % len(damaged)] = value
        read_or_refuse("bit-flipped", workdir / f"flipped {name}.{ext}", bytes(damaged))
    run()
    assert_ran("bit-flipped")


def test_random_bytes_behind_a_signature_are_refused_or_read(workdir):
    @FUZZ
    @given(signature=st.sampled_from(SIGNATURES), rest=st.binary(max_size=4096))
    def run(signature, rest):
        read_or_refuse("random bytes", workdir / "random.img", signature + rest)
    run()
    assert_ran("random bytes")


# -- enormous declared sizes ------------------------------------------------------------
def png_chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def declare_size(name, data, width, height):
    """``data`` with its header saying width x height (checksums kept valid), or None
    for a format this does not know how to patch."""
    out = bytearray(data)
    if name.startswith("png"):                  # IHDR right after the 8-byte signature
        ihdr = struct.pack(">II", width, height) + data[24:29]
        return data[:8] + png_chunk(b"IHDR", ihdr) + data[33:]
    if name.startswith("bmp"):
        out[18:26] = struct.pack("<ii", width, height)
    elif name.startswith("gif"):                # logical screen size
        out[6:10] = struct.pack("<HH", width & 0xFFFF, height & 0xFFFF)
    elif name.startswith("jpeg"):               # start-of-frame marker: height, width
        sof = max(data.find(b"\xff\xc0"), data.find(b"\xff\xc2"))
        out[sof + 5:sof + 9] = struct.pack(">HH", height & 0xFFFF, width & 0xFFFF)
    elif name == "ppm":
        return b"P6\n%d %d\n255\n" % (width, height) + data[data.index(b"255\n") + 4:]
    elif name.startswith("tiff"):               # ImageWidth (256) and ImageLength (257) as LONG
        ifd = struct.unpack("<I", data[4:8])[0]
        count = struct.unpack("<H", data[ifd:ifd + 2])[0]
        for i in range(count):
            entry = ifd + 2 + 12 * i
            tag = struct.unpack("<H", data[entry:entry + 2])[0]
            if tag in (256, 257):
                out[entry + 2:entry + 12] = struct.pack("<HII", 4, 1, width if tag == 256 else height)
    else:
        return None
    return bytes(out)


def test_enormous_declared_sizes_are_refused_before_decoding(workdir):
    """A header may claim any size: above the bound the file is refused (before any
    pixel is decoded, so memory stays flat); within it, read or refused as damaged."""
    sides = st.one_of(st.integers(1, 64), st.integers(1, 5000), st.integers(1, 65535),
                      st.integers(1, (1 << 31) - 1))
    patchable = sorted(n for n in STARTING_POINTS if not n.startswith("webp"))
    memory_before = peak_memory_mb()

    @FUZZ
    @given(name=st.sampled_from(patchable), width=sides, height=sides)
    def run(name, width, height):
        data, ext = STARTING_POINTS[name]
        if name.startswith(("gif", "jpeg")):
            width, height = min(width, 65535), min(height, 65535)
        x = read_or_refuse("oversized header", workdir / f"oversized {name}.{ext}",
                           declare_size(name, data, width, height))
        if width * height > BOUND:
            assert x is None, f"{name}: declared {width} x {height} pixels, above the bound, but read"
    run()
    assert_ran("oversized header")
    assert peak_memory_mb() - memory_before < 512


# -- valid images of every mode -----------------------------------------------------------
SAVABLE = {          # format -> (extension, modes Pillow writes in it)
    "PNG": ("png", ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"]),
    "TIFF": ("tif", ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr",
                     "LAB", "I;16", "I;16B", "I", "F"]),
    "BMP": ("bmp", ["1", "L", "P", "RGB"]),
    "GIF": ("gif", ["L", "P"]),
    "JPEG": ("jpg", ["L", "RGB", "CMYK"]),
    "PPM": ("ppm", ["1", "L", "RGB", "I"]),
}
if "WEBP" in Image.SAVE:
    SAVABLE["WEBP"] = ("webp", ["RGB", "RGBA"])
FORMAT_AND_MODE = [(fmt, mode) for fmt, (_, modes) in SAVABLE.items() for mode in modes]
EXIF_FORMATS = ("PNG", "JPEG", "TIFF", "WEBP")


def random_image(mode, width, height, rng, float_scale=1.0):
    """A valid image of ``mode`` with random pixels; "I" values in [0, 65535] and "F"
    values in [0, float_scale] (the ranges the reader accepts)."""
    if mode == "I":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.int32))
    if mode == "F":
        return Image.fromarray((rng.random((height, width)) * float_scale).astype(np.float32))
    im = Image.new(mode, (width, height))
    bytes_per_pixel = len(im.tobytes()) // (width * height) if mode != "1" else None
    size = (width + 7) // 8 * height if mode == "1" else bytes_per_pixel * width * height
    im.frombytes(rng.bytes(size))
    if mode in ("P", "PA"):
        im.putpalette(rng.integers(0, 256, 768, dtype=np.uint8).tobytes())
    return im


def test_valid_images_of_every_mode_and_format_are_read(workdir):
    @FUZZ
    @given(format_and_mode=st.sampled_from(FORMAT_AND_MODE), width=st.integers(1, 70),
           height=st.integers(1, 70), seed=st.integers(0, 2 ** 32 - 1),
           rotation=st.integers(1, 8), float_scale=st.sampled_from([1.0, 255.0]))
    def run(format_and_mode, width, height, seed, rotation, float_scale):
        fmt, mode = format_and_mode
        im = random_image(mode, width, height, np.random.default_rng(seed), float_scale)
        options = {"exif": orientation(rotation)} if fmt in EXIF_FORMATS else {}
        if fmt == "PNG" and mode == "P":
            options["transparency"] = seed % 256
        data = encode(im, fmt, **options)
        x = read_or_refuse("valid image", workdir / f"valid {mode}.{SAVABLE[fmt][0]}", data)
        assert x is not None, f"a valid {fmt} image of mode {mode} was refused"
    run()
    assert_ran("valid image")


def expected_colour(mode, value, palette=None, transparent=None):
    """The RGB colour a uniform image of ``mode`` and pixel ``value`` must become,
    written out from the rules in minicnn/predict.py's docstring (not from its code)."""
    def on_white(colour, alpha):
        return tuple(c * alpha / 255 + 255 * (1 - alpha / 255) for c in colour)
    if mode == "1":
        return (255.0,) * 3 if value else (0.0,) * 3
    if mode == "L":
        return (float(value),) * 3
    if mode == "LA":
        return on_white((value[0],) * 3, value[1])
    if mode in ("RGB", "RGBX"):
        return tuple(float(v) for v in value[:3])
    if mode == "RGBA":
        return on_white(value[:3], value[3])
    if mode in ("I;16", "I;16B", "I"):
        return (float(round(value / 257)),) * 3
    if mode == "F":
        return (float(round(value * 255 if value <= 1 else value)),) * 3
    if mode == "CMYK":
        c, m, y, k = value
        return tuple(255 * (1 - v / 255) * (1 - k / 255) for v in (c, m, y))
    if mode == "YCbCr":                         # the JPEG (JFIF) equations
        y, cb, cr = value
        rgb = (y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
               y + 1.772 * (cb - 128))
        return tuple(min(max(c, 0), 255) for c in rgb)
    if mode == "P":
        return (255.0,) * 3 if value == transparent else tuple(float(c) for c in palette[value])
    raise AssertionError(mode)


UNIFORM_CASES = [("PNG", m) for m in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16")] + \
                [("TIFF", m) for m in ("CMYK", "YCbCr", "I;16B", "I", "F", "RGBX")] + \
                [("BMP", "RGB"), ("PPM", "L"), ("GIF", "P")]


def test_uniform_images_come_out_in_the_documented_colour(workdir):
    @FUZZ
    @given(format_and_mode=st.sampled_from(UNIFORM_CASES), seed=st.integers(0, 2 ** 32 - 1),
           width=st.integers(1, 50), height=st.integers(1, 50))
    def run(format_and_mode, seed, width, height):
        fmt, mode = format_and_mode
        rng = np.random.default_rng(seed)
        palette, transparent = None, None
        if mode in ("I;16", "I;16B", "I"):
            value = int(rng.integers(0, 65536))
        elif mode == "F":
            value = float(rng.random() * (1 if seed % 2 else 255))
        elif mode == "1":
            value = int(rng.integers(0, 2))
        elif mode == "P":
            value = int(rng.integers(0, 4))
            palette = rng.integers(0, 256, (256, 3)).tolist()
            transparent = 2 if fmt == "PNG" else None
        else:
            bands = len(Image.new(mode, (1, 1)).getbands())
            value = tuple(int(v) for v in rng.integers(0, 256, bands))
            value = value[0] if bands == 1 else value
        im = Image.new(mode, (width, height), value)
        if mode == "I;16B":                     # Image.new cannot fill a big-endian image
            im = Image.frombytes(mode, (width, height), struct.pack(">H", value) * (width * height))
        if palette is not None:
            im.putpalette([c for colour in palette for c in colour])
        options = {"transparency": transparent} if transparent is not None else {}
        x = read_or_refuse("uniform colour", workdir / f"uniform {mode}.{fmt.lower()}",
                           encode(im, fmt, **options))
        assert x is not None, f"a uniform {mode} {fmt} image was refused"
        want = np.array(expected_colour(mode, value, palette, transparent))
        tolerance = 2 if mode in ("CMYK", "YCbCr") else 1
        assert np.abs(x.reshape(-1, 3) - want).max() <= tolerance, (mode, value, x[0, 0], want)
    run()
    assert_ran("uniform colour")


def test_every_pillow_mode_in_memory_is_converted_or_refused():
    """image_to_rgb on images of every mode Pillow has, with any values: "I" and "F"
    images outside the accepted ranges (negative, NaN, infinite, ...) must be refused."""
    special = [np.nan, np.inf, -np.inf, -1.0, 0.5, 1.0, 1.5, 255.0, 255.5, 1e30]

    @FUZZ
    @given(mode=st.sampled_from(sorted(Image.MODES)), width=st.integers(1, 40),
           height=st.integers(1, 40), seed=st.integers(0, 2 ** 32 - 1),
           special=st.sampled_from(special))
    def run(mode, width, height, seed, special):
        rng = np.random.default_rng(seed)
        if mode == "I":
            im = Image.fromarray(rng.integers(-70000, 70000, (height, width), dtype=np.int32)
                                 >> int(rng.integers(0, 18)))
        elif mode == "F":
            values = rng.random((height, width)).astype(np.float32) * rng.choice([1, 255])
            values.flat[int(rng.integers(0, values.size))] = special
            im = Image.fromarray(values)
        else:
            im = random_image(mode, width, height, rng)
        values = np.asarray(im)
        CASES["every mode in memory"] += 1
        try:
            rgb = image_to_rgb(im, "in-memory image")
        except ImageError as e:
            assert str(e).startswith("in-memory image"), e
            assert mode in ("I", "F"), f"mode {mode} refused: {e}"
            in_range = (values.min() >= 0 and values.max() <= 65535 if mode == "I" else
                        np.isfinite(values).all() and values.min() >= 0 and values.max() <= 255)
            assert not in_range, f"an {mode} image with values in the accepted range refused: {e}"
            CASES["every mode in memory refused"] += 1
            return
        assert rgb.mode == "RGB" and rgb.size == (width, height)
    run()
    assert_ran("every mode in memory")


# -- the run directory ------------------------------------------------------------------
CONFIG = {"model": "airbench", "widths": [4, 8, 8], "mean": [0.5, 0.5, 0.5],
          "std": [0.25, 0.25, 0.25], "class_names": [f"c{i}" for i in range(10)]}
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("fuzz run")
    airbench((4, 8, 8), rng=0).save(run / "model.npz")
    return run


def load_or_refuse(target, run_dir, damaged):
    """load_run on run_dir after writing ``damaged`` ({file name: bytes}): the model
    if it loaded, None if refused with a RunError naming a file of the run (a changed
    config.json may describe another model, and then model.npz does not fit it)."""
    for name, data in damaged.items():
        (run_dir / name).write_bytes(data)
    CASES[target] += 1
    try:
        with time_limit(SECONDS_PER_CASE):
            model, _ = load_run(run_dir)
    except RunError as e:
        assert str(e).startswith((str(run_dir / "config.json"), str(run_dir / "model.npz"))), e
        CASES[target + " refused"] += 1
        return None
    return model


def test_damaged_config_json_loads_or_is_refused(run_dir):
    text = json.dumps(CONFIG).encode()

    @FUZZ
    @given(key=st.sampled_from(sorted(CONFIG) + ["extra"]), value=JSON_VALUES,
           keep=st.floats(0, 1), flip=st.tuples(st.integers(0, 1 << 30), st.integers(0, 7)),
           damage=st.sampled_from(["value", "truncate", "flip"]))
    def run(key, value, keep, flip, damage):
        if damage == "value":
            data = json.dumps(dict(CONFIG, **{key: value})).encode()
        elif damage == "truncate":
            data = text[:int(keep * len(text))]
        else:
            data = bytearray(text)
            data[flip[0] % len(data)] ^= 1 << flip[1]
        model = load_or_refuse("config.json", run_dir, {"config.json": bytes(data)})
        if damage == "value" and key in ("model", "mean", "std", "class_names"):
            assert model is None or value == CONFIG[key], f"config with {key}={value!r} was used"
    run()
    assert_ran("config.json")


def test_damaged_model_npz_loads_or_is_refused(run_dir):
    """A flip in a field the zip reader ignores may still load: then the weights must be
    exactly the saved ones (a flip in the data fails the zip entry's CRC-32)."""
    (run_dir / "config.json").write_text(json.dumps(CONFIG))
    weights = (run_dir / "model.npz").read_bytes()
    saved = airbench((4, 8, 8), rng=0).state_dict()

    @FUZZ
    @given(keep=st.floats(0, 1), flips=st.lists(st.tuples(st.integers(0, 1 << 30), st.integers(0, 7)),
                                                max_size=4))
    def run(keep, flips):
        data = bytearray(weights[:int(keep * len(weights))] if not flips else weights)
        for position, bit in flips:
            data[position % len(data)] ^= 1 << bit
        model = load_or_refuse("model.npz", run_dir, {"model.npz": bytes(data)})
        if bytes(data) == weights:
            assert model is not None, "the undamaged weights were refused"
        if model is not None:
            loaded = model.state_dict()
            assert all(np.array_equal(loaded[name], a) for name, a in saved.items()), \
                "damaged weights were used"
    run()
    assert_ran("model.npz")
