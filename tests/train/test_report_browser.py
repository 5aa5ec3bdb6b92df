"""The report in a real browser: headless Chromium opens report.html from disk, with
every network request refused; every <img> decodes, nothing is logged as an error,
nothing is fetched, and a screenshot of the page is not blank.

Needs the ``playwright`` package (the ``test`` extra) and a Chromium binary: Debian's
``chromium`` package (/usr/bin/chromium), or the path in $MINICNN_CHROMIUM. Playwright
drives that binary; its own browser download (``playwright install``) is not used.
Without either the test skips and says which is missing."""
import io
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import real_data_dir
from minicnn.report import main
from minicnn.train import save_json
from minicnn.train.metrics import classification_report
from minicnn.zoo import airbench

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def chromium_path():
    """$MINICNN_CHROMIUM, else chromium on PATH, else /usr/bin/chromium; None if none exists."""
    for candidate in (os.environ.get("MINICNN_CHROMIUM"), shutil.which("chromium"),
                      "/usr/bin/chromium"):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip(
        "playwright.sync_api", reason="the playwright package is not installed "
        "(pip install -e '.[test]' or pip install playwright)")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium browser found (Debian/Ubuntu: apt-get install chromium; "
                    "or set MINICNN_CHROMIUM to a Chromium binary)")
    with playwright_api.sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except playwright_api.Error as e:
            pytest.skip(f"Chromium at {executable} does not start under playwright: {e}")
        yield browser
        browser.close()


def open_offline(browser, path):
    """Load path (file://) with every non-file request aborted. Returns (page, problems):
    console errors, page errors, failed and outside requests."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url[:80]}"))

    def only_local(route):
        if route.request.url.startswith(("file:", "data:")):
            route.continue_()
        else:
            problems.append(f"outside request: {route.request.url}")
            route.abort()

    page.route("**/*", only_local)
    page.goto(path.resolve().as_uri(), wait_until="load")
    return page, problems


DECODE_ALL = """() => Promise.all(Array.from(document.images).map(img =>
    img.decode().then(() => [img.naturalWidth, img.naturalHeight],
                      () => [0, 0])))"""


@pytest.fixture(scope="module")
def report_path(tmp_path_factory):
    """A run directory as examples/train_cifar10.py leaves it (an untrained airbench(4, 8,
    8) with made-up history and metrics: no training needed), and its report. With the
    CIFAR-10 test set available the report has every picture; without it, notes."""
    run = tmp_path_factory.mktemp("browser") / "run"
    run.mkdir()
    airbench((4, 8, 8), rng=0).save(run / "model.npz")
    data_dir = real_data_dir()
    save_json({"model": "airbench", "widths": [4, 8, 8], "epochs": 2, "batch_size": 100,
               "preset": "default", "seed": 0, "tta": 0, "data_dir": str(data_dir) if data_dir else None,
               "mean": [0.49, 0.48, 0.45], "std": [0.25, 0.24, 0.26], "class_names": NAMES},
              run / "config.json")
    save_json({"epoch": [1, 2], "train_loss": [2.1, 1.8], "train_acc": [0.2, 0.35],
               "val_loss": [2.0, 1.9], "val_acc": [0.25, 0.3], "lr": [0.1, 0.05],
               "seconds": [3.0, 2.9], "images_per_second": [400.0, 410.0]}, run / "history.json")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 1000)
    pred = np.where(rng.random(1000) < 0.4, y, rng.integers(0, 10, 1000))
    r = classification_report(y, pred, NAMES)
    save_json({"test_accuracy": r["accuracy"], "test_accuracy_exact_subset": r["accuracy"],
               "val_accuracy": 0.3, "precision_macro": r["precision_macro"],
               "recall_macro": r["recall_macro"], "f1_macro": r["f1_macro"],
               "confusion_matrix": r["confusion_matrix"],
               "per_class": {k: r[k] for k in ("precision", "recall", "f1", "support")},
               "train_seconds": 5.9, "total_seconds": 12.0, "epochs": 2, "tta": 0},
              run / "metrics.json")
    assert main([str(run), "--images", "2", "--mistakes", "4", "--quiet"]) == 0
    return run / "report.html"


def test_report_renders_in_chromium(browser, report_path):
    page, problems = open_offline(browser, report_path)
    sizes = page.evaluate(DECODE_ALL)
    expected = 3 + (5 if real_data_dir() is not None else 0)     # metrics x2, curves; images
    assert len(sizes) >= expected
    assert all(w > 0 and h > 0 for w, h in sizes), sizes
    assert page.evaluate("document.querySelectorAll('section h2').length") == 10
    shot = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB")
    pixels = np.asarray(shot)
    assert pixels.shape[0] > 2000                                  # the whole long page
    assert pixels.reshape(-1, 3).std(axis=0).max() > 20, "the screenshot is blank"
    assert len(np.unique(pixels.reshape(-1, 3)[::97], axis=0)) > 50
    page.close()
    assert problems == []


def test_the_browser_check_catches_a_broken_page(browser, tmp_path):
    """The same checks on a page with a corrupt image and a script error must fail."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><img src="data:image/png;base64,iVBORw0KGgoAAAA=">'
                   '<script>undefined_function()</script></body></html>')
    page, problems = open_offline(browser, bad)
    assert page.evaluate(DECODE_ALL) == [[0, 0]]
    page.close()
    assert any(p.startswith("page error") for p in problems)
