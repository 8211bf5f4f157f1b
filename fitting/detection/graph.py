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

    def __init__(self, spec: dict, weight: np.ndarray, bias: np.ndarray):
        super().__init__()
        w = torch.from_numpy(weight.astype(np.float32))
        if spec["depthwise"]:  # [1, kh, kw, C] -> [C, 1, kh, kw]
            w = w.permute(3, 0, 1, 2).contiguous()
            self.groups = w.shape[0]
        else:  # OHWI -> OIHW
            w = w.permute(0, 3, 1, 2).contiguous()
            self.groups = 1
        self.weight = nn.Parameter(w, requires_grad=False)
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


class ConvGraph(nn.Module):
    """One converted network: runs its layers in order on a batch.

    Args:
        layers: the converter's layer list (dicts with "op", tensor ids and options).
        constants: constant name ("c<id>") -> array, as stored in the `.npz`.

    Note:
        Inputs are [B, 3, H, W] float32 in the model's value range; outputs are in the order the
        TFLite model lists them, with 4-D outputs back in MediaPipe's NHWC layout.
    """

    def __init__(self, layers: list[dict], constants: dict[str, np.ndarray]):
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

    def _operand(self, env: dict[int, Tensor], ref, like: Tensor) -> Tensor:
        if isinstance(ref, int):
            return env[ref]
        c = getattr(self, self._const_names[ref])
        if like.ndim == 4 and c.ndim >= 1:  # broadcast an NHWC constant onto NCHW
            c = c.reshape(*([1] * (4 - c.ndim)), *c.shape) if c.ndim < 4 else c
            c = c.permute(0, 3, 1, 2)
        return c.to(like.dtype)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Run the network.

        Args:
            x: [B, 3, H, W] float32 input image batch.

        Returns:
            The model's outputs, [B, ...] each, in TFLite order and layout.
        """
        env: dict[int, Tensor] = {}
        env[self.layers[-1]["input"]] = _fast_layout(x)
        for k, spec in enumerate(self.layers):
            op = spec["op"]
            if op == "outputs":
                return [_to_tf(env[i]) for i in spec["xs"]]
            if op == "skip":
                continue
            if op in ("conv", "max_pool_2d", "prelu"):
                y = self.modules_[str(k)](env[spec["x"]])
            elif op == "relu":
                y = torch.relu(env[spec["x"]])
            elif op in ("add", "mul"):
                ref = spec["x"] if isinstance(spec["x"], int) else spec["y"]
                a = self._operand(env, spec["x"], env[ref])
                b = self._operand(env, spec["y"], env[ref])
                y = _act(a + b if op == "add" else a * b, spec["act"])
            elif op == "pad":
                p = spec["paddings"]  # NHWC [[before, after]] x 4
                y = F.pad(env[spec["x"]], (p[2][0], p[2][1], p[1][0], p[1][1], p[3][0], p[3][1]))
            elif op == "reshape":
                src = env[spec["x"]]
                y = _from_tf(_to_tf(src).reshape(src.shape[0], *spec["shape"][1:]))
            elif op == "concatenation":
                axis = _NHWC_TO_NCHW[spec["axis"] % 4] if spec["rank"] == 4 else spec["axis"]
                y = _act(torch.cat([env[i] for i in spec["xs"]], dim=axis), spec["act"])
            elif op == "resize_bilinear":
                y = _resize_bilinear(env[spec["x"]], spec["size"], spec["align_corners"], spec["half_pixel_centers"])
            elif op == "depth_to_space":
                y = _depth_to_space(env[spec["x"]], spec["block"])
            elif op == "landmarks_to_matrix":
                y = self.modules_[str(k)](env[spec["x"]])
            elif op == "transform_tensor":
                y = _fast_layout(self.modules_[str(k)](env[spec["x"]], env[spec["matrix"]]))
            elif op == "transform_landmarks":
                y = self.modules_[str(k)](env[spec["x"]], env[spec["matrix"]])
            else:
                raise ValueError(f"ConvGraph: unknown layer op {op!r}")
            env[spec["out"]] = y
        raise ValueError("ConvGraph: no 'outputs' entry")


def load_graph(path: str | Path) -> ConvGraph:
    """Build a `ConvGraph` from a converted model file.

    Args:
        path: an `.npz` written by `scripts/convert_mediapipe_models.py`.

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
    return ConvGraph(layers, constants).eval().requires_grad_(False)


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
