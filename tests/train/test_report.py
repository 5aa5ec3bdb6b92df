"""minicnn.report (minicnn-report RUN_DIR) on a tiny real run: every section, every
image an inline PNG, nothing else in the run directory touched; interrupted runs,
runs without traces or data, and directories that are no run at all."""
import base64
import hashlib
import html.parser
import io
import json
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from conftest import ROOT, real_data_dir
from minicnn.report import SECTIONS, main, write_atomic
from minicnn.train import save_json
from minicnn.zoo import airbench
from tiny_run import make_tiny_run

needs_data = pytest.mark.skipif(real_data_dir() is None,
                                reason="CIFAR-10 not found (set MINICNN_DATA)")


class PageParser(html.parser.HTMLParser):
    """Collects the <img> sources, <h2> headings, and every tag that could load a file."""

    def __init__(self):
        super().__init__()
        self.images, self.headings, self.external, self._in_h2 = [], [], [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag in ("link", "script", "iframe", "object", "embed") or (
                tag != "img" and "src" in attrs):
            self.external.append((tag, attrs))
        if tag == "a" and not attrs.get("href", "").startswith("#"):
            self.external.append((tag, attrs))
        self._in_h2 = tag == "h2"

    def handle_endtag(self, tag):
        self._in_h2 = False if tag == "h2" else self._in_h2

    def handle_data(self, data):
        if self._in_h2:
            self.headings.append(data.strip())


def parse(path):
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def decode_images(sources):
    """Each source must be a base64 PNG data URI; returns the decoded sizes."""
    sizes = []
    for src in sources:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix), src[:60]
        with Image.open(io.BytesIO(base64.b64decode(src[len(prefix):], validate=True))) as im:
            assert im.format == "PNG"
            im.load()
            sizes.append(im.size)
    return sizes


def snapshot(folder):
    """{name: sha256} of every file in folder."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


def report(run_dir, *extra):
    """main() on run_dir with small picture counts; returns the page's text."""
    assert main([str(run_dir), "--images", "2", "--mistakes", "4", "--quiet", *extra]) == 0
    return (run_dir / "report.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return make_tiny_run(tmp_path_factory.mktemp("report") / "run")


@pytest.fixture(scope="module")
def full_report(tiny_run):
    """The report of the finished tiny run, written over a stale report.html, and the
    run directory's files before and after."""
    (tiny_run / "report.html").write_text("stale")
    before = snapshot(tiny_run)
    text = report(tiny_run)
    return text, before, snapshot(tiny_run)


@needs_data
def test_report_has_every_section_with_inline_pngs(tiny_run, full_report):
    text, _, _ = full_report
    page = parse(tiny_run / "report.html")
    assert page.headings == list(SECTIONS.values())
    assert page.external == []                                   # nothing loaded from outside
    assert "http://" not in text and "https://" not in text
    sizes = decode_images(page.images)
    # metrics: bars + confusion; curves; traces: norms, ratios, 2 steps x 2 kinds; filters;
    # feature maps; saliency; Grad-CAM; mistakes
    assert len(sizes) == 2 + 1 + 6 + 1 + 1 + 2 + 1
    assert all(w > 100 and h > 100 for w, h in sizes)
    assert "This report is incomplete" not in text and "could not be drawn" not in text
    assert "Not shown" not in text
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert f"{100 * metrics['test_accuracy']:.2f}%" in text
    assert "Whiten(3-&gt;24" in text and "backend:" in text      # the model table


@needs_data
def test_report_changes_no_other_file(tiny_run, full_report):
    text, before, after = full_report
    assert text != "stale"
    assert set(after) == set(before)                             # no temporary file left
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"report.html"}


def test_write_atomic_replaces_only_its_file(tmp_path):
    (tmp_path / "report.html").write_text("old")
    (tmp_path / "other.json").write_text("{}")
    write_atomic(tmp_path / "report.html", "new")
    assert (tmp_path / "report.html").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.json", "report.html"]


@needs_data
def test_interrupted_run_without_traces_gets_what_can_be_shown(tiny_run, tmp_path, capsys):
    run = tmp_path / "interrupted"
    shutil.copytree(tiny_run, run)
    for name in ("model.npz", "metrics.json", "history.json", "traces.json",
                 "trace_histograms.npz", "report.html"):
        (run / name).unlink()
    before = snapshot(run)
    text = report(run)
    err = capsys.readouterr().err
    assert "the report is incomplete" in err and "model.npz" in err and "metrics.json" in err
    page = parse(run / "report.html")
    assert page.headings == list(SECTIONS.values())
    assert "This report is incomplete" in text
    assert "weights are those of checkpoint.npz (epoch 1)" in text
    assert "measured now on the test set" in text                # metrics computed, not read
    assert "curves were read from checkpoint.npz" in text
    assert "no traces.json" in text
    decode_images(page.images)
    assert len(page.images) == 2 + 1 + 1 + 1 + 2 + 1               # all but the trace pictures
    after = snapshot(run)
    assert {n for n in after if before.get(n) != after[n]} == {"report.html"}


@needs_data
def test_without_the_data_the_image_sections_say_why(tiny_run, tmp_path, monkeypatch):
    run = tmp_path / "nodata"
    shutil.copytree(tiny_run, run)
    monkeypatch.delenv("MINICNN_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))           # no ~/.cache/minicnn either
    (tmp_path / "empty").mkdir()
    text = report(run, "--data-dir", str(tmp_path / "empty"))
    page = parse(run / "report.html")
    assert page.headings == list(SECTIONS.values())
    assert text.count("the CIFAR-10 test images cannot be read") >= 3   # 3 sections + summary
    assert "--data-dir" in text
    decode_images(page.images)
    assert len(page.images) == 2 + 1 + 6 + 1                       # no data-dependent pictures


@needs_data
def test_weights_of_another_model_are_named(tiny_run, tmp_path):
    run = tmp_path / "foreign"
    shutil.copytree(tiny_run, run)
    airbench((8, 8, 8), rng=0).save(run / "model.npz")
    text = report(run, "--data-dir", str(tmp_path))
    assert "do not fit the model of config.json" in text and "expected shape" in text


def test_unusable_directories_are_refused_with_what_is_missing(tmp_path):
    with pytest.raises(SystemExit, match="no such directory"):
        main([str(tmp_path / "nowhere")])
    with pytest.raises(SystemExit, match=r"no config.json .* holds \['notes.txt'\]"):
        (tmp_path / "other").mkdir()
        (tmp_path / "other" / "notes.txt").write_text("hello")
        main([str(tmp_path / "other")])
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    save_json({"lr": 0.1, "layers": 3}, foreign / "config.json")
    with pytest.raises(SystemExit, match="'model' is one of"):
        main([str(foreign)])
    (foreign / "config.json").write_text('{"model": "airbench", "wid')
    with pytest.raises(SystemExit, match="not valid JSON"):
        main([str(foreign)])
    for folder in (tmp_path / "other", foreign):
        assert not (folder / "report.html").exists()


def test_config_without_weights_still_reports_the_architecture(tmp_path):
    save_json({"model": "airbench", "widths": [4, 8, 8], "mean": [0.5] * 3, "std": [0.25] * 3},
              tmp_path / "config.json")
    text = report(tmp_path)
    assert "no weights" in text and "Whiten(3-&gt;24" in text
    page = parse(tmp_path / "report.html")
    assert page.headings == list(SECTIONS.values()) and page.images == []


def test_command_line_entry_points(tmp_path):
    done = subprocess.run([sys.executable, "-m", "minicnn.report", str(tmp_path / "nowhere")],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode != 0 and "no such directory" in done.stderr
    script = shutil.which("minicnn-report")
    if script is None:
        pytest.skip("the minicnn-report console script is not installed (pip install -e .)")
    done = subprocess.run([script, "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "RUN_DIR" in done.stdout
