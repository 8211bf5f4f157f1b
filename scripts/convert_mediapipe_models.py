"""Convert MediaPipe's face detection and face landmark `.tflite` models to `.npz` graphs for torch.

Run once; the outputs are committed under `fitting/data/` (Apache-2.0, see LICENSE-MediaPipe):

    pip download --no-deps mediapipe==0.10.21 -d /tmp/mp && unzip -o /tmp/mp/mediapipe-*.whl \\
        'mediapipe/modules/face_detection/*.tflite' 'mediapipe/modules/face_landmark/*.tflite' -d /tmp/mp
    python scripts/convert_mediapipe_models.py --modules /tmp/mp/mediapipe/modules --out fitting/data

Each output holds `graph` (a JSON list of layers: op, input/output tensor ids and options, the
layout `affectsynth.fitting.detection.graph.ConvGraph` runs), `meta` (source, checksum, input
shape) and the constants (`c<id>`, float16 as stored in the model: DEQUANTIZE of float16 is exact,
so the torch port gets the very same float32 weights), packed into one buffer with an index
(`constants`, `constants_index`: `affectsynth.fitting.detection.graph.pack_constants`), uncompressed
(float16 weights hardly deflate, and one array reads in about a millisecond where hundreds took ~40 ms). Sparse constants (the full-range detector) are densified here; DEQUANTIZE,
DENSIFY and identity slices are folded away. Only this script needs the `flatbuffers` package
(for the custom ops' flexbuffer options); the runtime reads just the `.npz`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tflite_reader import TFLiteModel, read_model  # noqa: E402

from affectsynth.fitting.detection.graph import pack_constants  # noqa: E402

MODELS = {
    "mediapipe_face_detection_short_range": "face_detection/face_detection_short_range.tflite",
    "mediapipe_face_detection_full_range": "face_detection/face_detection_full_range_sparse.tflite",
    "mediapipe_face_landmark_with_attention": "face_landmark/face_landmark_with_attention.tflite",
}

_ACT = {0: None, 1: "relu", 3: "relu6"}
_PAD = {0: "same", 1: "valid"}


def _densify(tensor) -> np.ndarray:
    """Dense array of a sparse (CSR per dimension, no blocks) TFLite constant."""
    sp = tensor.extra["sparsity"]
    order = sp.vector(0, "<i4")
    if sp.vector(1, "<i4"):
        raise ValueError(f"{tensor.name}: block-sparse constants are not supported")
    values = np.frombuffer(tensor.extra["raw"], dtype=tensor.dtype)
    levels = []
    for dm in sp.vector(2):
        if dm.scalar(0, "<b") == 0:
            levels.append(("dense", dm.scalar(1, "<i")))
        else:
            seg_t, idx_t = dm.scalar(2, "<B"), dm.scalar(4, "<B")
            fmt = {1: "<i4", 2: "<u2", 3: "u1"}
            segs = dm.table(3).vector(0, fmt[seg_t])
            idxs = dm.table(5).vector(0, fmt[idx_t])
            levels.append(("csr", segs, idxs))
    dense = np.zeros(tensor.shape, tensor.dtype)
    pos = 0

    def walk(level: int, parent: int, coord: list[int]) -> None:
        nonlocal pos
        if level == len(levels):
            full = [0] * len(order)
            for k, d in enumerate(order):
                full[d] = coord[k]
            dense[tuple(full)] = values[pos]
            pos += 1
            return
        lv = levels[level]
        if lv[0] == "dense":
            for i in range(lv[1]):
                walk(level + 1, parent * lv[1] + i, coord + [i])
        else:
            segs, idxs = lv[1], lv[2]
            for j in range(segs[parent], segs[parent + 1]):
                walk(level + 1, j, coord + [idxs[j]])

    walk(0, 0, [])
    if pos != values.size:
        raise ValueError(f"{tensor.name}: densified {pos} of {values.size} values")
    return dense


def _flex(data: bytes) -> dict:
    from flatbuffers import flexbuffers  # conversion time only

    return flexbuffers.Loads(bytearray(data))


def convert(model: TFLiteModel) -> tuple[list[dict], dict[str, np.ndarray]]:
    """The layer list and constants of one model (see the module docstring)."""
    consts: dict[int, np.ndarray] = {}
    alias: dict[int, int] = {}
    for t in model.tensors:
        if t.extra:
            consts[t.index] = _densify(t)
        elif t.data is not None:
            consts[t.index] = t.data
    shape = {t.index: list(t.shape) for t in model.tensors}

    def src(i: int) -> int:
        return alias.get(i, i)

    layers: list[dict] = []
    used: set[int] = set()

    def const(i: int) -> str:
        used.add(src(i))
        return f"c{src(i)}"

    for op in model.operators:
        ins, outs, o = [src(i) for i in op.inputs], op.outputs, op.options
        if op.op in ("DEQUANTIZE", "DENSIFY"):
            if ins[0] not in consts:
                raise ValueError(f"{op.op} of a non-constant tensor {ins[0]}")
            alias[outs[0]] = ins[0]
            continue
        if op.op == "STRIDED_SLICE":
            begin, end, strides = (consts[i].tolist() for i in ins[1:4])
            if shape[ins[0]] != shape[outs[0]] or any(strides_ != 1 for strides_ in strides):
                raise ValueError("STRIDED_SLICE: only identity slices are supported")
            alias[outs[0]] = ins[0]
            continue
        layer: dict = {"op": op.op.lower(), "out": outs[0]}
        if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            dw = op.op == "DEPTHWISE_CONV_2D"
            act_field = 4 if dw else 3
            layer.update(
                op="conv", x=ins[0], weight=const(op.inputs[1]), bias=const(op.inputs[2]), depthwise=dw,
                padding=_PAD[o.scalar(0, "<b")], stride=[o.scalar(2, "<i"), o.scalar(1, "<i")],
                dilation=[o.scalar(act_field + 2, "<i", 1), o.scalar(act_field + 1, "<i", 1)],
                act=_ACT[o.scalar(act_field, "<b")],
            )
        elif op.op == "MAX_POOL_2D":
            layer.update(
                x=ins[0], padding=_PAD[o.scalar(0, "<b")], stride=[o.scalar(2, "<i"), o.scalar(1, "<i")],
                kernel=[o.scalar(4, "<i"), o.scalar(3, "<i")], act=_ACT[o.scalar(5, "<b")],
            )
        elif op.op == "PAD":
            layer.update(x=ins[0], paddings=consts[ins[1]].tolist())
        elif op.op in ("ADD", "MUL"):
            a, b = ins
            layer.update(act=_ACT[o.scalar(0, "<b")] if o is not None else None)
            layer["x"] = a if a not in consts else const(a)
            layer["y"] = b if b not in consts else const(b)
        elif op.op == "RELU":
            layer.update(x=ins[0])
        elif op.op == "PRELU":
            layer.update(x=ins[0], alpha=const(op.inputs[1]))
        elif op.op == "RESHAPE":
            layer.update(x=ins[0], shape=shape[outs[0]])
        elif op.op == "CONCATENATION":
            layer.update(xs=ins, axis=o.scalar(0, "<i"), rank=len(shape[outs[0]]), act=_ACT[o.scalar(1, "<b")])
        elif op.op == "RESIZE_BILINEAR":
            layer.update(x=ins[0], size=consts[ins[1]].tolist(), align_corners=bool(o.scalar(2, "<B")),
                         half_pixel_centers=bool(o.scalar(3, "<B")))
        elif op.op == "DEPTH_TO_SPACE":
            layer.update(x=ins[0], block=o.scalar(0, "<i"))
        elif op.op == "Landmarks2TransformMatrix":
            if op.version != 2:
                raise ValueError(f"Landmarks2TransformMatrix version {op.version}; expected 2")
            p = _flex(op.custom_options)
            layer.update(op="landmarks_to_matrix", x=ins[0], subset=[int(v) for v in p["subset_idxs"]],
                         left=int(p["left_rotation_idx"]), right=int(p["right_rotation_idx"]),
                         target_rotation=float(p["target_rotation_radians"]), out_size=[int(p["output_height"]), int(p["output_width"])],
                         scale=[float(p["scale_x"]), float(p["scale_y"])])
        elif op.op == "TransformTensorBilinear":
            if op.version != 2:
                raise ValueError(f"TransformTensorBilinear version {op.version}; expected 2")
            layer.update(op="transform_tensor", x=ins[0], matrix=ins[1], size=shape[outs[0]][1:3])
        elif op.op == "TransformLandmarks":
            if op.version != 2:
                raise ValueError(f"TransformLandmarks version {op.version}; expected 2")
            layer.update(op="transform_landmarks", x=ins[0], matrix=ins[1])
        else:
            raise ValueError(f"unsupported operator {op.op}")
        layers.append(layer)
    outputs = [src(i) for i in model.outputs]
    layers.append({"op": "outputs", "xs": outputs, "names": [model.tensors[i].name for i in model.outputs],
                   "input": model.inputs[0]})
    arrays = {f"c{i}": consts[i] for i in sorted(used)}
    return layers, arrays


def main() -> None:
    """Convert the three models; print one line per output with its size and source checksum."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modules", type=Path, required=True, help="the wheel's mediapipe/modules folder")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "fitting/data")
    args = parser.parse_args()
    for name, rel in MODELS.items():
        path = args.modules / rel
        layers, arrays = convert(read_model(path))
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        meta = {"source": f"mediapipe==0.10.21 {rel}", "sha256": sha, "input": read_model(path).tensors[read_model(path).inputs[0]].shape}
        out = args.out / f"{name}.npz"
        constants, index = pack_constants(arrays)
        np.savez(out, graph=np.array(json.dumps(layers)), meta=np.array(json.dumps(meta)), constants=constants,
                 constants_index=np.array(index))
        print(f"{out}: {len(layers)} layers, {len(arrays)} constants, {out.stat().st_size / 1e6:.2f} MB (from {rel}, sha256 {sha[:12]})")


if __name__ == "__main__":
    main()
