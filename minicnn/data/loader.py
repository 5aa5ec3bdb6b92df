"""Mini-batches: a plain shuffling iterator and a resumable BatchLoader with augmentation."""
import copy
import json

import numpy as np


def _check(x, y, batch_size, who):
    """Arrays only: a list would be indexed one image at a time, and converting it here
    would copy the whole data set and guess its dtype (float64 for a list of floats)."""
    if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)):
        raise TypeError(f"{who}: expected numpy arrays x (N, H, W, C) and y (N,), got "
                        f"x: {type(x).__name__}, y: {type(y).__name__}; convert with "
                        f"np.asarray(x, dtype=np.float32) and np.asarray(y)")
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError(f"{who}: expected x (N, ...) and y (N,), got shapes {x.shape} and {y.shape}")
    if len(x) != len(y):
        raise ValueError(f"{who}: x has {len(x)} examples but y has {len(y)}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"{who}: batch_size must be an integer >= 1, got {batch_size!r}")


def num_batches(n, batch_size, drop_last=False):
    """Batches in one epoch of n examples."""
    return n // batch_size if drop_last else -(-n // batch_size)


def iterate_batches(x, y, batch_size, rng=None, shuffle=True, drop_last=False):
    """One epoch of (xb, yb) mini-batches: xb (B, ...) and yb (B,), copies of rows of x and y.

    shuffle: visit examples in the order rng.permutation(N) (rng=None: a fresh unseeded
    Generator; pass one for reproducible runs), else in order. drop_last: skip the final
    short batch. Every example appears exactly once per epoch (unless dropped).
    """
    _check(x, y, batch_size, "iterate_batches")
    n = len(y)
    if shuffle:
        order = (np.random.default_rng() if rng is None else rng).permutation(n)
    else:
        order = np.arange(n)
    for b in range(num_batches(n, batch_size, drop_last)):
        idx = order[b * batch_size:(b + 1) * batch_size]
        yield x[idx], y[idx]


class BatchLoader:
    """Shuffled, augmented mini-batches whose whole random state can be saved and restored.

    x: (N, H, W, C) float32, y: (N,). Iterating gives one epoch of (xb, yb).
    augment: optional callable aug(xb, rng, idx, epoch) -> xb' (e.g. transforms.CropFlip),
    where idx (B,) are the batch's indices into x.

    Randomness: at the start of each epoch the loader's Generator draws the permutation and
    one seed per batch; batch b is augmented with default_rng(seed_b). So the state needed
    to resume exactly, even mid-epoch, is just (epoch, next batch, Generator state at the
    epoch's start): that is state_dict(), a JSON-serialisable dict.
    """

    def __init__(self, x, y, batch_size, seed=0, augment=None, shuffle=True, drop_last=False):
        _check(x, y, batch_size, "BatchLoader")
        self.x, self.y, self.batch_size = x, y, batch_size
        self.augment, self.shuffle, self.drop_last = augment, shuffle, drop_last
        self.rng = np.random.default_rng(seed)
        self.epoch, self.batch = 0, 0                 # next batch to yield
        self._epoch_state = self.rng.bit_generator.state

    def __len__(self):
        return num_batches(len(self.y), self.batch_size, self.drop_last)

    @property
    def images_per_epoch(self):
        """Images one epoch yields: all of them, or fewer when the short batch is dropped."""
        return len(self) * self.batch_size if self.drop_last else len(self.y)

    def __iter__(self):
        """Yield the rest of the current epoch (all of it unless resumed or interrupted)."""
        n, bs, epoch = len(self.y), self.batch_size, self.epoch
        self.rng.bit_generator.state = self._epoch_state
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        seeds = self.rng.integers(0, 2**63, size=len(self))
        for b in range(self.batch, len(self)):
            idx = order[b * bs:(b + 1) * bs]
            xb, yb = self.x[idx], self.y[idx]
            if self.augment is not None:
                xb = self.augment(xb, np.random.default_rng(seeds[b]), idx, epoch)
            if b + 1 == len(self):                    # epoch done: the next one starts here
                self.epoch, self.batch = epoch + 1, 0
                self._epoch_state = self.rng.bit_generator.state
            else:
                self.batch = b + 1
            yield xb, yb

    def state_dict(self):
        """{'epoch', 'batch', 'rng_state'}: plain ints and dicts, safe for json.dumps."""
        state = {"epoch": self.epoch, "batch": self.batch,
                 "rng_state": copy.deepcopy(self._epoch_state)}
        json.dumps(state)   # fail here, not when the checkpoint is written
        return state

    def load_state_dict(self, state):
        """Restore a state_dict(): the next iteration repeats exactly what would have come.

        A state that is not a dict, lacks a key, or holds a bad value raises ValueError.
        """
        who = "BatchLoader.load_state_dict"
        if not isinstance(state, dict):
            raise ValueError(f"{who}: expected a dict, got {type(state).__name__}")
        missing = {"epoch", "batch", "rng_state"} - set(state)
        if missing:
            raise ValueError(f"{who}: missing keys {sorted(missing)}")
        for key in ("epoch", "batch"):
            if isinstance(state[key], bool) or not isinstance(state[key], (int, np.integer)):
                raise ValueError(f"{who}: {key} must be an int, got {state[key]!r}")
        if state["epoch"] < 0 or not 0 <= state["batch"] < max(len(self), 1):
            raise ValueError(f"{who}: expected epoch >= 0 and batch in 0..{len(self) - 1}, "
                             f"got epoch {state['epoch']}, batch {state['batch']}")
        probe = type(self.rng.bit_generator)()      # tried first: a bad state changes nothing
        try:
            probe.state = copy.deepcopy(state["rng_state"])
        except (TypeError, ValueError, KeyError, OverflowError) as e:
            raise ValueError(f"{who}: rng_state is not a state of this loader's "
                             f"{type(probe).__name__} generator: {e!r}") from e
        self.rng.bit_generator.state = probe.state
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])
        self._epoch_state = self.rng.bit_generator.state
