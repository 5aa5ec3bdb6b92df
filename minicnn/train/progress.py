"""A per-epoch progress bar showing running loss, accuracy and images/second.

    bar = ProgressBar(len(x_train), desc="epoch 3/10")
    for xb, yb in batches:
        ...
        bar.update(len(xb), loss=batch_loss, acc=batch_acc)
    bar.close()

The running means are kept here, not in tqdm, so they are right even when
the bar is disabled (tests, quiet runs) and can be read back as attributes.
"""

import sys
import time

from tqdm import tqdm


class ProgressBar:
    """tqdm bar over images; postfix = running mean loss, accuracy, img/s and the time left.

    The first update is a warm-up (kernels compile or load from cache): the rate and the
    time left are measured from its end, and shown from the second update on.
    ``initial``: images already done (a run resumed in the middle of an epoch).
    When the output stream is not a terminal (a log file, CI) the bar is
    redrawn at most every `log_interval` seconds instead of ten times a second.
    """

    def __init__(self, total, desc="", disable=False, file=None, log_interval=30.0, initial=0):
        if total < 0:
            raise ValueError(f"ProgressBar: total must be >= 0 images, got {total}")
        if not 0 <= initial <= total:
            raise ValueError(f"ProgressBar: initial must be in 0..{total} images, got {initial}")
        file = file if file is not None else sys.stderr
        tty = hasattr(file, "isatty") and file.isatty()
        self.total, self.n = total, initial
        self._loss_sum, self._acc_sum = 0.0, 0.0
        self._n_loss, self._n_acc = 0, 0  # images that came with a loss / an accuracy
        self._timed_since = None          # (time, images) at the end of the first update
        # tqdm's own rate and estimate are left out: the postfix holds ours
        self._bar = tqdm(total=total, initial=initial, desc=desc, unit="img",
                         dynamic_ncols=tty, file=file,
                         mininterval=0.1 if tty else log_interval, ascii=not tty,
                         bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
                         disable=disable)

    def update(self, n, loss=None, acc=None):
        """Count n more images; loss/acc are the batch means, weighted by n."""
        if n < 0:
            raise ValueError(f"ProgressBar.update: n must be >= 0 images, got {n}")
        self.n += n
        if loss is not None:
            self._loss_sum, self._n_loss = self._loss_sum + float(loss) * n, self._n_loss + n
        if acc is not None:
            self._acc_sum, self._n_acc = self._acc_sum + float(acc) * n, self._n_acc + n
        if self._timed_since is None:
            self._timed_since = (time.perf_counter(), self.n)
        postfix = {"loss": f"{self.loss:.4f}", "acc": f"{self.acc:.3f}"}
        if self.rate:
            left = (self.total - self.n) / self.rate
            postfix.update({"img/s": f"{self.rate:.0f}",
                            "left": f"{int(left // 60):d}:{int(left % 60):02d}"})
        self._bar.set_postfix(postfix, refresh=False)  # refresh=False keeps mininterval
        self._bar.update(n)

    @property
    def loss(self):
        """Mean loss per image so far (0.0 before any loss was given)."""
        return self._loss_sum / self._n_loss if self._n_loss else 0.0

    @property
    def acc(self):
        """Mean accuracy per image so far (0.0 before any accuracy was given)."""
        return self._acc_sum / self._n_acc if self._n_acc else 0.0

    @property
    def rate(self):
        """Images per second since the end of the first update (0.0 until a second one)."""
        if self._timed_since is None:
            return 0.0
        since, n_then = self._timed_since
        elapsed = time.perf_counter() - since
        return (self.n - n_then) / elapsed if elapsed > 0 and self.n > n_then else 0.0

    def close(self):
        """Draw the final state and release the bar."""
        self._bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
