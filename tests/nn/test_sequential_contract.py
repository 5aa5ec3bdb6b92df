"""The declared layer contract as Sequential uses it: needs_input_grad, fusion as a
visible step, parameter roles, and summary(paths=True) showing the one dispatch rule."""
import re

import numpy as np
import pytest

import minicnn as mc
from minicnn.fast.rules import CONV2D_RULE, conv_path, conv_paths, conv_shape
from minicnn.nn import softmax_cross_entropy
from minicnn.zoo import airbench, airbench_optimizer, freeze_whiten_bias, simple


def test_first_layer_declares_it_needs_no_input_grad():
    model = simple(rng=0)
    assert model[0].needs_input_grad is False
    assert all(layer.needs_input_grad for layer in model.layers[1:])
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)
    logits = model.forward(x, training=True)
    assert model.backward(np.ones_like(logits), retain=True) is None
    dx = model.input_gradient(np.ones_like(logits))
    assert dx.shape == x.shape and np.abs(dx).sum() > 0
    assert model[0].needs_input_grad is False                 # restored


def test_fusion_is_a_planned_step_shown_in_the_summary():
    model = simple(rng=0)
    assert model.steps[:3] == [(0, 1), (2, 3, 4), (5, 6)]   # conv + ReLU (+ 2x2 max-pool)
    assert sum(len(s) for s in model.steps) == len(model)
    summary = model.summary()
    assert summary.count("[fused into") == 6                 # four ReLUs and two pools
    assert "ReLU()  [fused into 0]" in summary and "MaxPool2D(k=2, s=2)  [fused into 2]" in summary
    unfused = mc.Sequential(model.layers, fuse=False)
    assert all(len(s) == 1 for s in unfused.steps) and "fused" not in unfused.summary()


def test_fused_and_unfused_runs_give_identical_numbers():
    x = np.random.default_rng(1).standard_normal((4, 32, 32, 3)).astype(np.float32)
    labels = np.arange(4)
    results = []
    for fuse in (True, False):
        model = mc.Sequential(simple(rng=0).layers, fuse=fuse)
        loss, d = softmax_cross_entropy(model.forward(x, training=True), labels)
        model.backward(d)
        results.append((loss, [g.copy() for g in model.gradients()], model.predict(x)))
    (l1, g1, p1), (l2, g2, p2) = results
    assert l1 == l2 and np.array_equal(p1, p2)
    assert all(np.array_equal(a, b) for a, b in zip(g1, g2))


def test_only_the_exact_declared_types_fuse():
    class MyConv(mc.Conv2D):
        pass

    class MyReLU(mc.ReLU):
        pass
    assert mc.Conv2D(3, 4).can_fuse(mc.ReLU())
    assert not MyConv(3, 4).can_fuse(mc.ReLU())
    assert not mc.Conv2D(3, 4).can_fuse(MyReLU())
    assert not mc.Conv2D(3, 4).can_fuse(mc.GELU())
    assert not mc.Dense(3, 4).can_fuse(mc.ReLU())


def test_roles_are_declared_and_recipes_group_by_them():
    model = airbench((16, 32, 32), rng=0)
    roles = model.roles()
    assert roles["0.b"] == "whitening_bias" and roles["0.W"] == "whitening"
    assert roles["2.W"] == "weight" and roles["4.beta"] == "norm_shift"
    assert roles["4.gamma"] == "norm_scale"
    # the whitening layer moved to position 1: the recipe still finds its bias by role
    shifted = mc.Sequential([mc.Dropout(0.0)] + model.layers)
    opt = airbench_optimizer(shifted, batch_size=512)
    names = [[n for n, _, _ in g["params"]] for g in opt.param_groups]
    norm, whiten, rest = names
    assert whiten == ["1.b"]
    assert all(shifted.roles()[n] == "norm_shift" for n in norm) and len(norm) == 6
    assert "1.b" not in rest and all(shifted.roles()[n] == "weight" for n in rest)

    class FakeTrainer:
        optimizer, model = opt, shifted
    hook = freeze_whiten_bias(epochs=3)
    hook(FakeTrainer, 3)
    assert opt.param_groups[1]["lr_scale"] == 0.0 and opt.param_groups[0]["lr_scale"] == 64.0


def test_summary_paths_are_the_rule_of_each_conv():
    model = airbench((64, 256, 256), rng=0)
    text = model.summary(paths=True, batch_size=1024)
    assert "backend: fast, batch 1024" in text
    lines = {line.split()[0]: line for line in text.splitlines()[2:] if line[:1].isdigit()}
    shape = (1024, 32, 32, 3)
    for i, layer in enumerate(model.layers):
        if isinstance(layer, mc.Conv2D):
            paths = conv_paths(layer, shape)
            columns = re.split(r"\s{2,}", lines[str(i)].strip())[-3:]
            if i == 0:                                           # frozen whitening W, first layer
                assert columns == [paths["forward"], "-", "db only"]
            else:
                assert columns == [paths["forward"], paths["dx"], paths["dW"]]
        shape = (1024,) + layer.output_shape(shape[1:])
    assert lines["13"].split()[-3:] == ["winograd"] * 3                  # 256->256 @7x7
    small = model.summary(paths=True, batch_size=8).splitlines()          # too few tiles
    assert next(l for l in small if l.startswith("13 ")).split()[-3:] == ["winograd", "winograd", "taps"]
    at_128 = model.summary(paths=True, batch_size=128).splitlines()       # 512 tiles: enough
    assert next(l for l in at_128 if l.startswith("13 ")).split()[-3:] == ["winograd"] * 3
    assert lines["20"].split()[-3:] == ["shifts", "shifts", "shifts"]     # 256->256 @3x3
    with mc.use_backend("reference"):
        ref = model.summary(paths=True)
    assert "winograd" not in ref and "reference" in ref


def test_the_rule_table_reads_top_to_bottom():
    for pass_name, rows in CONV2D_RULE.items():
        assert rows[-1][0] in ("im2col", "col2im") and rows[-1][1](None, None)   # catch-all last
    thin = mc.Conv2D(32, 32, 3, rng=0)
    wide = mc.Conv2D(256, 256, 3, rng=0)
    strided = mc.Conv2D(16, 32, 3, stride=2, rng=0)
    assert conv_paths(thin, (8, 32, 32, 32)) == {"forward": "winograd", "dx": "winograd",
                                                 "dW": "winograd"}
    assert conv_paths(thin.to(np.float64), (8, 32, 32, 32)) == {"forward": "im2col",
                                                                "dx": "im2col", "dW": "im2col"}
    assert conv_paths(thin, (8, 16, 16, 32)) == {"forward": "taps", "dx": "taps", "dW": "taps"}
    assert conv_paths(wide, (8, 7, 7, 256))["dW"] == "taps"          # C * F above the dW limit
    assert conv_paths(strided, (8, 16, 16, 16))["dx"] == "col2im"
    thin32 = mc.Conv2D(32, 32, 3, rng=0)
    thin32.allow_winograd = False
    assert conv_paths(thin32, (8, 32, 32, 32))["forward"] == "direct"
    thin32.allow_direct, thin32.taps_min_padding = False, 2.0
    assert conv_paths(thin32, (8, 32, 32, 32))["forward"] == "im2col"
    thin32.forced_paths = {"forward": "taps"}
    s = conv_shape(thin32, (8, 32, 32, 32), np.float32)
    assert conv_path(thin32, "forward", s) == "taps" and conv_path(thin32, "dW", s) == "im2col"


@pytest.mark.parametrize("fuse", [True, False])
def test_predict_matches_an_eval_forward_with_and_without_fusion(fuse):
    model = mc.Sequential(simple(rng=0).layers, fuse=fuse)
    x = np.random.default_rng(2).standard_normal((6, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x, batch_size=6), model.forward(x))


def test_hooks_see_every_layer_output_and_output_gradient():
    model = simple(rng=0)
    x = np.random.default_rng(3).standard_normal((2, 32, 32, 3)).astype(np.float32)
    plain = model.forward(x, training=True)
    outputs, grads = {}, {}
    model.forward_hooks.append(lambda i, layer, y: outputs.__setitem__(i, y.copy()))
    model.backward_hooks.append(lambda i, layer, dy: grads.__setitem__(i, dy.copy()))
    hooked = model.forward(x, training=True)
    np.testing.assert_array_equal(hooked, plain)           # unfused while hooked: same numbers
    assert sorted(outputs) == list(range(len(model)))
    np.testing.assert_array_equal(outputs[1], np.maximum(outputs[0], 0))   # conv, then its ReLU
    np.testing.assert_array_equal(outputs[len(model) - 1], hooked)
    dlogits = np.ones_like(hooked)
    model.backward(dlogits)
    assert sorted(grads) == list(range(len(model)))
    np.testing.assert_array_equal(grads[len(model) - 1], dlogits)
    assert grads[0].shape == outputs[0].shape                 # dL/d(conv 0 output)


def test_layers_before_the_first_with_params_skip_their_input_grad():
    model = mc.Sequential([mc.Flatten(), mc.Dense(12, 4, rng=0), mc.ReLU(), mc.Dense(4, 3, rng=0)])
    assert [layer.needs_input_grad for layer in model] == [False, False, True, True]
    x = np.random.default_rng(0).standard_normal((5, 2, 2, 3)).astype(np.float32)
    logits = model.forward(x, training=True)
    seen = []
    model.backward_hooks.append(lambda i, layer, dy: seen.append(i))
    assert model.backward(np.ones_like(logits), retain=True) is None
    assert seen == [3, 2, 1]                                  # Flatten's backward is not run
    dx = model.input_gradient(np.ones_like(logits))
    assert dx.shape == x.shape and np.abs(dx).sum() > 0
    assert [layer.needs_input_grad for layer in model] == [False, False, True, True]


def saved_arrays(model):
    """The arrays the layers hold for backward (every attribute named in ``cached``)."""
    return [(i, attr) for i, layer in enumerate(model.layers) for attr in layer.cached
            if isinstance(getattr(layer, attr, None), np.ndarray)]


def test_backward_lets_go_of_what_forward_kept_and_a_second_backward_says_why():
    model = airbench(widths=(8, 16, 16), rng=0)
    x = np.random.default_rng(2).standard_normal((4, 32, 32, 3)).astype(np.float32)
    logits = model.forward(x, training=True)
    assert len(saved_arrays(model)) >= 10                    # convs, BN, GELU, pools hold inputs
    model.backward(np.ones_like(logits))
    assert saved_arrays(model) == []
    with pytest.raises(RuntimeError, match="backward already ran.*retain=True"):
        model.backward(np.ones_like(logits))
    with pytest.raises(RuntimeError, match="backward already ran"):
        model.input_gradient(np.ones_like(logits))
    model.forward(x, training=True)                          # a new forward: backward works again
    model.backward(np.ones_like(logits))


def test_retain_keeps_the_saved_inputs_and_a_second_backward_gives_the_same_gradients():
    model = airbench(widths=(8, 16, 16), rng=0)
    x = np.random.default_rng(3).standard_normal((4, 32, 32, 3)).astype(np.float32)
    logits = model.forward(x, training=True)
    dlogits = np.random.default_rng(4).standard_normal(logits.shape).astype(np.float32)
    model.backward(dlogits, retain=True)
    assert len(saved_arrays(model)) >= 10                    # nothing let go
    first = {name: g.copy() for name, _, g in model.named_parameters()}
    model.backward(dlogits)
    for name, _, g in model.named_parameters():
        np.testing.assert_array_equal(g, first[name], err_msg=name)
    assert saved_arrays(model) == []
