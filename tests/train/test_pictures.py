"""minicnn.train.pictures: saliency against central differences, Grad-CAM against the
closed form it reduces to (CAM) on a global-average-pooling net, and every plot a
non-blank PNG."""
import numpy as np
import pytest
from PIL import Image

import minicnn as mc
from minicnn.train import pictures
from minicnn.zoo import airbench

NAMES = ["c0", "c1", "c2"]


def tiny_net(dtype=np.float64):
    """conv, ReLU, max-pool, conv, ReLU, flatten, dense: 8x8x3 images, 3 classes."""
    return mc.Sequential([
        mc.Conv2D(3, 4, 3, padding="same", rng=1), mc.ReLU(), mc.MaxPool2D(2),
        mc.Conv2D(4, 5, 3, padding="same", rng=2), mc.ReLU(), mc.Flatten(),
        mc.Dense(4 * 4 * 5, 3, rng=3)]).to(dtype)


def cam_net():
    """conv, ReLU, conv, ReLU, global average pool, dense: Grad-CAM equals CAM here."""
    return mc.Sequential([
        mc.Conv2D(3, 4, 3, padding="same", rng=4), mc.ReLU(),
        mc.Conv2D(4, 6, 3, padding="same", rng=5), mc.ReLU(),
        mc.GlobalAvgPool2D(), mc.Dense(6, 3, rng=6)]).to(np.float64)


def check_png(path):
    """A PNG with more than one colour in it (something was drawn). Returns its pixels."""
    with Image.open(path) as im:
        assert im.format == "PNG"
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.shape[0] > 50 and pixels.shape[1] > 50
    assert pixels.reshape(-1, 3).std(axis=0).max() > 5, f"{path} is blank"
    return pixels


# -- computations -----------------------------------------------------------------------------
def test_saliency_equals_central_differences():
    model = tiny_net()
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3))
    classes = np.array([2, 0])
    maps = pictures.saliency(model, x, classes)
    assert maps.shape == x.shape and maps.dtype == np.float64 and (maps >= 0).all()
    eps = 1e-6
    for n, h, w, c in [(0, 0, 0, 0), (0, 3, 5, 1), (1, 7, 2, 2), (1, 4, 4, 0), (0, 6, 1, 2)]:
        plus, minus = x.copy(), x.copy()
        plus[n, h, w, c] += eps
        minus[n, h, w, c] -= eps
        score_plus = model.forward(plus)[n, classes[n]]
        score_minus = model.forward(minus)[n, classes[n]]
        numeric = abs(score_plus - score_minus) / (2 * eps)
        assert maps[n, h, w, c] == pytest.approx(numeric, rel=1e-5, abs=1e-9), (n, h, w, c)
    assert maps.max() > 0


def test_saliency_of_one_image_ignores_the_others():
    model = tiny_net()
    x = np.random.default_rng(1).standard_normal((3, 8, 8, 3))
    alone = pictures.saliency(model, x[1:2], 1)
    together = pictures.saliency(model, x, [0, 1, 2])
    np.testing.assert_allclose(together[1], alone[0], rtol=1e-12)


def test_grad_cam_equals_cam_after_global_average_pooling():
    # logit_k = sum_c Wd[c, k] * mean_hw A[h, w, c] + b_k, so d logit_k / dA = Wd[c, k] / (h w)
    # everywhere, the Grad-CAM weights are Wd[:, k] / (h w) and the map is
    # ReLU(sum_c Wd[c, k] / (h w) * A_c), at the input's size (no upsampling needed).
    model = cam_net()
    x = np.random.default_rng(2).standard_normal((2, 8, 8, 3))
    classes = np.array([1, 2])
    cam, layer = pictures.grad_cam(model, x, classes)
    assert layer == 3 and cam.shape == (2, 8, 8)
    A = pictures.layer_outputs(model, x)[3]                          # (2, 8, 8, 6)
    Wd = model.layers[5].params["W"]                                 # (6, 3)
    expected = np.maximum(np.einsum("nhwc,cn->nhw", A, Wd[:, classes]) / 64, 0)
    np.testing.assert_allclose(cam, expected, rtol=1e-10, atol=1e-14)
    assert (cam >= 0).all() and cam.max() > 0


def test_grad_cam_on_airbench_is_upsampled_and_non_negative():
    model = airbench((4, 8, 8), rng=0)
    x = np.random.default_rng(3).standard_normal((3, 32, 32, 3)).astype(np.float32)
    cam, layer = pictures.grad_cam(model, x, [0, 5, 9])
    assert cam.shape == (3, 32, 32) and cam.dtype == np.float32
    assert (cam >= 0).all() and np.isfinite(cam).all() and cam.max() > 0
    shape = (32, 32, 3)
    for i in range(layer + 1):
        shape = model.layers[i].output_shape(shape)
    assert shape == (3, 3, 8)                          # the last block's maps, before the pool
    assert model.forward_hooks == [] and model.backward_hooks == []   # hooks removed


def test_grad_cam_refuses_a_layer_without_maps():
    model = tiny_net()
    x = np.zeros((1, 8, 8, 3))
    with pytest.raises(ValueError, match="expected feature maps"):
        pictures.grad_cam(model, x, 0, layer_index=6)
    with pytest.raises(ValueError, match=r"classes must be in \[0, 2\]"):
        pictures.grad_cam(model, x, 3)


def test_upsample_bilinear_keeps_constants_and_interpolates():
    flat = np.full((2, 3, 3), 7.0)
    np.testing.assert_allclose(pictures.upsample_bilinear(flat, (32, 32)), 7.0)
    ramp = np.array([[[0.0, 1.0]]])                                   # (1, 1, 2)
    up = pictures.upsample_bilinear(ramp, (1, 4))
    np.testing.assert_allclose(up[0, 0], [0.0, 0.25, 0.75, 1.0])


def test_layer_outputs_have_every_layers_shape():
    model = airbench((4, 8, 8), rng=0)
    outputs = pictures.layer_outputs(model, np.zeros((2, 32, 32, 3), np.float32))
    assert len(outputs) == len(model)
    shape = (32, 32, 3)
    for layer, y in zip(model, outputs):
        shape = layer.output_shape(shape)
        assert y.shape == (2,) + shape
    assert model.forward_hooks == []


def test_worst_misclassified_orders_by_confidence():
    probs = np.array([[0.9, 0.1, 0.0],     # right
                      [0.2, 0.7, 0.1],     # wrong, 0.7
                      [0.05, 0.05, 0.9],   # wrong, 0.9
                      [0.4, 0.6, 0.0],     # wrong, 0.6
                      [0.1, 0.8, 0.1]])    # right
    y = np.array([0, 0, 1, 2, 1])
    np.testing.assert_array_equal(pictures.worst_misclassified(y, probs, 2), [2, 1])
    np.testing.assert_array_equal(pictures.worst_misclassified(y, probs, 10), [2, 1, 3])
    assert len(pictures.worst_misclassified(probs.argmax(1), probs)) == 0


# -- plots --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained_looking():
    model = airbench((4, 8, 8), rng=0)
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    x = (images.astype(np.float32) / 255 - 0.5) / 0.25
    return model, images, x


def test_plot_filters_draws_the_first_convs_filters(tmp_path, trained_looking):
    model = trained_looking[0]
    assert pictures.first_conv(model)[0] == 0
    pixels = check_png(pictures.plot_filters(model, tmp_path / "filters.png"))
    assert (np.abs(np.diff(pixels.astype(int), axis=2)).sum(axis=2) > 30).any()   # colour
    check_png(pictures.plot_filters(tiny_net(), tmp_path / "filters_small.png"))
    with pytest.raises(ValueError, match="no Conv2D"):
        pictures.first_conv(mc.Sequential([mc.Flatten(), mc.Dense(3, 2)]))


def test_plot_feature_maps_has_a_row_per_layer(tmp_path, trained_looking):
    model, images, x = trained_looking
    path = pictures.plot_feature_maps(model, images[0], x[0], tmp_path / "maps.png",
                                      class_names=[f"k{i}" for i in range(10)])
    pixels = check_png(path)
    assert pixels.shape[0] > 60 * len(model)            # about 76 pixels a row at 80 dpi
    assert model.forward_hooks == []


def test_plot_saliency_and_grad_cam(tmp_path, trained_looking):
    model, images, x = trained_looking
    maps = pictures.saliency(model, x, [1, 2, 3, 4])
    check_png(pictures.plot_saliency(images, maps, ["a", "b", "c", "d"], tmp_path / "s.png"))
    cams, _ = pictures.grad_cam(model, x, [1, 2, 3, 4])
    check_png(pictures.plot_grad_cam(images, cams, ["a", "b", "c", "d"], tmp_path / "g.png"))
    zero = np.zeros_like(cams)
    check_png(pictures.plot_grad_cam(images, zero, ["a", "b", "c", "d"], tmp_path / "z.png"))
    with pytest.raises(ValueError, match="expected 4 images"):
        pictures.plot_saliency(images[:3], maps, ["a"] * 3, tmp_path / "bad.png")


def test_plot_misclassified_and_class_metrics(tmp_path, trained_looking):
    images = trained_looking[1]
    probs = np.array([[0.1, 0.2, 0.7], [0.5, 0.4, 0.1], [0.3, 0.3, 0.4], [0.0, 1.0, 0.0]])
    check_png(pictures.plot_misclassified(images, [0, 1, 0, 2], probs, NAMES,
                                          tmp_path / "wrong.png"))
    per_class = {"precision": [0.9, 0.5, 0.1], "recall": [0.8, 0.6, 0.2], "f1": [0.85, 0.55, 0.13]}
    check_png(pictures.plot_class_metrics(per_class, NAMES, tmp_path / "bars.png"))
    with pytest.raises(ValueError, match=r"per_class\['recall'\] must hold 3 values"):
        pictures.plot_class_metrics(dict(per_class, recall=[0.1]), NAMES, tmp_path / "x.png")
    with pytest.raises(ValueError, match="no images"):
        pictures.plot_misclassified(images[:0], [], probs[:0], NAMES, tmp_path / "none.png")
