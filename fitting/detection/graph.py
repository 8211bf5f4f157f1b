"""A converted MediaPipe network as a torch module: a list of layers wired by tensor ids.

The layer list and weights come from `scripts/convert_mediapipe_models.py` (an `.npz` per model).
Each layer is a plain torch module (`nn.Conv2d`, PReLU, max pooling, the attention ops of
`tflite_ops`); `ConvGraph.forward` runs them in order on a batch. Four-dimensional activations are
kept channels-first ([B, C, H, W]); other tensors keep MediaPipe's layout ([B, N, 3] landmarks,
[B, 4, 4] matrices), so reshapes and concatenations read TFLite's NHWC order where it matters.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from affectsynth.fitting.detection import tflite_ops

__all__ = ["ConvGraph", "load_graph", "optimize_for_cpu"]

_NHWC_TO_NCHW = {0: 0, 1: 2, 2: 3, 3: 1}


def _same_pad(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (before, after) along one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _act(x: Tensor, name: str | None) -> Tensor:
    if name is None:
        return x
    if name == "relu":
        return torch.relu(x)
    if name == "relu6":
        return torch.clamp(x, 0.0, 6.0)
    raise ValueError(f"ConvGraph: unknown activation {name!r}")


class _Conv(nn.Module):
    """CONV_2D / DEPTHWISE_CONV_2D with TFLite padding and fused activation.

    Holds the converted weights as its parameters and calls `F.conv2d` itself: an `nn.Conv2d` would
    first fill random weights that the loaded ones overwrite (about a third of building a network).
    """

    def __init__(self, spec: dict, weight: np.ndarray, bias: np.ndarray, *, groups: int = 1):
        super().__init__()
        w = torch.from_numpy(weight.astype(np.float32))
        if spec["depthwise"]:  # [1, kh, kw, C] -> [C, 1, kh, kw]
            w = w.permute(3, 0, 1, 2).contiguous()
            self.groups = w.shape[0]
        else:  # OHWI -> OIHW; ``groups`` convolutions side by side (`ConvGraph`'s fused branches)
            w = w.permute(0, 3, 1, 2).contiguous()
            self.groups = groups
        # channels-last like the activations on the CPU (`_fast_layout`): not converted on every call
        self.weight = nn.Parameter(w.contiguous(memory_format=torch.channels_last), requires_grad=False)
        self.bias = nn.Parameter(torch.from_numpy(bias.astype(np.float32)), requires_grad=False)
        self.kernel_size = tuple(w.shape[2:])
        self.stride, self.dilation = tuple(spec["stride"]), tuple(spec["dilation"])
        self.padding = (0, 0)
        self.same = spec["padding"] == "same"
        self.act = spec["act"]
        total = [(k - 1) * d for k, d in zip(self.kernel_size, self.dilation)]
        if self.same and self.stride == (1, 1) and total[0] % 2 == 0 and total[1] % 2 == 0:
            # SAME at stride 1 with an odd kernel pads (k - 1) / 2 each side whatever the size: the conv pads itself
            self.padding, self.same = (total[0] // 2, total[1] // 2), False

    def absorb_padding(self, ph: int, pw: int) -> None:
        """Take over a preceding symmetric zero PAD of (ph, pw) pixels (one layer instead of two)."""
        self.padding = (ph, pw)

    def signature(self) -> tuple:
        """Everything but the weights' values: equal signatures run as one grouped convolution."""
        return ("conv", self.groups > 1, tuple(self.weight.shape), self.stride, self.dilation, self.padding, self.same, self.act)

    def forward(self, x: Tensor) -> Tensor:
        if self.same:
            kh, kw = self.kernel_size
            (t, b), (l, r) = (_same_pad(x.shape[2], kh, self.stride[0], self.dilation[0]),
                              _same_pad(x.shape[3], kw, self.stride[1], self.dilation[1]))
            if t or b or l or r:
                x = F.pad(x, (l, r, t, b))
        return _act(F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups), self.act)


class _MaxPool(nn.Module):
    def __init__(self, spec: dict):
        super().__init__()
        self.kernel, self.stride, self.same, self.act = tuple(spec["kernel"]), tuple(spec["stride"]), spec["padding"] == "same", spec["act"]

    def forward(self, x: Tensor) -> Tensor:
        if self.same:
            (t, b), (l, r) = (_same_pad(x.shape[2], self.kernel[0], self.stride[0], 1),
                              _same_pad(x.shape[3], self.kernel[1], self.stride[1], 1))
            if t or b or l or r:
                x = F.pad(x, (l, r, t, b), value=float("-inf"))
        return _act(F.max_pool2d(x, self.kernel, self.stride), self.act)


class _PReLU(nn.Module):
    def __init__(self, alpha: np.ndarray):
        super().__init__()
        a = torch.from_numpy(alpha.astype(np.float32)).reshape(-1)
        self.alpha = nn.Parameter(a.reshape(1, -1, 1, 1), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.prelu(x, self.alpha.reshape(-1))


def _to_tf(x: Tensor) -> Tensor:
    return x.permute(0, 2, 3, 1) if x.ndim == 4 else x


def _from_tf(x: Tensor) -> Tensor:
    return x.permute(0, 3, 1, 2) if x.ndim == 4 else x


def _resize_bilinear(x: Tensor, size: list[int], align_corners: bool, half_pixel: bool) -> Tensor:
    """TFLite RESIZE_BILINEAR on [B, C, H, W] (its three sampling conventions)."""
    if align_corners or half_pixel:
        return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=align_corners)
    out = x
    for axis, new in ((2, size[0]), (3, size[1])):  # legacy: src = dst * in / out, clamped
        old = out.shape[axis]
        pos = torch.arange(new, device=x.device, dtype=torch.float32) * (old / new)
        lo = pos.floor().long().clamp(max=old - 1)
        hi = (lo + 1).clamp(max=old - 1)
        frac = (pos - lo.to(pos.dtype)).to(x.dtype)
        shape = [1] * out.ndim
        shape[axis] = new
        frac = frac.reshape(shape)
        out = out.index_select(axis, lo) * (1 - frac) + out.index_select(axis, hi) * frac
    return out


def _fast_layout(x: Tensor) -> Tensor:
    """``x`` in channels-last memory on the CPU, where oneDNN's depthwise convolutions and max pooling are
    several times faster than on channels-first memory (values and shapes stay [B, C, H, W])."""
    return x.contiguous(memory_format=torch.channels_last) if x.device.type == "cpu" else x


def _depth_to_space(x: Tensor, block: int) -> Tensor:
    """TFLite DEPTH_TO_SPACE on [B, C, H, W]: channel (i * block + j) * C' + c -> pixel offset (i, j)."""
    b, c, h, w = x.shape
    cout = c // (block * block)
    x = x.reshape(b, block, block, cout, h, w).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(b, cout, h * block, w * block)


def _inputs(spec: dict) -> list[int]:
    """The tensor ids a layer reads."""
    return [spec[key] for key in ("x", "y", "matrix") if isinstance(spec.get(key), int)] + list(spec.get("xs", []))


def _value(v: Tensor | tuple[Tensor, int, int]) -> Tensor:
    """A tensor of `ConvGraph.forward`'s environment: itself, or its channels of a fused branch tensor."""
    return v if isinstance(v, Tensor) else v[0][:, v[1]:v[2]]


def _gather(env: dict, ids: list[int]) -> Tensor:
    """Tensors ``ids`` side by side along the channels: a fused tensor as it is when they are its
    branches in order, else their concatenation."""
    vals = [env[i] for i in ids]
    if all(isinstance(v, tuple) and v[0] is vals[0][0] for v in vals):
        bounds = [b for v in vals for b in v[1:]]
        if bounds[0] == 0 and bounds[-1] == vals[0][0].shape[1] and all(a == b for a, b in zip(bounds[1:-1:2], bounds[2:-1:2])):
            return vals[0][0]
    return torch.cat([_value(v) for v in vals], 1)


def _pad_channels(x: Tensor, branches: int, before: int, after: int) -> Tensor:
    """Zero channels before and after each of ``branches`` equal channel blocks of [B, C, H, W] ``x``."""
    b, c, h, w = x.shape
    y = F.pad(x.reshape(b, branches, c // branches, h, w), (0, 0, 0, 0, before, after))
    return _fast_layout(y.reshape(b, branches * (c // branches + before + after), h, w))


#: Images per network call on the CPU: the activations of a few images stay in the caches, those of
#: more do not (one thread, ms per image over 8 images in calls of 1, 2, 4, 8: short-range detector
#: 2.85, 2.33, 2.34, 4.49; face mesh 8.0, 5.2, 4.1, 7.3; full-range detector 8.3, 6.5, 6.1, 10.1).
CPU_BATCH = 4


class ConvGraph(nn.Module):
    """One converted network: runs its layers in order on a batch.

    Args:
        layers: the converter's layer list (dicts with "op", tensor ids and options).
        constants: constant name ("c<id>") -> array, as stored in the `.npz`.
        fuse_branches: run parallel branches as one (`_fuse_branches`); False runs every converted
            layer on its own, in the converter's order (the reference the fused graph is tested against).

    Note:
        Inputs are [B, 3, H, W] float32 in the model's value range; outputs are in the order the
        TFLite model lists them, with 4-D outputs back in MediaPipe's NHWC layout.
    """

    def __init__(self, layers: list[dict], constants: dict[str, np.ndarray], *, fuse_branches: bool = True):
        super().__init__()
        self.layers = layers
        self.modules_ = nn.ModuleDict()
        self._const_names: dict[str, str] = {}
        for k, spec in enumerate(layers):
            op = spec["op"]
            if op == "conv":
                self.modules_[str(k)] = _Conv(spec, constants[spec["weight"]], constants[spec["bias"]])
            elif op == "max_pool_2d":
                self.modules_[str(k)] = _MaxPool(spec)
            elif op == "prelu":
                self.modules_[str(k)] = _PReLU(constants[spec["alpha"]])
            elif op in ("add", "mul"):
                for key in ("x", "y"):
                    if isinstance(spec[key], str) and spec[key] not in self._const_names:
                        name = f"const_{spec[key]}"
                        self.register_buffer(name, torch.from_numpy(constants[spec[key]].astype(np.float32)), persistent=False)
                        self._const_names[spec[key]] = name
            elif op == "landmarks_to_matrix":
                self.modules_[str(k)] = tflite_ops.LandmarksToMatrix(
                    spec["subset"], spec["left"], spec["right"], spec["target_rotation"], tuple(spec["out_size"]), tuple(spec["scale"]))
            elif op == "transform_tensor":
                self.modules_[str(k)] = tflite_ops.TransformTensorBilinear(tuple(spec["size"]))
            elif op == "transform_landmarks":
                self.modules_[str(k)] = tflite_ops.TransformLandmarks()
        if layers[-1]["op"] != "outputs":
            raise ValueError("ConvGraph: the layer list must end with an 'outputs' entry")
        self._fold_padding()
        if fuse_branches:
            self._fuse_branches(constants)
        else:
            self.layers = [{**spec, "index": k} for k, spec in enumerate(self.layers) if spec["op"] != "skip"]
        self.output_names: list[str] = layers[-1]["names"]

    def _fold_padding(self) -> None:
        """Fuse each symmetric zero PAD that feeds only a VALID convolution into that convolution."""
        uses: dict[int, int] = {}
        for spec in self.layers:
            for key in ("x", "y", "matrix"):
                if isinstance(spec.get(key), int):
                    uses[spec[key]] = uses.get(spec[key], 0) + 1
            for i in spec.get("xs", []):
                uses[i] = uses.get(i, 0) + 1
        layers = list(self.layers)
        for k, spec in enumerate(layers[:-1]):
            nxt = layers[k + 1]
            if spec["op"] != "pad" or nxt["op"] != "conv" or nxt["x"] != spec["out"] or uses.get(spec["out"]) != 1:
                continue
            p = spec["paddings"]
            if nxt["padding"] != "valid" or p[0] != [0, 0] or p[3] != [0, 0] or p[1][0] != p[1][1] or p[2][0] != p[2][1]:
                continue
            self.modules_[str(k + 1)].absorb_padding(p[1][0], p[2][0])
            layers[k + 1] = {**nxt, "x": spec["x"]}
            layers[k] = {"op": "skip"}
        self.layers = layers

    def _signature(self, k: int, spec: dict) -> tuple | None:
        """What layer ``k`` computes but for its weights and inputs (None: never fused)."""
        op = spec["op"]
        if op == "conv":
            return self.modules_[str(k)].signature()
        if op == "prelu":
            return ("prelu", tuple(self.modules_[str(k)].alpha.shape))
        if op == "max_pool_2d":
            return ("max_pool_2d", tuple(spec["kernel"]), tuple(spec["stride"]), spec["padding"], spec["act"])
        if op == "add" and isinstance(spec["x"], int) and isinstance(spec["y"], int):
            return ("add", spec["act"])
        if op == "pad" and all(p == [0, 0] for p in spec["paddings"][:3]):  # channels only
            return ("pad", tuple(spec["paddings"][3]))
        return None

    def _fuse_branches(self, constants: dict[str, np.ndarray]) -> None:
        """Run parallel branches (the face mesh's lips, eyes and irises) as one: layers that are ready
        at the same step of a list scheduling, compute the same thing (`_signature`) on at least two
        distinct inputs become one "fused" layer on their inputs side by side along the channels (a
        grouped or depthwise convolution with the weights concatenated, one PReLU, pooling, add or
        per-branch pad), a fifth of the layers of the branches: their maps are at most 16 x 16, so
        each op costs mostly its call overhead. Same values, another order of the layers.
        """
        layers = [k for k, spec in enumerate(self.layers) if spec["op"] not in ("skip", "outputs")]
        producer = {self.layers[k]["out"]: k for k in layers}
        consumers: dict[int, list[int]] = {}
        waiting: dict[int, int] = {}  # per layer, its inputs not yet computed
        for k in layers:
            needs = {i for i in _inputs(self.layers[k]) if i in producer}
            waiting[k] = len(needs)
            for i in needs:
                consumers.setdefault(i, []).append(k)
        ready = [k for k in layers if not waiting[k]]
        order: list[dict] = []
        while ready:
            groups: dict[tuple, list[int]] = {}
            for k in ready:
                sig = self._signature(k, self.layers[k])
                groups.setdefault(("single", k) if sig is None else sig, []).append(k)
            for members in sorted(groups.values(), key=min):
                distinct = {tuple(_inputs(self.layers[k])) for k in members}
                if len(members) > 1 and len(distinct) > 1:
                    order.append(self._fused(members, constants))
                else:
                    order += [{**self.layers[k], "index": k} for k in members]
            following = []
            for k in ready:
                for c in consumers.get(self.layers[k]["out"], []):
                    waiting[c] -= 1
                    if not waiting[c]:
                        following.append(c)
            ready = sorted(following)
        if sum(len(spec["outs"]) if spec["op"] == "fused" else 1 for spec in order) != len(layers):
            raise ValueError("ConvGraph: the layers form a cycle")
        self.layers = order + [self.layers[-1]]

    def _fused(self, members: list[int], constants: dict[str, np.ndarray]) -> dict:
        """The "fused" layer of parallel layers ``members`` (same `_signature`); registers its module."""
        specs = [self.layers[k] for k in members]
        first, key = specs[0], f"fused_{members[0]}"
        fused = {"op": "fused", "kind": first["op"], "outs": [sp["out"] for sp in specs], "x": [sp["x"] for sp in specs],
                 "index": key}
        if first["op"] == "conv":
            conv = self.modules_[str(members[0])]
            axis = 3 if first["depthwise"] else 0  # depthwise [1, kh, kw, C]; full OHWI
            weight = np.concatenate([constants[sp["weight"]] for sp in specs], axis)
            bias = np.concatenate([constants[sp["bias"]] for sp in specs])
            module = _Conv({**first, "padding": "same" if conv.same else "valid"}, weight, bias, groups=len(specs))
            module.padding = conv.padding
            self.modules_[key] = module
        elif first["op"] == "prelu":
            self.modules_[key] = _PReLU(np.concatenate([constants[sp["alpha"]].reshape(-1) for sp in specs]))
        elif first["op"] == "max_pool_2d":
            self.modules_[key] = _MaxPool(first)
        elif first["op"] == "add":
            fused.update(y=[sp["y"] for sp in specs], act=first["act"])
        else:  # pad: per-branch channel padding
            fused["channel_pad"] = tuple(first["paddings"][3])
        return fused

    def _operand(self, env: dict[int, Tensor], ref, like: Tensor) -> Tensor:
        if isinstance(ref, int):
            return _value(env[ref])
        c = getattr(self, self._const_names[ref])
        if like.ndim == 4 and c.ndim >= 1:  # broadcast an NHWC constant onto NCHW
            c = c.reshape(*([1] * (4 - c.ndim)), *c.shape) if c.ndim < 4 else c
            c = c.permute(0, 3, 1, 2)
        return c.to(like.dtype)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Run the network; on the CPU, larger batches in chunks of `CPU_BATCH`.

        Args:
            x: [B, 3, H, W] float32 input image batch.

        Returns:
            The model's outputs, [B, ...] each, in TFLite order and layout.
        """
        if x.device.type != "cpu" or x.shape[0] <= CPU_BATCH:
            return self._run(x)
        chunks = [self._run(x[i:i + CPU_BATCH]) for i in range(0, x.shape[0], CPU_BATCH)]
        return [torch.cat(outs) for outs in zip(*chunks)]

    def _run(self, x: Tensor) -> list[Tensor]:
        """`forward` on one batch."""
        env: dict[int, Tensor | tuple[Tensor, int, int]] = {}  # fused branches: (their tensor, channel slice)
        env[self.layers[-1]["input"]] = _fast_layout(x)

        def val(i: int) -> Tensor:
            return _value(env[i])

        for spec in self.layers:
            op = spec["op"]
            if op == "outputs":
                return [_to_tf(val(i)) for i in spec["xs"]]
            k = spec["index"]
            if op == "fused":
                y = _gather(env, spec["x"])
                if spec["kind"] == "add":
                    y = _act(y + _gather(env, spec["y"]), spec["act"])
                elif spec["kind"] == "pad":
                    y = _pad_channels(y, len(spec["outs"]), *spec["channel_pad"])
                else:
                    y = self.modules_[k](y)
                width = y.shape[1] // len(spec["outs"])
                for m, out in enumerate(spec["outs"]):
                    env[out] = (y, m * width, (m + 1) * width)
                continue
            if op in ("conv", "max_pool_2d", "prelu"):
                y = self.modules_[str(k)](val(spec["x"]))
            elif op == "relu":
                y = torch.relu(val(spec["x"]))
            elif op in ("add", "mul"):
                ref = spec["x"] if isinstance(spec["x"], int) else spec["y"]
                a = self._operand(env, spec["x"], val(ref))
                b = self._operand(env, spec["y"], val(ref))
                y = _act(a + b if op == "add" else a * b, spec["act"])
            elif op == "pad":
                p = spec["paddings"]  # NHWC [[before, after]] x 4
                y = F.pad(val(spec["x"]), (p[2][0], p[2][1], p[1][0], p[1][1], p[3][0], p[3][1]))
            elif op == "reshape":
                src = val(spec["x"])
                y = _from_tf(_to_tf(src).reshape(src.shape[0], *spec["shape"][1:]))
            elif op == "concatenation":
                axis = _NHWC_TO_NCHW[spec["axis"] % 4] if spec["rank"] == 4 else spec["axis"]
                y = _act(torch.cat([val(i) for i in spec["xs"]], dim=axis), spec["act"])
            elif op == "resize_bilinear":
                y = _resize_bilinear(val(spec["x"]), spec["size"], spec["align_corners"], spec["half_pixel_centers"])
            elif op == "depth_to_space":
                y = _depth_to_space(val(spec["x"]), spec["block"])
            elif op == "landmarks_to_matrix":
                y = self.modules_[str(k)](val(spec["x"]))
            elif op == "transform_tensor":
                y = _fast_layout(self.modules_[str(k)](val(spec["x"]), val(spec["matrix"])))
            elif op == "transform_landmarks":
                y = self.modules_[str(k)](val(spec["x"]), val(spec["matrix"]))
            else:
                raise ValueError(f"ConvGraph: unknown layer op {op!r}")
            env[spec["out"]] = y
        raise ValueError("ConvGraph: no 'outputs' entry")


def load_graph(path: str | Path, *, fuse_branches: bool = True) -> ConvGraph:
    """Build a `ConvGraph` from a converted model file.

    Args:
        path: an `.npz` written by `scripts/convert_mediapipe_models.py`.
        fuse_branches: see `ConvGraph`.

    Returns:
        The network in eval mode, float32 on the CPU.

    Raises:
        FileNotFoundError: the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_graph: no model file {str(path)!r}")
    with np.load(path, allow_pickle=False) as z:
        layers = json.loads(str(z["graph"]))
        constants = {k: z[k] for k in z.files if k.startswith("c")}
    return ConvGraph(layers, constants, fuse_branches=fuse_branches).eval().requires_grad_(False)


def optimize_for_cpu(module: nn.Module, example: Tensor) -> nn.Module:
    """A traced, frozen copy of a network with torch's CPU inference passes (oneDNN layouts).

    About twice as fast on the CPU for these depthwise-convolution networks, at a one-time cost of a
    few seconds per network; the batch size stays free, the input's height and width are fixed.

    Args:
        module: a network in eval mode (a `ConvGraph` or a module that wraps one).
        example: [B, 3, H, W] float32 input of the size the network will see.

    Returns:
        A module with the same outputs (within float32 rounding).
    """
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on Python ints taken from shapes: sizes are fixed here
        traced = torch.jit.trace(module, example, check_trace=False)
        return torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
