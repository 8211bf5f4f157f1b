"""A software prefetch usable inside numba kernels.

Gathers from a large texture (1024^2 RGB float32 is 12 MB, well beyond L2) are latency-bound:
the out-of-order window sees only a few pixels ahead. Prefetching the texel rows a few pixels
ahead keeps more cache misses in flight (about 1.5x faster bilinear sampling at 256^2 here).
"""

from __future__ import annotations

from llvmlite import ir
from llvmlite.binding import llvm_version_info
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["prefetch_row"]


def _prefetch_name() -> str:
    """llvm.prefetch is overloaded on the pointer type: 'p0' with opaque pointers, else 'p0i8'.

    LLVM 17+ has only opaque pointers, whatever llvmlite's IR layer prints; older LLVM follows
    llvmlite's own pointer mode.
    """
    if llvm_version_info[0] >= 17:
        return "llvm.prefetch.p0"
    return "llvm.prefetch." + ir.IntType(8).as_pointer().intrinsic_name


@intrinsic
def prefetch_row(typingctx, arr, row):  # noqa: ARG001  (numba intrinsic signature)
    """Hint the CPU to load the cache line holding arr[row, 0] (2-D array, read, keep in cache).

    A no-op for correctness: no bounds check is needed because a prefetch never faults, but
    callers pass valid rows anyway.
    """
    if not (isinstance(arr, types.Array) and arr.ndim == 2 and isinstance(row, types.Integer)):
        return None
    sig = types.void(arr, row)

    def codegen(context, builder, signature, args):
        arr_type, row_type = signature.args
        array = context.make_array(arr_type)(context, builder, args[0])
        r = context.cast(builder, args[1], row_type, types.intp)
        zero = context.get_constant(types.intp, 0)
        ptr = cgutils.get_item_pointer(context, builder, arr_type, array, [r, zero], wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), _prefetch_name()
        )
        # (address, rw = read, locality = keep in all cache levels, cache type = data)
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen
