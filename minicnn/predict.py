"""Classify image files with a trained run: ``minicnn-predict --run RUN_DIR img.png ...``.

Prints one line per image: its path and the top-k classes with their probabilities
(k = ``--top``, 3 by default). Exit status 0 on success, 1 if an image or a file of
the run cannot be used, 2 if a flag or path makes no sense (each time one line on
stderr, naming the file or flag). In Python: ``predict(paths, run_dir, top=3)``.

How an image is read (``read_image``)
    formats      PNG, JPEG (and MPO, the multi-picture JPEG of some cameras), TIFF,
                 BMP, GIF, WebP, PBM/PGM/PPM; of an animated or multi-page file,
                 the first frame. Only regular files are opened: a folder, a named
                 pipe or a device is refused before it is opened.
    size bound   the size declared in the file's header is checked before a single
                 pixel is decoded: more than ``MAX_PIXELS`` pixels is refused.
    orientation  the EXIF Orientation tag is applied, so a photo taken with the
                 phone held sideways is classified upright.
    colours      every Pillow mode becomes 8-bit RGB (grey images three equal
                 channels; embedded ICC colour profiles are not applied):
        1, L, P, RGB, RGBX, CMYK, YCbCr, LAB, HSV
                 Pillow's conversion to RGB
        LA, PA, RGBA, La, RGBa, and 1, L, P, RGB with a transparent colour or palette entry
                 composited on white: a transparent pixel becomes white, a
                 half-transparent one half-way to white
        I;16, I;16L, I;16B, I;16N
                 16-bit samples: round(value / 257), so 0 -> 0 and 65535 -> 255
        I        32-bit integers, read as 16-bit samples (Pillow opens some 16-bit
                 files in this mode): values must lie in [0, 65535]
        F        32-bit floats: every value must be finite; values in [0, 1] are
                 scaled by 255, else values in [0, 255] are used as they are, else
                 the image is refused (the message gives the range found)
    resizing     to 32x32 pixels, bilinear with antialiasing; the aspect ratio is
                 not kept (the whole picture is squeezed into the square).
An image that cannot be read by these rules raises ``ImageError`` (a ValueError)
whose message starts with the file's path.

The run directory (``load_run``) holds ``config.json`` and ``model.npz`` as written
by examples/train_cifar10.py. Every value predictions depend on is checked: the
model name and widths, the channel mean and std (3 finite numbers each, std > 0),
the class names, and every weight (finite; BatchNorm running variances >= 0).
A file that fails raises ``RunError`` (a ValueError) naming the file and the value.

Classification standardises each image with the run's channel mean and std,
averages the logits of the image and of its mirror image, and applies softmax.
"""
import argparse
import contextlib
import json
import math
import os
import stat
import struct
import sys
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from .fast.process import tune_process
from .nn.loss import softmax
from .train.evaluate import predict_logits
from .train.metrics import topk
from .zoo import airbench, simple

MAX_PIXELS = 50_000_000          # largest image (width x height) read; a 48-megapixel photo fits
IMAGE_SIZE = 32                  # the networks' input: 32x32 RGB, like CIFAR-10
IMAGE_FORMATS = ("PNG", "JPEG", "MPO", "TIFF", "BMP", "GIF", "WEBP", "PPM")  # Pillow's names
MAX_CONFIG_BYTES = 1_000_000     # largest config.json read
MAX_WIDTH = 1024                 # largest airbench block width accepted from a config.json
MAX_CLASSES = 1000               # most class names accepted from a config.json
DEFAULT_BATCH_SIZE = 256         # images per forward pass
MAX_BATCH_SIZE = 4096            # memory for activations grows with the batch

# What Pillow raises for a damaged file. Pillow documents OSError; its PPM reader raises
# ValueError for a damaged header, and the other types have come out of its plugins for
# damaged files in some versions.
DECODER_ERRORS = (OSError, SyntaxError, ValueError, TypeError, IndexError, KeyError,
                  EOFError, struct.error, zlib.error)

# Errors numpy and zipfile raise for a truncated or bit-flipped .npz file (Sequential.load
# turns them into a ValueError; this is the net should one slip through).
NPZ_ERRORS = (OSError, EOFError, KeyError, struct.error, zipfile.BadZipFile, zlib.error,
              NotImplementedError, OverflowError)

OPAQUE_MODES = ("1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")
ALPHA_MODES = ("LA", "PA", "RGBA", "La", "RGBa")      # La and RGBa: premultiplied alpha
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
SUPPORTED_MODES = OPAQUE_MODES + ALPHA_MODES + SIXTEEN_BIT_MODES + ("I", "F")


class ImageError(ValueError):
    """An image file that cannot be read or converted; the message starts with its path."""


class RunError(ValueError):
    """A run directory whose config.json or model.npz cannot be used; the message
    names the file and the value that is wrong."""


# -- arguments ---------------------------------------------------------------------
def check_whole_number(name, value, low, high):
    """``value`` as an int if it is a whole number in [low, high] (an int or numpy
    integer, not a bool), else a ValueError naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    return int(value)


def check_path(name, path):
    """``path`` (a str or os.PathLike) as a non-empty str, else a ValueError naming ``name``."""
    text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
    if not isinstance(text, str) or not text or "\0" in text:
        raise ValueError(f"{name} must be a file path (a non-empty str or os.PathLike), got {path!r}")
    return text


def check_path_list(name, paths):
    """``paths`` (a list or tuple of at least one path) as a list of str."""
    if not isinstance(paths, (list, tuple)) or not paths:
        raise ValueError(f"{name} must be a non-empty list of file paths, got {paths!r}")
    return [check_path(f"{name}[{i}]", p) for i, p in enumerate(paths)]


def not_a_regular_file(path):
    """None if ``path`` is a regular file (symbolic links are followed), else what it
    is instead ("not found", "a folder", "a named pipe (FIFO)", ...).

    Checked before a file is opened: reading a named pipe waits for a writer that may
    never come, and a device such as /dev/zero never ends."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "not found"
    except OSError as e:
        return f"cannot be examined ({e.strerror or e})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


# -- images ------------------------------------------------------------------------
def read_images(paths, size=IMAGE_SIZE, max_pixels=MAX_PIXELS):
    """(N, size, size, 3) uint8 from N >= 1 image files, each read by ``read_image``."""
    paths = check_path_list("read_images: paths", paths)
    return np.stack([read_image(p, size, max_pixels) for p in paths])


def read_image(path, size=IMAGE_SIZE, max_pixels=MAX_PIXELS):
    """(size, size, 3) uint8 RGB pixels of one image file, read by the rules in the
    module docstring: declared size checked against ``max_pixels`` before decoding,
    EXIF orientation applied, any mode converted to 8-bit RGB, resized bilinearly.

    Raises ImageError (a ValueError) whose message starts with ``path`` for a file
    that is missing, not a regular file, too large, damaged, in another format, or in
    a mode or value range that has no RGB meaning; ValueError for a bad argument.
    """
    path = check_path("read_image: path", path)
    size = check_whole_number("read_image: size", size, 1, 4096)
    max_pixels = check_whole_number("read_image: max_pixels", max_pixels, 1, 2 ** 40)
    problem = not_a_regular_file(path)
    if problem:
        raise ImageError(f"{path}: {problem}; expected an image file")
    with refusing_damaged_images(path, max_pixels):
        with Image.open(path, formats=available_formats()) as im:
            check_declared_size(im, path, max_pixels)
            im.draft(None, (size, size))   # JPEG only: decode at 1/2, 1/4 or 1/8 scale if still >= size
            upright = ImageOps.exif_transpose(im)   # decodes the (first frame's) pixels
        rgb = image_to_rgb(upright, path)    # inside: Pillow may object to the file's transparency data
    rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)                            # (size, size, 3)


def available_formats():
    """The names in IMAGE_FORMATS that this Pillow installation can read."""
    Image.init()
    return [name for name in IMAGE_FORMATS if name in Image.OPEN]


@contextlib.contextmanager
def refusing_damaged_images(path, max_pixels):
    """Turn what Pillow raises while opening or decoding ``path`` into an ImageError
    naming the file (Pillow's own decompression-bomb warning is silenced: the
    declared size is checked against ``max_pixels`` instead)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            yield
        except ImageError:
            raise
        except Image.DecompressionBombError as e:
            raise ImageError(f"{path}: refused before decoding, too large: {e} (this reader's "
                             f"bound: {max_pixels:,} pixels)") from None
        except Image.UnidentifiedImageError:
            raise ImageError(f"{path}: not an image in a format this reader accepts "
                             f"({', '.join(IMAGE_FORMATS)})") from None
        except DECODER_ERRORS as e:
            raise ImageError(f"{path}: damaged or unreadable image file "
                             f"({type(e).__name__}: {e})") from None


def check_declared_size(im, path, max_pixels):
    """Refuse an image whose header declares more than ``max_pixels`` pixels (or none):
    nothing has been decoded yet, so nothing large has been allocated."""
    width, height = im.size
    if width < 1 or height < 1 or width * height > max_pixels:
        raise ImageError(f"{path}: declares {width} x {height} = {width * height:,} pixels; "
                         f"this reader accepts 1 to {max_pixels:,} pixels")


def image_to_rgb(im, name="image"):
    """A Pillow image in mode "RGB" (8 bits per channel) from a loaded image of any
    supported mode, by the rules in the module docstring.

    ``name`` starts the message of the ImageError raised for an unsupported mode or
    for integer or float values outside the accepted ranges."""
    mode = im.mode
    if mode in SIXTEEN_BIT_MODES + ("I", "F"):
        return high_depth_to_grey(im, name).convert("RGB")
    if mode == "La":                         # Pillow converts RGBa, not La, to straight alpha
        grey, alpha = im.split()
        im = Image.merge("RGBa", (grey, grey, grey, alpha))
    if mode in ALPHA_MODES or has_transparency(im):
        return composite_on_white(im.convert("RGBA"))
    if mode in OPAQUE_MODES:
        return im if mode == "RGB" else im.convert("RGB")
    raise ImageError(f"{name}: image mode {mode!r} is not supported "
                     f"(supported: {', '.join(SUPPORTED_MODES)})")


def has_transparency(im):
    """True if a "1", "L", "P" or "RGB" image has transparent pixels all the same: a
    transparent colour or palette entry ("transparency" in its info, from PNG's tRNS
    chunk or GIF's), or a palette with an alpha channel."""
    if im.mode not in ("1", "L", "P", "RGB"):
        return False
    return "transparency" in im.info or (im.mode == "P" and im.palette is not None
                                         and im.palette.mode.endswith("A"))


def composite_on_white(rgba):
    """RGB image of ``rgba`` laid on a white background:
    out = colour * alpha / 255 + 255 * (1 - alpha / 255)."""
    rgb = Image.new("RGB", rgba.size, (255, 255, 255))
    rgb.paste(rgba, mask=rgba.getchannel("A"))
    return rgb


def high_depth_to_grey(im, name):
    """An 8-bit grey ("L") image from a 16-bit ("I;16*"), 32-bit integer ("I") or
    float ("F") image, by the rules in the module docstring. A transparent grey value
    (PNG's tRNS chunk) becomes white, as in ``composite_on_white``."""
    values = np.asarray(im)                                             # (H, W)
    if im.mode == "F":
        if not np.isfinite(values).all():
            raise ImageError(f"{name}: float image holds NaN or infinite values; expected "
                             f"finite values in [0, 1] or [0, 255]")
        low, high = float(values.min()), float(values.max())
        if low >= 0 and high <= 1:
            scale = 255
        elif low >= 0 and high <= 255:
            scale = 1
        else:
            raise ImageError(f"{name}: float image with values from {low:g} to {high:g}; "
                             f"expected values in [0, 1] (scaled by 255) or [0, 255]")
        scaled = values.astype(np.float32)
        scaled *= scale
        grey = np.rint(scaled, out=scaled).astype(np.uint8)
    else:
        low, high = int(values.min()), int(values.max())
        if low < 0 or high > 65535:
            raise ImageError(f"{name}: {im.mode!r} image with values from {low} to {high}; "
                             f"expected 16-bit values in [0, 65535]")
        grey = ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)   # round(v / 257)
    transparent = im.info.get("transparency")
    if isinstance(transparent, int) and im.mode != "F":
        grey[values == transparent] = 255
    return Image.fromarray(grey)


# -- the run directory ------------------------------------------------------------
def load_run(run_dir):
    """(model, config) of a finished run directory written by examples/train_cifar10.py:
    ``config.json`` (checked by ``check_config``) and ``model.npz`` (weights checked
    to be finite). Raises RunError naming the file that is missing or cannot be used."""
    run_dir = Path(check_path("load_run: run_dir", run_dir))
    if not run_dir.is_dir():
        what = "a file" if run_dir.exists() else "not found"
        raise RunError(f"{run_dir}: {what}; expected a finished run directory "
                       f"(config.json and model.npz) from examples/train_cifar10.py")
    config_path, weights_path = run_dir / "config.json", run_dir / "model.npz"
    for path in (config_path, weights_path):
        problem = not_a_regular_file(path)
        if problem:
            raise RunError(f"{path}: {problem}; expected a finished run directory "
                           f"(config.json and model.npz) from examples/train_cifar10.py")
    config = read_config(config_path)
    num_classes = len(config["class_names"])
    if config["model"] == "airbench":
        model = airbench(tuple(config["widths"]), num_classes=num_classes)
    else:
        model = simple(num_classes=num_classes)
    widths = f", widths {config['widths']}" if config["model"] == "airbench" else ""
    load_weights(model, weights_path, f"{config_path} ({config['model']}{widths}, "
                                      f"{num_classes} classes)")
    return model, config


def read_config(path):
    """The dict in a run's config.json, checked by ``check_config``."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise RunError(f"{path}: cannot be read ({e.strerror or e})") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise RunError(f"{path}: more than {MAX_CONFIG_BYTES:,} bytes; a run's config.json "
                       f"is about 1 kB")
    try:
        config = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise RunError(f"{path}: not UTF-8 text ({e})") from None
    except (ValueError, RecursionError) as e:       # JSONDecodeError, a 5000-digit number, [[[[...
        raise RunError(f"{path}: not valid JSON ({type(e).__name__}: {e})") from None
    return check_config(config, path)


def check_config(config, source="config"):
    """``config`` if the values predictions depend on are usable, else a RunError
    that starts with ``source`` and names the key and the value:

        "model"        "airbench" or "simple"
        "widths"       (airbench) 3 whole numbers from 1 to MAX_WIDTH
        "mean", "std"  3 numbers each (one per RGB channel), finite as float32;
                       every std > 0 (also after rounding to float32)
        "class_names"  1 to MAX_CLASSES strings
    """
    if not isinstance(config, dict):
        raise RunError(f"{source}: expected a JSON object (a dict), got {type(config).__name__}")
    model = config.get("model")
    if model not in ("airbench", "simple"):
        raise RunError(f'{source}: "model" must be "airbench" or "simple", got {model!r}')
    if model == "airbench":
        widths = config.get("widths")
        if not (isinstance(widths, list) and len(widths) == 3
                and all(is_whole_number(w) and 1 <= w <= MAX_WIDTH for w in widths)):
            raise RunError(f'{source}: "widths" must be 3 whole numbers from 1 to {MAX_WIDTH}, '
                           f'got {widths!r:.200}')
    mean, std = config.get("mean"), config.get("std")
    if not is_channel_triple(mean):
        raise RunError(f'{source}: "mean" must be 3 finite numbers (one per RGB channel), '
                       f'got {mean!r:.200}')
    if not (is_channel_triple(std) and all(np.float32(v) > 0 for v in std)):
        raise RunError(f'{source}: "std" must be 3 finite numbers greater than 0 (one per RGB '
                       f'channel), got {std!r:.200}')
    names = config.get("class_names")
    if not (isinstance(names, list) and 1 <= len(names) <= MAX_CLASSES
            and all(isinstance(n, str) for n in names)):
        raise RunError(f'{source}: "class_names" must be a list of 1 to {MAX_CLASSES} strings, '
                       f'got {names!r:.200}')
    return config


def is_whole_number(value):
    return isinstance(value, int) and not isinstance(value, bool)


def is_channel_triple(values):
    """True for a list of 3 numbers (not bools) that are finite in float32."""
    largest = float(np.finfo(np.float32).max)
    return (isinstance(values, list) and len(values) == 3
            and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                    and math.isfinite(v) and abs(v) <= largest for v in values))


def load_weights(model, path, described_by="config.json"):
    """Load ``path`` into ``model`` (the model ``described_by`` describes) and check
    every array is finite (and every BatchNorm running variance >= 0); a RunError
    naming the file otherwise."""
    try:
        model.load(path)
    except ValueError as e:
        raise RunError(f"{path}: cannot be used as the weights of the model {described_by} "
                       f"describes: {e}") from None
    except NPZ_ERRORS as e:
        raise RunError(f"{path}: not a readable .npz weights file (truncated or damaged?): "
                       f"{type(e).__name__}: {e}") from None
    for name, a in model.named_arrays():
        bad = ~np.isfinite(a)
        if bad.any():
            raise RunError(f"{path}: array {name!r} holds {int(bad.sum())} non-finite values "
                           f"(NaN or infinite) among its {a.size}, e.g. {a[bad].flat[0]}")
        if name.endswith("running_var") and (a < 0).any():
            raise RunError(f"{path}: array {name!r} (a BatchNorm running variance) holds "
                           f"negative values, e.g. {a[a < 0].flat[0]}")


# -- classification ---------------------------------------------------------------
def classify(model, config, images, k=3, batch_size=DEFAULT_BATCH_SIZE):
    """Top-k (class index, probability) per image.

    images: (N, 32, 32, 3) uint8, N >= 1. config: a run's config (``check_config``).
    Returns (idx, p), each (N, k): class indices, most likely first, and their
    probabilities. A RunError if the model's scores are not finite.
    """
    config = check_config(config)
    if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4
            and images.shape[1:] == (IMAGE_SIZE, IMAGE_SIZE, 3) and len(images) >= 1):
        got = (f"{images.dtype} array of shape {images.shape}" if isinstance(images, np.ndarray)
               else type(images).__name__)
        raise ValueError(f"classify: images must be a uint8 array (N, {IMAGE_SIZE}, "
                         f"{IMAGE_SIZE}, 3) with N >= 1, got a {got}")
    num_classes = len(config["class_names"])
    k = check_whole_number("classify: k", k, 1, num_classes)
    batch_size = check_whole_number("classify: batch_size", batch_size, 1, MAX_BATCH_SIZE)
    mean = np.asarray(config["mean"], np.float32)
    std = np.asarray(config["std"], np.float32)
    with np.errstate(over="ignore"):                  # a tiny std overflows: refused below
        x = (images.astype(np.float32) / 255 - mean) / std              # (N, 32, 32, 3)
    if not np.isfinite(x).all():
        raise RunError(f'standardising with the run\'s "mean" {config["mean"]} and "std" '
                       f'{config["std"]} overflows float32')
    logits = predict_logits(model, x, tta=1, batch_size=batch_size)      # (N, K)
    if logits.shape[1] != num_classes:
        raise ValueError(f"classify: the model has {logits.shape[1]} outputs but config has "
                         f"{num_classes} class names")
    if not np.isfinite(logits).all():
        raise RunError("the model's class scores are not finite (NaN or infinite): its "
                       "weights or the run's mean/std cannot be used")
    return topk(softmax(logits), k)


def predict(image_paths, run_dir, top=3, batch_size=DEFAULT_BATCH_SIZE):
    """Classify image files with the model of a run directory.

    image_paths: a non-empty list of image files. run_dir: a folder holding
    config.json and model.npz. top: classes per image, from 1 to the run's number of
    classes. batch_size: images per forward pass, from 1 to MAX_BATCH_SIZE.
    Returns one list per image of ``top`` (class name, probability) pairs, most
    likely first. Raises ValueError for a bad argument, ImageError or RunError
    (both ValueErrors) naming a file that cannot be used.
    """
    image_paths = check_path_list("predict: image_paths", image_paths)
    top = check_whole_number("predict: top", top, 1, MAX_CLASSES)
    batch_size = check_whole_number("predict: batch_size", batch_size, 1, MAX_BATCH_SIZE)
    model, config = load_run(check_path("predict: run_dir", run_dir))
    names = config["class_names"]
    if top > len(names):
        raise ValueError(f"predict: top must be a whole number from 1 to {len(names)} "
                         f"(the run's number of classes), got {top}")
    idx, probs = classify(model, config, read_images(image_paths), top, batch_size)
    return [[(names[i], float(p)) for i, p in zip(row_i, row_p)] for row_i, row_p in zip(idx, probs)]


# -- the command ------------------------------------------------------------------
class CommandLine(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr (no usage block), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def whole_number(low, high):
    """An argparse type: an int in [low, high], else one line saying what it got."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected a whole number from {low} to {high}, "
                                              f"got {text!r}")
        return value
    return parse


def make_parser():
    p = CommandLine(prog="minicnn-predict", description=__doc__.split("\n\n")[0])
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help=f"image files ({', '.join(IMAGE_FORMATS)})")
    p.add_argument("--run", required=True, metavar="RUN_DIR",
                   help="run directory written by examples/train_cifar10.py")
    p.add_argument("--top", type=whole_number(1, MAX_CLASSES), default=3,
                   help="classes shown per image (default 3; at most the run's classes)")
    p.add_argument("--batch-size", type=whole_number(1, MAX_BATCH_SIZE),
                   default=DEFAULT_BATCH_SIZE, help=f"images per forward pass "
                   f"(default {DEFAULT_BATCH_SIZE})")
    return p


def check_command_line_paths(parser, args):
    """Paths that cannot be what their flag needs (missing, a file for a folder, a
    folder for a file, ...) end the command with one line and exit status 2, before
    anything is read."""
    expected_run = "a finished run folder (config.json and model.npz from examples/train_cifar10.py)"
    run = args.run
    if not run:
        parser.error(f"argument --run: expected {expected_run}, got {run!r}")
    if not os.path.isdir(run):
        what = "a file" if os.path.exists(run) else "not found"
        parser.error(f"argument --run: expected {expected_run}, got {run!r}: {what}")
    for name in ("config.json", "model.npz"):
        problem = not_a_regular_file(os.path.join(run, name))
        if problem:
            parser.error(f"argument --run: expected {expected_run}, got {run!r}: "
                         f"its {name} is {problem}")
    for path in args.images:
        problem = not_a_regular_file(path) if path and "\0" not in path else "not a path"
        if problem:
            parser.error(f"argument IMAGE: expected an image file, got {path!r}: {problem}")


def main(argv=None):
    """Run the command on ``argv`` (default sys.argv[1:]); print one line per image
    and return the lines. Errors end in SystemExit (status 1 or 2, one line)."""
    parser = make_parser()
    args = parser.parse_args(argv)
    check_command_line_paths(parser, args)
    tune_process()
    try:
        model, config = load_run(args.run)
        names = config["class_names"]
        if args.top > len(names):
            parser.error(f"argument --top: expected a whole number from 1 to {len(names)} "
                         f"(the run's number of classes), got {args.top}")
        idx, probs = classify(model, config, read_images(args.images), args.top, args.batch_size)
    except (ImageError, RunError) as e:
        sys.exit(f"{parser.prog}: error: {e}")
    lines = [f"{path}: " + ", ".join(f"{names[i]} {q:.1%}" for i, q in zip(row_i, row_p))
             for path, row_i, row_p in zip(args.images, idx, probs)]
    print("\n".join(lines))
    return lines


def cli():
    """The ``minicnn-predict`` command: exit status 0 on success (``main`` returns the
    printed lines, which a console script would otherwise take for an error)."""
    main()
    return 0


if __name__ == "__main__":
    sys.exit(cli())
