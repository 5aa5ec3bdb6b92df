"""CIFAR-10 data: reading (cifar10), downloading (download), preprocessing and augmentation
(transforms), and mini-batches (loader). Images are NHWC: (N, 32, 32, 3).

    data = load_cifar10()                                    # uint8 arrays, see its docstring
    mean, std = channel_stats(data["x_train"])               # training split only
    x_tr, y_tr, x_val, y_val = train_val_split(data["x_train"], data["y_train"], 5000)
    x_tr = standardize(x_tr, mean, std)                      # (45000, 32, 32, 3) float32
    loader = BatchLoader(x_tr, y_tr, 512, seed=0, augment=CropFlip(len(x_tr)))
"""
from .cifar10 import (CLASS_NAMES, DatasetError, DatasetNotFoundError, cache_dir, find_in,
                      load_cifar10, read_cifar10)
from .download import download_cifar10, download_file, md5_file, safe_extract
from .loader import BatchLoader, iterate_batches
from .safe_pickle import RestrictedUnpickler
from .transforms import (CropFlip, alternating_flip, channel_stats, crop_flip,
                         crop_flip_reference, draw_flip_mask, random_crop, random_crop_flip,
                         random_flip, standardize, train_val_split)
