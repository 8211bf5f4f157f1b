"""4-lane float32 vector arithmetic usable inside numba kernels.

numba leaves LLVM's SLP vectoriser off (``NUMBA_SLP_VECTORIZE=0``) and its loop vectoriser does
not vectorise data-dependent gathers, so a bicubic tap of an RGB float32 image stays 3 scalar
loads, multiplies and adds per channel. Loading the 3 channels of a tap (plus the next float,
a lane that is computed and dropped) as one 4-lane vector does the same IEEE operations lane by
lane, in the same order, so results stay bit-identical to the scalar code, in about a third of
the instructions.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["bicubic_taps_rgb"]


def _is_int4(t) -> bool:
    """Whether t is a numba UniTuple of 4 integers."""
    return isinstance(t, types.UniTuple) and t.count == 4 and isinstance(t.dtype, types.Integer)


def _is_f32x4(t) -> bool:
    """Whether t is a numba UniTuple of 4 float32."""
    return isinstance(t, types.UniTuple) and t.count == 4 and t.dtype == types.float32


@intrinsic
def bicubic_taps_rgb(typingctx, flat, rows, cols, wx, wy):  # noqa: ARG001  (numba intrinsic signature)
    """The Keys bicubic sums of an interleaved RGB float32 image, 4 lanes at a time.

    For each channel c, ``sum_i (((t[i,0] * wx0 + t[i,1] * wx1) + t[i,2] * wx2) + t[i,3] * wx3) * wy_i``
    accumulated from 0.0 over i = 0..3 in order, where ``t[i, j] = flat[rows[i] + cols[j] + c]``:
    exactly the scalar formula, evaluated for the 3 channels (and a fourth, dropped lane) at once.

    Args:
        flat: 1-D C-contiguous float32 array, the image [H, W, 3] raveled.
        rows: 4 flat offsets of the tap rows (row index * W * 3).
        cols: 4 flat offsets of the tap columns (column index * 3).
        wx, wy: 4 float32 column and row weights.

    Returns:
        (p0, p1, p2) float32, the unclamped sums of the 3 channels.

    The caller guarantees ``rows[i] + cols[j] + 3 < flat.size`` for every tap (the fourth lane
    reads the float after the tap's blue); no bounds are checked.
    """
    if not (isinstance(flat, types.Array) and flat.ndim == 1 and flat.layout == "C" and flat.dtype == types.float32
            and _is_int4(rows) and _is_int4(cols) and _is_f32x4(wx) and _is_f32x4(wy)):
        return None
    sig = types.UniTuple(types.float32, 3)(flat, rows, cols, wx, wy)

    def codegen(context, builder, signature, args):
        flat_type = signature.args[0]
        array = context.make_array(flat_type)(context, builder, args[0])
        f32 = ir.FloatType()
        vec = ir.VectorType(f32, 4)
        vec_ptr = vec.as_pointer()
        i64 = ir.IntType(64)

        def offsets(value, tup_type):
            return [context.cast(builder, builder.extract_value(value, k), tup_type.dtype, types.int64)
                    for k in range(4)]

        def splat(x):
            v = ir.Constant(vec, ir.Undefined)
            for k in range(4):
                v = builder.insert_element(v, x, i64(k))
            return v

        row_off = offsets(args[1], signature.args[1])
        col_off = offsets(args[2], signature.args[2])
        bx = [splat(builder.extract_value(args[3], k)) for k in range(4)]
        by = [splat(builder.extract_value(args[4], k)) for k in range(4)]
        acc = ir.Constant(vec, [ir.Constant(f32, 0.0)] * 4)
        for i in range(4):
            row = None
            for j in range(4):
                ptr = builder.gep(array.data, [builder.add(row_off[i], col_off[j])])
                tap = builder.load(builder.bitcast(ptr, vec_ptr), align=4)
                term = builder.fmul(tap, bx[j])
                row = term if row is None else builder.fadd(row, term)
            acc = builder.fadd(acc, builder.fmul(row, by[i]))
        lanes = [builder.extract_element(acc, i64(c)) for c in range(3)]
        return context.make_tuple(builder, signature.return_type, lanes)

    return sig, codegen
