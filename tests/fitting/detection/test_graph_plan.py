"""`ConvGraph`'s execution plan: the outputs of the layer-by-layer interpreter it replaced (out of
place, every tensor kept to the end), to the bit, with its in-place adds, relus and channel pads;
rebuilt after ``.to()``; left out of pickles."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torch.nn.functional as F

from affectsynth.fitting.detection.blazeface import DATA_DIR
from affectsynth.fitting.detection.graph import (_NHWC_TO_NCHW, _act, _depth_to_space, _fast_layout, _from_tf, _gather,
                                                 _pad_channels, _resize_bilinear, _to_tf, _value, load_graph)

NETWORKS = [("mediapipe_face_landmark_with_attention", 192), ("mediapipe_face_detection_short_range", 128),
            ("mediapipe_face_detection_full_range", 192)]


def _interpret(net, x: torch.Tensor) -> list[torch.Tensor]:
    """The layers run by looking each one up in turn, as `ConvGraph._run` did before its plan."""
    env = {net.layers[-1]["input"]: _fast_layout(x)}
    for spec in net.layers:
        op = spec["op"]
        if op == "outputs":
            return [_to_tf(_value(env[i])) for i in spec["xs"]]
        if op == "fused":
            y = _gather(env, spec["x"])
            if spec["kind"] == "add":
                y = _act(y + _gather(env, spec["y"]), spec["act"])
            elif spec["kind"] == "pad":
                y = _pad_channels(y, len(spec["outs"]), *spec["channel_pad"])
            else:
                y = net.modules_[spec["index"]](y)
            width = y.shape[1] // len(spec["outs"])
            for m, out in enumerate(spec["outs"]):
                env[out] = (y, m * width, (m + 1) * width)
            continue
        module = net.modules_[str(spec["index"])] if str(spec["index"]) in net.modules_ else None
        if op in ("add", "mul"):
            like = _value(env[spec["x"] if isinstance(spec["x"], int) else spec["y"]])
            a, b = (_value(env[r]) if isinstance(r, int) else net._constant(r, like) for r in (spec["x"], spec["y"]))
            y = _act(a + b if op == "add" else a * b, spec["act"])
        elif op == "relu":
            y = torch.relu(_value(env[spec["x"]]))
        elif op == "pad":
            p = spec["paddings"]
            y = F.pad(_value(env[spec["x"]]), (p[2][0], p[2][1], p[1][0], p[1][1], p[3][0], p[3][1]))
        elif op == "reshape":
            src = _value(env[spec["x"]])
            y = _from_tf(_to_tf(src).reshape(src.shape[0], *spec["shape"][1:]))
        elif op == "concatenation":
            axis = _NHWC_TO_NCHW[spec["axis"] % 4] if spec["rank"] == 4 else spec["axis"]
            y = _act(torch.cat([_value(env[i]) for i in spec["xs"]], dim=axis), spec["act"])
        elif op == "resize_bilinear":
            y = _resize_bilinear(_value(env[spec["x"]]), spec["size"], spec["align_corners"], spec["half_pixel_centers"])
        elif op == "depth_to_space":
            y = _depth_to_space(_value(env[spec["x"]]), spec["block"])
        elif op == "transform_tensor":
            y = _fast_layout(module(_value(env[spec["x"]]), _value(env[spec["matrix"]])))
        elif op == "transform_landmarks":
            y = module(_value(env[spec["x"]]), _value(env[spec["matrix"]]))
        else:  # conv, max_pool_2d, prelu, landmarks_to_matrix
            y = module(_value(env[spec["x"]]))
        env[spec["out"]] = y
    raise AssertionError("no outputs entry")


@pytest.mark.parametrize("name, size", NETWORKS)
def test_plan_gives_the_interpreters_outputs_to_the_bit(name, size):
    net = load_graph(DATA_DIR / f"{name}.npz")
    x = torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(0))
    kept = x.clone()
    with torch.no_grad():
        planned, interpreted = net(x), _interpret(net, x)
    assert torch.equal(x, kept)  # the layers that work in place leave the caller's input alone
    assert len(planned) == len(interpreted)
    for a, b in zip(planned, interpreted):
        assert torch.equal(a, b)


def test_plan_is_rebuilt_after_to_and_left_out_of_pickles():
    net = load_graph(DATA_DIR / "mediapipe_face_detection_short_range.npz")
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = net(x)
        assert net._plan is not None
        net.double()  # constants and weights are new tensors: a plan holding the old ones would mix dtypes
        assert net._plan is None
        doubled = net(x.double())
        net.float()
        restored = pickle.loads(pickle.dumps(net))
        assert restored._plan is None
        for copied in (restored, copy.deepcopy(net)):
            for a, b in zip(before, copied(x)):
                assert torch.equal(a, b)
    for a, b in zip(before, doubled):
        assert b.dtype == torch.float64
        torch.testing.assert_close(a, b.float(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name, size", NETWORKS)
def test_some_outputs_alone_are_the_whole_networks_to_the_bit(name, size):
    """``forward(x, outputs=...)`` runs only the layers those outputs need (the face mesh's backbone
    without its attention branches), and gives them the values of the whole network."""
    net = load_graph(DATA_DIR / f"{name}.npz")
    x = torch.rand(5, 3, size, size, generator=torch.Generator().manual_seed(3))  # 5: chunks of 4 and 1
    wanted = (net.output_names[-1], net.output_names[0])
    with torch.no_grad():
        whole = net(x)
        some = net(x, outputs=wanted)
    assert len(some) == 2
    assert torch.equal(some[0], whole[-1]) and torch.equal(some[1], whole[0])
    if name == "mediapipe_face_landmark_with_attention":  # the backbone alone: about half the layers
        assert len(net._partial_plans[wanted][0]) < 0.6 * len(net._plan[0])
    with pytest.raises(ValueError, match="outputs"):
        net(x, outputs=("no_such_output",))
    net.double()
    assert net._partial_plans == {}


@pytest.mark.parametrize("name, size", NETWORKS)
def test_input_written_in_the_networks_layout_gives_the_same_outputs(name, size):
    """An input written into `empty_input` (no layout copy when the network starts) gives the outputs of
    the same values in the default layout, to the bit."""
    from affectsynth.fitting.detection.graph import empty_input

    net = load_graph(DATA_DIR / f"{name}.npz")
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(4))
    laid = empty_input(x).copy_(x)
    assert laid.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        for a, b in zip(net(x), net(laid)):
            assert torch.equal(a, b)


def test_fused_add_relu_keeps_the_add_then_relu_values():
    """`_add_act` with a relu gives an add followed by a relu to the bit, signed zeros and NaN included,
    in place and not, on dense tensors (torch's one-pass add + relu) and on others (the two ops);
    and short-range's add + RELU layer pairs are one layer."""
    from affectsynth.fitting.detection.graph import _add_act, _vector_loop_only

    g = torch.Generator().manual_seed(5)
    for shape in ((2, 24, 16, 16), (2, 23, 17, 19)):  # a whole number of vector steps; a scalar tail
        a, b = torch.randn(2, *shape, generator=g)
        a.view(-1)[:40], b.view(-1)[:40] = -0.0, -0.0
        a.view(-1)[-8:], b.view(-1)[-8:] = -0.0, -0.0
        a.view(-1)[40:50], a.view(-1)[-12:-9] = float("nan"), float("nan")
        assert _vector_loop_only(a, b) == (shape[1] == 24)
        want = torch.relu(a + b)
        for got in (_add_act(a, b, "relu"), _add_act(a.clone(), b, "relu", inplace=True),
                    _add_act(a.contiguous(memory_format=torch.channels_last), b.contiguous(memory_format=torch.channels_last), "relu")):
            assert torch.equal(torch.nan_to_num(got, nan=7.0), torch.nan_to_num(want, nan=7.0))
            assert torch.equal(torch.signbit(got), torch.signbit(want))
    net = load_graph(DATA_DIR / "mediapipe_face_detection_short_range.npz")
    assert not any(spec["op"] == "add" and spec["act"] is None for spec in net.layers)
