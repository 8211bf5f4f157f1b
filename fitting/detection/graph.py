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

__all__ = ["ConvGraph", "empty_input", "load_graph", "optimize_for_cpu", "pack_constants", "unpack_constants"]

_NHWC_TO_NCHW = {0: 0, 1: 2, 2: 3, 3: 1}


def _same_pad(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (before, after) along one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _act(x: Tensor, name: str | None, *, inplace: bool = False) -> Tensor:
    """A TFLite fused activation (None, "relu", "relu6"); ``inplace`` for a tensor just computed that
    nothing else holds: the same values without allocating (and page-faulting in) another
    activation-sized buffer."""
    if name is None:
        return x
    if name == "relu":
        return x.relu_() if inplace else torch.relu(x)
    if name == "relu6":
        return x.clamp_(0.0, 6.0) if inplace else torch.clamp(x, 0.0, 6.0)
    raise ValueError(f"ConvGraph: unknown activation {name!r}")


def _add_act(a: Tensor, b: Tensor, name: str | None, *, inplace: bool = False) -> Tensor:
    """``_act(a + b, name)``; ``inplace``: into ``a`` (of ``b``'s shape, nothing else holding it).

    An add with a relu on two dense tensors of one layout is torch's fused ``_add_relu`` (one pass
    instead of two). Its vector loop rounds ``a + b`` once, as the add does, and keeps relu's
    values, signed zeros and NaN included, but for +inf, which it clamps to the largest float32
    (activations of these networks are far from it); its scalar loop would turn NaN and -0 into 0,
    so it runs only where there is no scalar tail (`_vector_loop_only`).
    """
    if name == "relu" and _vector_loop_only(a, b):
        return torch._add_relu_(a, b) if inplace else torch._add_relu(a, b)
    return _act(a.add_(b) if inplace else a + b, name, inplace=True)


#: Values per vectorised loop step of torch's CPU kernels, with a margin (two AVX-512 float32 vectors).
_VECTOR_STEP = 64


def _vector_loop_only(a: Tensor, b: Tensor) -> bool:
    """Whether an elementwise kernel on ``a`` and ``b`` runs one dense loop with no scalar tail: same
    shape and strides, dense in one memory format, a whole number of vector steps, on the CPU."""
    return (a.device.type == "cpu" and a.shape == b.shape and a.stride() == b.stride() and a.dtype == b.dtype
            and a.numel() % _VECTOR_STEP == 0
            and (a.is_contiguous() or a.is_contiguous(memory_format=torch.channels_last)))


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

    def runner(self):
        """`forward` as a closure over the weights and options: the execution plan calls it for every
        layer of every network call, and a module's parameter lookups and the activation's dispatch are
        a fair part of a small convolution's call. The plan is rebuilt after `nn.Module._apply`
        (`ConvGraph._apply`), so it never holds stale weights."""
        if self.same:  # the padding depends on the input's size
            return self.forward
        conv, weight, bias = torch.conv2d, self.weight, self.bias
        stride, padding, dilation, groups = self.stride, self.padding, self.dilation, self.groups
        if self.act is None:
            run = lambda x: conv(x, weight, bias, stride, padding, dilation, groups)  # noqa: E731
        elif self.act == "relu":
            run = lambda x: conv(x, weight, bias, stride, padding, dilation, groups).relu_()  # noqa: E731
        else:
            act = self.act
            run = lambda x: _act(conv(x, weight, bias, stride, padding, dilation, groups), act, inplace=True)  # noqa: E731
        if self.kernel_size == (1, 1):  # several positions on any input but 1 x 1: never per sample
            return run
        return lambda x: self._by_sample(run, x)

    def forward(self, x: Tensor) -> Tensor:
        if self.same:
            kh, kw = self.kernel_size
            (t, b), (l, r) = (_same_pad(x.shape[2], kh, self.stride[0], self.dilation[0]),
                              _same_pad(x.shape[3], kw, self.stride[1], self.dilation[1]))
            if t or b or l or r:
                x = F.pad(x, (l, r, t, b))
        return self._by_sample(lambda v: _act(F.conv2d(v, self.weight, self.bias, self.stride, self.padding,
                                                       self.dilation, self.groups), self.act, inplace=True), x)

    def _by_sample(self, run, x: Tensor) -> Tensor:
        """``run(x)``, sample by sample where the batch holds several and `_one_position`."""
        if x.shape[0] > 1 and self._one_position(x):
            return torch.cat([run(x[i:i + 1]) for i in range(x.shape[0])])
        return run(x)

    def _one_position(self, x: Tensor) -> bool:
        """Whether the output of ``x`` (already padded) has one spatial position: the kernel covers the
        whole input, a matrix product whose sums the CPU kernels order by batch size (a matrix-vector
        product for one sample, a blocked matrix product for several: last bits differ). Run per
        sample, every face gets the bits it gets alone, whichever faces and photos share its batch
        (`TorchFaceDetector.detect_batch` equals `detect` photo by photo). The other layers' CPU
        kernels (convolutions with several positions, pooling, elementwise) do not depend on the
        batch; the landmark network's heads are the only such layers, on 2 x 2 and 3 x 3 inputs."""
        return all((n + 2 * p - d * (k - 1) - 1) // s == 0 for n, p, d, k, s in
                   zip(x.shape[2:], self.padding, self.dilation, self.kernel_size, self.stride))


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
        return _act(F.max_pool2d(x, self.kernel, self.stride), self.act, inplace=True)


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


def empty_input(like: Tensor) -> Tensor:
    """An uninitialised tensor shaped as the [B, C, H, W] ``like``, in the memory format `ConvGraph` runs
    in on its device (`_fast_layout`): an input copied into it and scaled there in place needs no
    second layout copy when the network starts (a transposing copy first, then contiguous passes, is
    the cheapest order)."""
    return torch.empty_like(like, memory_format=torch.channels_last if like.device.type == "cpu" else torch.contiguous_format)


def _depth_to_space(x: Tensor, block: int) -> Tensor:
    """TFLite DEPTH_TO_SPACE on [B, C, H, W]: channel (i * block + j) * C' + c -> pixel offset (i, j)."""
    b, c, h, w = x.shape
    cout = c // (block * block)
    x = x.reshape(b, block, block, cout, h, w).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(b, cout, h * block, w * block)


def _inputs(spec: dict) -> list[int]:
    """The tensor ids a layer reads."""
    return [spec[key] for key in ("x", "y", "matrix") if isinstance(spec.get(key), int)] + list(spec.get("xs", []))


def _layer_inputs(spec: dict) -> list[int]:
    """The tensor ids a layer of the (fused) layer list reads."""
    if spec["op"] == "fused":
        return list(spec["x"]) + list(spec.get("y") or [])
    return _inputs(spec)


def _readers(layers: list[dict]) -> tuple[dict[int, list[int]], set[int]]:
    """Per tensor id, the indices (in ``layers``) of the layers that read it; and the output ids (of
    the final outputs entry)."""
    readers: dict[int, list[int]] = {}
    outputs: set[int] = set()
    for k, spec in enumerate(layers):
        ids = _layer_inputs(spec)
        if spec["op"] == "outputs":
            outputs.update(ids)
        for i in ids:
            readers.setdefault(i, []).append(k)
    return readers, outputs


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
            self._fold_relu()
            self._fuse_branches(constants)
        else:
            self.layers = [{**spec, "index": k} for k, spec in enumerate(self.layers) if spec["op"] != "skip"]
        self.output_names: list[str] = layers[-1]["names"]
        self._plan: tuple | None = None  # `_steps`, built on the first call
        self._partial_plans: dict[tuple[str, ...], tuple] = {}  # per subset of the outputs (`forward`'s ``outputs``)

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

    def _fold_relu(self) -> None:
        """Give each add whose result only a RELU reads that relu as its fused activation (one layer,
        and one pass with `_add_act`, instead of two): the relu's values, under the relu's tensor id."""
        readers, outputs = _readers(self.layers)
        layers = list(self.layers)
        for k, spec in enumerate(layers):
            if spec["op"] != "add" or spec["act"] is not None or spec["out"] in outputs:
                continue
            rs = readers.get(spec["out"], [])
            if len(rs) != 1 or layers[rs[0]]["op"] != "relu":
                continue
            layers[k] = {**spec, "act": "relu", "out": layers[rs[0]]["out"]}
            layers[rs[0]] = {"op": "skip"}
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

    def _constant(self, ref: str, like: Tensor) -> Tensor:
        """Constant ``ref`` as an operand next to ``like``: an NHWC constant is broadcast onto NCHW."""
        c = getattr(self, self._const_names[ref])
        if like.ndim == 4 and c.ndim >= 1:  # broadcast an NHWC constant onto NCHW
            c = c.reshape(*([1] * (4 - c.ndim)), *c.shape) if c.ndim < 4 else c
            c = c.permute(0, 3, 1, 2)
        return c.to(like.dtype)

    def _apply(self, fn, *args, **kwargs):
        """`nn.Module._apply` (``.to``, ``.float``, ...); the execution plan holds the old constants: rebuilt on the next call."""
        self._plan, self._partial_plans = None, {}
        return super()._apply(fn, *args, **kwargs)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_plan"], state["_partial_plans"] = None, {}  # closures: rebuilt on first use
        return state

    def forward(self, x: Tensor, *, outputs: tuple[str, ...] | None = None) -> list[Tensor]:
        """Run the network; on the CPU, larger batches in chunks of `CPU_BATCH`.

        Args:
            x: [B, 3, H, W] float32 input image batch.
            outputs: names (`output_names`) of the outputs to compute, in the order wanted: only the
                layers they depend on run, and they get the values the whole network gives them, to
                the bit. None: every output.

        Returns:
            The model's outputs, [B, ...] each, in TFLite order and layout (or in ``outputs``' order).

        Raises:
            ValueError: an unknown output name.
        """
        if x.device.type != "cpu" or x.shape[0] <= CPU_BATCH:
            return self._run(x, outputs)
        chunks = [self._run(x[i:i + CPU_BATCH], outputs) for i in range(0, x.shape[0], CPU_BATCH)]
        return [torch.cat(outs) for outs in zip(*chunks)]

    def _run(self, x: Tensor, outputs: tuple[str, ...] | None = None) -> list[Tensor]:
        """`forward` on one batch: the steps of `_steps` in order on an environment of tensor ids."""
        steps, input_id, output_ids = self._plan_for(outputs)
        env: dict[int, Tensor | tuple[Tensor, int, int]] = {input_id: _fast_layout(x)}  # fused branches: (their tensor, channel slice)
        for step in steps:
            step(env)
        return [_to_tf(_value(env[i])) for i in output_ids]

    def _plan_for(self, outputs: tuple[str, ...] | None) -> tuple[list, int, list[int]]:
        """The execution plan (`_steps`) of the whole network or of the layers ``outputs`` need,
        built on first use."""
        if outputs is None:
            if getattr(self, "_plan", None) is None:
                self._plan = self._steps(self.layers)
            return self._plan
        plans = self.__dict__.setdefault("_partial_plans", {})
        key = tuple(outputs)
        if key not in plans:
            plans[key] = self._steps(self._layers_for(key))
        return plans[key]

    def _layers_for(self, outputs: tuple[str, ...]) -> list[dict]:
        """The layers (in order) that the outputs named ``outputs`` depend on, and an outputs entry
        that lists those."""
        unknown = [n for n in outputs if n not in self.output_names]
        if unknown or not outputs:
            raise ValueError(f"ConvGraph: outputs must be some of {self.output_names}, got {list(outputs)}")
        final = self.layers[-1]
        wanted = [final["xs"][self.output_names.index(n)] for n in outputs]
        producer = {out: k for k, spec in enumerate(self.layers[:-1])
                    for out in (spec["outs"] if spec["op"] == "fused" else [spec["out"]])}
        needed: set[int] = set()
        todo = list(wanted)
        while todo:
            k = producer.get(todo.pop())
            if k is not None and k not in needed:
                needed.add(k)
                todo += _layer_inputs(self.layers[k])
        return [spec for k, spec in enumerate(self.layers[:-1]) if k in needed] + [{**final, "xs": wanted}]

    def _steps(self, layers: list[dict]) -> tuple[list, int, list[int]]:
        """The execution plan of ``layers`` (the network's `layers`, or the part of them that some
        outputs need, `_layers_for`; ending in an outputs entry): one closure per layer that reads its inputs from the environment and
        writes its output, with its module's ``forward``, options and constant operands bound once.

        Each layer's work in Python (finding its op among a dozen, its module in the ModuleDict,
        ``nn.Module.__call__``, reshaping a constant) was a fair part of a call on small feature maps:
        the plan does it once. Memory as the layers go (`_readers`): a tensor leaves the environment
        after its last reader, so that its buffer serves the next layers; an add or relu whose
        tensor operand has no other reader writes into it; a channel pad read only by an add is
        done inside that add (`_binary_step`). A fresh activation-sized buffer costs its page faults
        (a few hundred microseconds for a 96 x 96 x 32 map), as much as the op. Same operations on
        the same values, so the same outputs to the bit.
        """
        readers, outputs = _readers(layers)
        input_id = layers[-1]["input"]
        fresh = {spec["out"] for spec in layers if spec["op"] in _FRESH_OUTPUT_OPS}
        owned = {i for i in fresh if len(readers.get(i, ())) == 1 and i not in outputs and i != input_id}
        pads = {spec["out"]: spec for spec in layers
                if spec["op"] == "pad" and spec["out"] in owned and _channel_pad(spec) is not None
                and _pad_add_partner(layers[readers[spec["out"]][0]], spec["out"]) in owned}
        last = {}
        for i, rs in readers.items():
            if i not in outputs:
                last.setdefault(max(rs), []).append(i)
        steps = []
        for k, spec in enumerate(layers):
            if spec["op"] == "outputs":
                return steps, input_id, list(spec["xs"])
            if spec["op"] == "pad" and spec["out"] in pads:  # done by the add that reads it, which releases its input
                last.setdefault(readers[spec["out"]][0], []).extend(last.pop(k, ()))
                continue
            if spec["op"] == "fused":
                step = self._fused_step(spec)
            elif spec["op"] in ("add", "mul"):
                step = self._binary_step(spec, owned, pads)
            else:
                step = self._step(spec, owned)
            steps.append(_releasing(step, last.get(k, ())))
        raise ValueError("ConvGraph: no 'outputs' entry")

    def _fused_step(self, spec: dict):
        """The closure of a "fused" layer: its branches' inputs side by side, one op, the output's
        channel slices as the branches' outputs."""
        xs, ys, outs, kind = spec["x"], spec.get("y"), spec["outs"], spec["kind"]
        n = len(outs)
        if kind == "add":
            act = spec["act"]

            def compute(env, y):
                return _add_act(y, _gather(env, ys), act)
        elif kind == "pad":
            before, after = spec["channel_pad"]

            def compute(env, y):
                return _pad_channels(y, n, before, after)
        else:
            module = self.modules_[spec["index"]]
            module = module.runner() if kind == "conv" else module.forward

            def compute(env, y):
                return module(y)

        def step(env):
            y = compute(env, _gather(env, xs))
            width = y.shape[1] // n
            for m, out in enumerate(outs):
                env[out] = (y, m * width, (m + 1) * width)
        return step

    def _step(self, spec: dict, owned: set[int]):
        """The closure of one converted layer (``op`` as the converter wrote it); ``owned``: the
        tensor ids that only this layer reads (see `_steps`)."""
        op, out = spec["op"], spec["out"]
        x = spec.get("x")
        if op == "conv":
            fn = self.modules_[str(spec["index"])].runner()
        elif op in ("max_pool_2d", "prelu", "landmarks_to_matrix"):
            fn = self.modules_[str(spec["index"])].forward
        elif op == "relu":
            fn = torch.relu_ if x in owned else torch.relu
        elif op == "pad":
            p = spec["paddings"]  # NHWC [[before, after]] x 4
            pad = (p[2][0], p[2][1], p[1][0], p[1][1], p[3][0], p[3][1])

            def fn(v):
                return F.pad(v, pad)
        elif op == "reshape":
            shape = tuple(spec["shape"][1:])

            def fn(v):
                return _from_tf(_to_tf(v).reshape(v.shape[0], *shape))
        elif op == "concatenation":
            xs, act = list(spec["xs"]), spec["act"]
            axis = _NHWC_TO_NCHW[spec["axis"] % 4] if spec["rank"] == 4 else spec["axis"]

            def step(env):
                env[out] = _act(torch.cat([_value(env[i]) for i in xs], dim=axis), act, inplace=True)
            return step
        elif op == "resize_bilinear":
            size, corners, half = spec["size"], spec["align_corners"], spec["half_pixel_centers"]

            def fn(v):
                return _resize_bilinear(v, size, corners, half)
        elif op == "depth_to_space":
            block = spec["block"]

            def fn(v):
                return _depth_to_space(v, block)
        elif op in ("transform_tensor", "transform_landmarks"):
            module, matrix = self.modules_[str(spec["index"])].forward, spec["matrix"]
            post = _fast_layout if op == "transform_tensor" else (lambda v: v)

            def step(env):
                env[out] = post(module(_value(env[x]), _value(env[matrix])))
            return step
        else:
            raise ValueError(f"ConvGraph: unknown layer op {op!r}")

        def step(env):
            env[out] = fn(_value(env[x]))
        return step

    def _binary_step(self, spec: dict, owned: set[int], pads: dict[int, dict]):
        """The closure of an add or mul layer (tensor with tensor, or with a constant).

        A tensor operand in ``owned`` (no other reader) of the result's shape and strides takes the
        result in place; an operand in ``pads`` (a channel pad that only this add reads) is not
        built: its input is added into the other operand's channels and the padded channels get
        ``+ 0.0``, which is what adding the pad's zeros does to them (-0 becomes +0).
        """
        ref_x, ref_y, out, act = spec["x"], spec["y"], spec["out"], spec["act"]
        ref = ref_x if isinstance(ref_x, int) else ref_y
        cache: dict[tuple, Tensor] = {}  # constant operands per (rank, dtype) of the tensor operand
        mul = spec["op"] == "mul"
        pad_ref = next((r for r in (ref_x, ref_y) if r in pads), None)
        if pad_ref is not None:  # `_steps` skipped that pad: this add does it, into its other (owned) operand
            source, (before, after) = pads[pad_ref]["x"], _channel_pad(pads[pad_ref])
            return self._pad_add_step(source, _pad_add_partner(spec, pad_ref), before, after, out, act,
                                      pads[pad_ref]["paddings"])
        targets = [r for r in (ref_x, ref_y) if isinstance(r, int) and r in owned and ref_x != ref_y]

        def operand(env, r, like):
            if isinstance(r, int):
                return _value(env[r])
            key = (like.ndim, like.dtype)
            if key not in cache:
                cache[key] = self._constant(r, like)
            return cache[key]

        def step(env):
            like = _value(env[ref])
            a, b = operand(env, ref_x, like), operand(env, ref_y, like)
            for r, t, o in ((ref_x, a, b), (ref_y, b, a)):
                if r in targets and isinstance(env[r], Tensor) and t.shape == o.shape and t.stride() == o.stride() \
                        and t.dtype == o.dtype:
                    env[out] = _act(t.mul_(o), act, inplace=True) if mul else _add_act(t, o, act, inplace=True)
                    return
            env[out] = _act(a * b, act, inplace=True) if mul else _add_act(a, b, act)
        return step

    @staticmethod
    def _pad_add_step(source: int, other: int, before: int, after: int, out: int, act: str | None, paddings: list):
        """The closure of ``add(pad_channels(env[source]), env[other])`` into ``env[other]`` (see `_binary_step`)."""
        p = paddings

        def step(env):
            x, y = _value(env[source]), env[other]
            c = x.shape[1]
            if (isinstance(y, Tensor) and y.dtype == x.dtype and y.shape == (x.shape[0], before + c + after, *x.shape[2:])
                    and _same_layout(x, y)):
                y[:, before:before + c].add_(x)
                for lo, hi in ((0, before), (before + c, before + c + after)):
                    if hi > lo:
                        y[:, lo:hi].add_(0.0)
                env[out] = _act(y, act, inplace=True)
            else:  # another layout than the converter's: the pad as written
                padded = F.pad(x, (p[2][0], p[2][1], p[1][0], p[1][1], p[3][0], p[3][1]))
                env[out] = _add_act(padded, _value(y), act)
        return step


#: Layers whose output is a new tensor (not a view of an input): `ConvGraph._steps` may write into it.
_FRESH_OUTPUT_OPS = frozenset({"conv", "max_pool_2d", "prelu", "add", "mul", "relu", "pad", "concatenation"})


def _pad_add_partner(spec: dict, pad_out: int) -> int | None:
    """The other tensor operand of an add layer that reads the pad output ``pad_out``, else None
    (not an add, or the pad added to itself or to a constant)."""
    if spec["op"] != "add" or pad_out not in (spec["x"], spec["y"]):
        return None
    other = spec["y"] if spec["x"] == pad_out else spec["x"]
    return other if isinstance(other, int) and other != pad_out else None


def _channel_pad(spec: dict) -> tuple[int, int] | None:
    """(before, after) zero channels of a PAD layer that pads only the channels, else None."""
    p = spec["paddings"]
    return tuple(p[3]) if all(q == [0, 0] for q in p[:3]) else None


def _same_layout(a: Tensor, b: Tensor) -> bool:
    """Both [B, C, H, W] tensors dense in the same memory format (then so is their sum, in place or not)."""
    return any(a.is_contiguous(memory_format=f) and b.is_contiguous(memory_format=f)
               for f in (torch.channels_last, torch.contiguous_format))


def _releasing(step, dead: tuple | list):
    """``step``, then the tensor ids in ``dead`` (read for the last time) out of the environment."""
    if not dead:
        return step
    dead = tuple(dead)

    def run(env):
        step(env)
        for i in dead:
            env.pop(i, None)
    return run


#: Byte alignment of each constant inside a packed constants buffer (`pack_constants`).
_PACK_ALIGN = 16


def pack_constants(constants: dict[str, np.ndarray]) -> tuple[np.ndarray, str]:
    """All of a network's constants in one byte buffer, with the index that `unpack_constants` reads.

    A model file then holds a few arrays instead of one per constant: ``np.load`` reads each array of
    an npz on its own (zip entry, header parse: ~0.07 ms apiece), and the three networks have 627.

    Args:
        constants: name -> array (any dtype but object), packed in name order.

    Returns:
        ``(buffer, index)``: [N] uint8, each array's bytes (C order) at an offset aligned to 16; and a
        JSON list of ``[name, dtype, shape, offset]``.
    """
    entries, chunks, offset = [], [], 0
    for name in sorted(constants):
        a = np.ascontiguousarray(constants[name])
        pad = -offset % _PACK_ALIGN
        chunks += [np.zeros(pad, np.uint8), a.reshape(-1).view(np.uint8)]
        offset += pad
        entries.append([name, a.dtype.str, list(a.shape), offset])
        offset += a.nbytes
    buffer = np.concatenate(chunks) if chunks else np.zeros(0, np.uint8)
    return buffer, json.dumps(entries)


def unpack_constants(buffer: np.ndarray, index: str) -> dict[str, np.ndarray]:
    """The arrays `pack_constants` packed: name -> a view into ``buffer`` (same dtype, shape, bytes)."""
    return {name: np.frombuffer(buffer, np.dtype(dtype), int(np.prod(shape)), offset).reshape(shape)
            for name, dtype, shape, offset in json.loads(index)}


def load_graph(path: str | Path, *, fuse_branches: bool = True) -> ConvGraph:
    """Build a `ConvGraph` from a converted model file.

    Args:
        path: an `.npz` written by `scripts/convert_mediapipe_models.py`: ``graph`` (the layer list,
            JSON) and the constants, packed (``constants`` + ``constants_index``, see
            `pack_constants`) or one array per constant (``c<id>``, as earlier conversions wrote them).
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
        if "constants" in z.files:
            constants = unpack_constants(z["constants"], str(z["constants_index"]))
        else:
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
