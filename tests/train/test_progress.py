"""The progress bar: the rate and time left are measured after the warm-up batch, and an
epoch that drops its short last batch still ends at 100%."""
import io
import time

import numpy as np
import pytest

from minicnn.data import BatchLoader
from minicnn.train.progress import ProgressBar


def test_the_warm_up_batch_does_not_count_in_the_rate():
    bar = ProgressBar(1000, file=io.StringIO())
    bar.update(100, loss=2.0, acc=0.1)           # the first batch: kernels compile here
    assert bar.rate == 0.0                        # no estimate from one (slow) batch
    bar._timed_since = (time.perf_counter() - 1.0, bar.n)   # pretend 1 s has passed since
    bar.update(100, loss=1.0, acc=0.3)
    assert 90 <= bar.rate <= 110                  # 100 images in ~1 s, not 200 in 1 s + warm-up
    assert bar.loss == pytest.approx(1.5) and bar.acc == pytest.approx(0.2)
    bar.close()


def test_a_resumed_epoch_starts_where_it_stopped_and_bad_positions_are_refused():
    bar = ProgressBar(1000, file=io.StringIO(), initial=400)
    bar.update(100)
    assert bar.n == 500
    bar.close()
    with pytest.raises(ValueError, match=r"initial must be in 0..1000 images, got 1200"):
        ProgressBar(1000, file=io.StringIO(), initial=1200)


def test_an_epoch_that_drops_its_short_batch_ends_at_100_percent():
    x, y = np.zeros((45, 1, 1, 1), np.float32), np.zeros(45, int)
    loader = BatchLoader(x, y, 10, drop_last=True)
    assert loader.images_per_epoch == 40 == sum(len(yb) for _, yb in loader)
    assert BatchLoader(x, y, 10).images_per_epoch == 45
