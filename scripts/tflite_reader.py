"""A minimal reader of TFLite flatbuffers: tensors, their data and the operator list.

Used only by `scripts/convert_mediapipe_models.py` (conversion time); the runtime never reads
`.tflite` files. It knows just the parts of the TFLite schema (tensorflow/lite/schema/schema.fbs)
that the MediaPipe face models use: Model.operator_codes/subgraphs/buffers, SubGraph.tensors/
inputs/outputs/operators, Tensor.shape/type/buffer/name, Operator.opcode_index/inputs/outputs/
builtin_options/custom_options. Builtin options are returned as raw tables, read by field index.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Table", "TFLiteModel", "TensorInfo", "OperatorInfo", "read_model"]

#: TensorType enum -> numpy dtype (schema.fbs).
_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_, 9: np.int8}

#: BuiltinOperator codes used by the face models (schema.fbs enum values).
BUILTIN_NAMES = {
    0: "ADD", 2: "CONCATENATION", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D", 5: "DEPTH_TO_SPACE",
    6: "DEQUANTIZE", 14: "LOGISTIC", 17: "MAX_POOL_2D", 18: "MUL", 19: "RELU", 22: "RESHAPE",
    23: "RESIZE_BILINEAR", 32: "CUSTOM", 34: "PAD", 43: "SQUEEZE", 45: "STRIDED_SLICE",
    54: "PRELU", 124: "DENSIFY",
}


class Table:
    """One flatbuffer table: fields read by their schema index."""

    def __init__(self, buf: bytes, pos: int):
        self.buf, self.pos = buf, pos
        vt = pos - struct.unpack_from("<i", buf, pos)[0]
        self._vt, self._vt_len = vt, struct.unpack_from("<H", buf, vt)[0]

    def _off(self, index: int) -> int:
        o = 4 + 2 * index
        return struct.unpack_from("<H", self.buf, self._vt + o)[0] if o < self._vt_len else 0

    def scalar(self, index: int, fmt: str, default=0):
        """A scalar field (struct format, e.g. "<i") or `default` when absent."""
        o = self._off(index)
        return struct.unpack_from(fmt, self.buf, self.pos + o)[0] if o else default

    def _indirect(self, index: int) -> int | None:
        o = self._off(index)
        if not o:
            return None
        p = self.pos + o
        return p + struct.unpack_from("<I", self.buf, p)[0]

    def table(self, index: int) -> "Table | None":
        """A sub-table field."""
        p = self._indirect(index)
        return None if p is None else Table(self.buf, p)

    def string(self, index: int) -> str:
        """A string field ("" when absent)."""
        p = self._indirect(index)
        if p is None:
            return ""
        n = struct.unpack_from("<I", self.buf, p)[0]
        return self.buf[p + 4 : p + 4 + n].decode("utf-8")

    def vector(self, index: int, fmt: str | None = None) -> list:
        """A vector of scalars (numpy dtype string like "<i4") or, with fmt None, of tables."""
        p = self._indirect(index)
        if p is None:
            return []
        n = struct.unpack_from("<I", self.buf, p)[0]
        if fmt is not None:
            return np.frombuffer(self.buf, dtype=fmt, count=n, offset=p + 4).tolist()
        out = []
        for i in range(n):
            q = p + 4 + 4 * i
            out.append(Table(self.buf, q + struct.unpack_from("<I", self.buf, q)[0]))
        return out

    def bytes(self, index: int) -> bytes:
        """A [ubyte] vector field as bytes."""
        p = self._indirect(index)
        if p is None:
            return b""
        n = struct.unpack_from("<I", self.buf, p)[0]
        return self.buf[p + 4 : p + 4 + n]


@dataclass
class TensorInfo:
    """One tensor of the graph: shape, dtype, name and constant data (None for activations)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: type
    data: np.ndarray | None
    extra: dict = field(default_factory=dict)


@dataclass
class OperatorInfo:
    """One operator: its name (builtin or custom code), tensor indices and options."""

    op: str
    inputs: list[int]
    outputs: list[int]
    options: Table | None
    custom_options: bytes = b""
    version: int = 1


@dataclass
class TFLiteModel:
    """The first subgraph of a TFLite model."""

    tensors: list[TensorInfo]
    operators: list[OperatorInfo]
    inputs: list[int]
    outputs: list[int]
    description: str = ""
    extra: dict = field(default_factory=dict)


def read_model(path) -> TFLiteModel:
    """Parse a `.tflite` file.

    Args:
        path: the model file.

    Returns:
        The first subgraph with constant tensors as numpy arrays (NHWC / OHWI, as TFLite stores them).
    """
    with open(path, "rb") as fh:
        buf = fh.read()
    model = Table(buf, struct.unpack_from("<I", buf, 0)[0])
    codes = []
    for oc in model.vector(1):
        code = max(oc.scalar(0, "<b"), oc.scalar(3, "<i"))
        name = oc.string(1) if code == 32 else BUILTIN_NAMES.get(code, f"BUILTIN_{code}")
        codes.append((name, oc.scalar(2, "<i", 1)))
    buffers = [b.bytes(0) for b in model.vector(4)]
    sub = model.vector(2)[0]
    tensors = []
    for i, t in enumerate(sub.vector(0)):
        shape = tuple(t.vector(0, "<i4"))
        dtype = _DTYPES.get(t.scalar(1, "<b"))
        raw = buffers[t.scalar(2, "<I")] if t.scalar(2, "<I") < len(buffers) else b""
        data = None
        if raw and dtype is not None:
            data = np.frombuffer(raw, dtype=dtype).copy()
            if t.table(6) is None and data.size == int(np.prod(shape)):
                data = data.reshape(shape)
        extra = {"sparsity": t.table(6), "raw": raw} if t.table(6) is not None else {}
        tensors.append(TensorInfo(i, t.string(3), shape, dtype, data, extra))
    ops = []
    for o in sub.vector(3):
        op, version = codes[o.scalar(0, "<I")]
        ops.append(OperatorInfo(op, o.vector(1, "<i4"), o.vector(2, "<i4"), o.table(4), o.bytes(5), version))
    return TFLiteModel(tensors, ops, sub.vector(1, "<i4"), sub.vector(2, "<i4"), model.string(3))
