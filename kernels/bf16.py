"""Mixed precision GEMM: bfloat16 products over float32 operands, results and sums.

``gemm_bf16(A, B, C, trans_a, trans_b, alpha, beta)`` computes
C = alpha * op(A) @ op(B) + beta * C with ``kernels.blas.gemm``'s calling convention
(float32 arrays, row-major or their ``.T`` views, row ranges; callable from ``@njit``
code), but A and B are first rounded to bfloat16 (round to nearest, ties to even; NaN
stays NaN, inf stays inf): the products are those of the bf16 values (exact in
float32), accumulated in float32. A and B are not modified.

Backends (``BF16_BACKEND``), chosen at import from the CPU features LLVM reports
(Numba's own target features when ``NUMBA_CPU_FEATURES`` is set):

- ``"avx512bf16"``: our kernel on ``vdpbf16ps`` (AVX512-BF16: AMD Zen 4 and later,
  Intel Cooper Lake, Sapphire Rapids and later). Both operands are packed to bf16 in
  each call, pairs of consecutive k in each 32-bit lane as the instruction reads them:
  op(B) whole, in panels of 32 columns, by the calling thread; op(A) 12 rows at a time,
  by the thread that then computes those rows of C, tile by tile (12 x 32, 24 zmm
  accumulators, over the whole of k; smaller tiles at the edges). Numba's threads
  split the row panels of C (``PARALLEL_MIN_MNK`` up; one parallel region per call).
  Each element of C is computed by one thread in one fixed order, so the bits do not
  depend on the thread count. As the instructions define (``vcvtne2ps2bf16`` packs,
  ``vdpbf16ps`` multiplies and adds), subnormal operands and subnormal sums are
  flushed to zero (|x| < 2**-126; not the values of a network's activations and
  weights), and each lane adds the odd-k product, then the even-k one, rounding after
  each. On a 2-core AMD EPYC (Zen 4), one thread: 200-215 GFLOP/s on a training
  step's shapes, packing included, 2.0-2.1x our SGEMM (OpenBLAS).
- ``"mkl"``: oneMKL's ``cblas_gemm_bf16bf16f32`` after a conversion of A and B to bf16,
  where ``kernels.blas`` runs on oneMKL and the CPU is an Intel one with AVX512-BF16
  or AMX (where MKL is fast; on an AMD Zen 4 it measured no faster than SGEMM).
- ``"none"``: neither; ``gemm_bf16`` still gives bf16 products by emulation (below),
  and the ``nn`` API trains in float32 instead.

``NUMBA_NN_BF16=avx512bf16|mkl|emulate|none`` in the environment before the first
import forces a backend (ImportError where it cannot run). ``"emulate"`` rounds A and
B to bf16 values in float32 arrays and calls ``kernels.blas.gemm``: the same products,
summed in SGEMM's order; slower than SGEMM, for tests on any CPU.

The backend is read at run time from a C symbol (``numba_nn_bf16_backend``) that this
module defines at import, as ``kernels.blas`` does for its BLAS: a cached kernel, or the
user's cached code calling ``gemm_bf16``, stays valid whichever backend a later
process chooses.

Also: ``round_to_bf16(X, out)`` (float32 values rounded to bf16, kept in float32) and
``to_bf16_bits(X, out)`` (the bf16 bit patterns, uint16), both for 1-D or 2-D arrays.
"""
import contextlib
import ctypes
import os
import sys

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import carray, njit, prange, types
from numba.core import cgutils, config
from numba.extending import intrinsic

from . import _cache, blas
from ._parallel import serial_and_parallel
from .blas import _NO_TRANS, _ROW_MAJOR, _TRANS, cpu_vendor

#: Rows and columns of C in one tile of the avx512bf16 micro-kernel: MR rows of
#: 2 x 16 float32 accumulators (24 of the 32 zmm registers).
MR = 12
NV = 2
NR = 16 * NV

_CODE = {"none": 0, "emulate": 1, "avx512bf16": 2, "mkl": 3}
_AVX512BF16, _MKL = _CODE["avx512bf16"], _CODE["mkl"]


def _target_features():
    """{feature: bool} of the CPU Numba compiles for."""
    if config.CPU_FEATURES is not None:
        return {f[1:]: f[0] == "+" for f in config.CPU_FEATURES.split(",") if f}
    try:
        return dict(llvm.get_host_cpu_features())
    except RuntimeError:
        return {}


_FEATURES = _target_features()
#: Whether the CPU has AVX512-BF16 (``vdpbf16ps``), and AMX-BF16.
HAS_AVX512BF16 = bool(_FEATURES.get("avx512bf16") and _FEATURES.get("avx512bw"))
HAS_AMX_BF16 = bool(_FEATURES.get("amx-bf16"))


def _mkl_bf16_address():
    """Address of oneMKL's cblas_gemm_bf16bf16f32 when kernels.blas runs on oneMKL."""
    if blas.BACKEND != "mkl":
        return None
    fn = getattr(blas._lib, "cblas_gemm_bf16bf16f32", None)
    return None if fn is None else ctypes.cast(fn, ctypes.c_void_p).value


def _choose(mkl_address):
    wanted = os.environ.get("NUMBA_NN_BF16", "").strip().lower()
    if wanted not in ("", *_CODE):
        raise ImportError("NUMBA_NN_BF16 must be 'avx512bf16', 'mkl', 'emulate' or "
                          f"'none'; got {wanted!r}.")
    if wanted == "avx512bf16" and not HAS_AVX512BF16:
        raise ImportError("NUMBA_NN_BF16=avx512bf16, but the CPU has no AVX512-BF16.")
    if wanted == "mkl" and mkl_address is None:
        raise ImportError("NUMBA_NN_BF16=mkl needs kernels.blas on oneMKL "
                          "(NUMBA_NN_BLAS=mkl, pip install mkl).")
    if wanted:
        return wanted
    if (mkl_address is not None and cpu_vendor() == "GenuineIntel"
            and (HAS_AMX_BF16 or HAS_AVX512BF16)):
        return "mkl"
    return "avx512bf16" if HAS_AVX512BF16 else "none"


# A stand-in for the MKL symbol where oneMKL is absent: jitted code links against the
# symbol whatever the backend, and only calls it when the backend is "mkl".
_MKL_PROTO = ctypes.CFUNCTYPE(
    None, *([ctypes.c_int] * 6), ctypes.c_float, ctypes.c_void_p, ctypes.c_int,
    ctypes.c_void_p, ctypes.c_int, ctypes.c_float, ctypes.c_void_p, ctypes.c_int)
_mkl_stub = _MKL_PROTO(lambda *args: None)

_mkl_address = _mkl_bf16_address()
#: The backend of ``gemm_bf16``: "avx512bf16", "mkl", "emulate" (forced only) or "none".
BF16_BACKEND = _choose(_mkl_address)
_backend_cell = ctypes.c_int32(_CODE[BF16_BACKEND])
llvm.add_symbol("numba_nn_bf16_backend", ctypes.addressof(_backend_cell))
llvm.add_symbol("numba_nn_gemm_bf16bf16f32",
                _mkl_address or ctypes.cast(_mkl_stub, ctypes.c_void_p).value)


def available_backends():
    """The backends ``gemm_bf16`` can run in this process: "emulate" (and "none"),
    "avx512bf16" where the CPU has it, "mkl" where kernels.blas runs on oneMKL."""
    names = ["emulate", "none"]
    if HAS_AVX512BF16:
        names.append("avx512bf16")
    if _mkl_address is not None:
        names.append("mkl")
    return names


def _set_backend(name):
    """Run ``gemm_bf16`` on backend ``name`` from now on, in this process (for tests
    and benchmarks; ``BF16_BACKEND`` keeps the import's choice). Returns the name
    that was in use."""
    if name not in available_backends():
        raise ValueError(f"bf16 backend {name!r} is not available here "
                         f"({available_backends()})")
    previous = {code: key for key, code in _CODE.items()}[_backend_cell.value]
    _backend_cell.value = _CODE[name]
    return previous


_i = types.int32
_mkl_gemm_bf16 = types.ExternalFunction("numba_nn_gemm_bf16bf16f32", types.void(
    _i, _i, _i, _i, _i, _i, types.float32, types.CPointer(types.uint16), _i,
    types.CPointer(types.uint16), _i, types.float32, types.CPointer(types.float32), _i))

# The kernels cache where the package's do (kernels/__init__ imports this module inside
# its ``caching_in`` block; imported on its own, this keeps that folder).
_CACHE_DIR = getattr(sys.modules[__package__], "CACHE_DIR", None)


def _caching():
    return (contextlib.nullcontext() if _CACHE_DIR is None
            else _cache.caching_in(_CACHE_DIR))


def _jit(**options):
    def decorate(py_func):
        with _caching():
            return njit(cache=True, **options)(py_func)
    return decorate


# --- LLVM IR building blocks --------------------------------------------------------

_I16, _I32, _F32 = ir.IntType(16), ir.IntType(32), ir.FloatType()
_V16F, _V16I = ir.VectorType(_F32, 16), ir.VectorType(_I32, 16)


class _BFloat(ir.Type):
    """LLVM's ``bfloat`` (llvmlite's IR layer has no such type)."""

    def _to_string(self):
        return "bfloat"

    def __eq__(self, other):
        return isinstance(other, _BFloat)

    def __hash__(self):
        return hash(_BFloat)


# LLVM 17 made the operands of the AVX512-BF16 intrinsics bfloat vectors (before: i32).
_DP_OPERAND = (ir.VectorType(_BFloat(), 32) if llvm.llvm_version_info[0] >= 17 else _V16I)


def _bf16_ir(builder, x):
    """i32 bf16 bits (high half zero) of float32 ``x``: round to nearest even, NaN kept
    a NaN (quieted, sign and top payload kept), inf stays inf."""
    u = builder.bitcast(x, _I32)
    rounded = builder.lshr(builder.add(builder.add(u, _I32(0x7FFF)),
                                       builder.and_(builder.lshr(u, _I32(16)), _I32(1))),
                           _I32(16))
    nan = builder.icmp_unsigned(">", builder.and_(u, _I32(0x7FFFFFFF)), _I32(0x7F800000))
    quiet = builder.or_(builder.lshr(u, _I32(16)), _I32(0x40))
    return builder.select(nan, quiet, rounded)


@intrinsic
def _bf16_of(typingctx, x):
    """uint16 bf16 bits of a float32."""
    if x != types.float32:
        return None

    def codegen(context, builder, sig, args):
        return builder.trunc(_bf16_ir(builder, args[0]), _I16)
    return types.uint16(types.float32), codegen


@intrinsic
def _bf16_pair(typingctx, lo, hi):
    """uint32: bf16(lo) in the low half, bf16(hi) in the high half."""
    if lo != types.float32 or hi != types.float32:
        return None

    def codegen(context, builder, sig, args):
        return builder.or_(_bf16_ir(builder, args[0]),
                           builder.shl(_bf16_ir(builder, args[1]), _I32(16)))
    return types.uint32(types.float32, types.float32), codegen


@intrinsic
def _bf16_round(typingctx, x):
    """float32 ``x`` rounded to the nearest bf16 value."""
    if x != types.float32:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(builder.shl(_bf16_ir(builder, args[0]), _I32(16)), _F32)
    return types.float32(types.float32), codegen


@intrinsic
def _backend_code(typingctx):
    """The backend's code, read from the symbol this module defines at import."""
    def codegen(context, builder, sig, args):
        module = builder.module
        gv = module.globals.get("numba_nn_bf16_backend")
        if gv is None:
            gv = ir.GlobalVariable(module, _I32, "numba_nn_bf16_backend")
            gv.linkage = "external"
        return builder.load(gv)
    return types.int32(), codegen


@intrinsic
def _f32_ptr(typingctx, address):
    """A float32 pointer from an integer address (to view a strided block's rows)."""
    if not isinstance(address, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], context.get_value_type(sig.return_type))
    return types.CPointer(types.float32)(address), codegen


def _dp_function(module):
    fnty = ir.FunctionType(_V16F, [_V16F, _DP_OPERAND, _DP_OPERAND])
    return cgutils.get_or_insert_function(module, fnty, "llvm.x86.avx512bf16.dpbf16ps.512")


def _masked_function(module, store):
    ptr = _F32.as_pointer()
    mask = ir.VectorType(ir.IntType(1), 16)
    if store:
        fnty = ir.FunctionType(ir.VoidType(), [_V16F, ptr, _I32, mask])
        return cgutils.get_or_insert_function(module, fnty, "llvm.masked.store.v16f32.p0")
    fnty = ir.FunctionType(_V16F, [ptr, _I32, mask, _V16F])
    return cgutils.get_or_insert_function(module, fnty, "llvm.masked.load.v16f32.p0")


def _make_tile(rows, nv=NV):
    """The micro-kernel intrinsic for tiles of ``rows`` x 16*nv (rows <= MR, nv <= NV:
    the first 16*nv columns of a panel)."""

    @intrinsic
    def tile(typingctx, bc, bc_off, sp, sr, vp, vp_off, kp, c_addr, c_off, ldc, alpha, beta,
              m_valid, n_valid):
        """One rows x 16*nv tile of C from packed bf16 pairs, over kp pairs of k:

        acc[r, j] = sum over p of the pair products bc[bc_off + p*sp + r*sr] . vp[vp_off +
        p*NR + j] (``vdpbf16ps``: per lane, the odd-k product added first), then, for
        r < m_valid and j < n_valid, C[c_off + r*ldc + j] = alpha * acc (+ beta * C when
        beta != 0; C is not read when beta == 0). bc, vp uint32 1-D; C a float32 address.
        """
        intp = types.intp
        sig = types.void(bc, intp, intp, intp, vp, intp, intp, types.uintp, intp, intp,
                         types.float32, types.float32, intp, intp)

        def codegen(context, builder, sig, args):
            (bc_, bc_off_, sp_, sr_, vp_, vp_off_, kp_, c_, c_off_, ldc_, alpha_, beta_,
             m_valid_, n_valid_) = args
            bc_ptr = context.make_array(sig.args[0])(context, builder, bc_).data
            vp_ptr = context.make_array(sig.args[4])(context, builder, vp_).data
            c_ptr = builder.inttoptr(c_, _F32.as_pointer())
            bc_ptr = builder.gep(bc_ptr, [bc_off_])
            vp_ptr = builder.gep(vp_ptr, [vp_off_])
            c_ptr = builder.gep(c_ptr, [c_off_])
            intp_t = context.get_value_type(intp)
            if not _has_avx512bf16(context):
                return _trap(context, builder)
            dp = _dp_function(builder.module)
            zero = ir.Constant(_V16F, [0.0] * 16)
            accs = [[cgutils.alloca_once_value(builder, zero) for _ in range(nv)]
                    for _ in range(rows)]
            row_offsets = [builder.mul(intp_t(r), sr_) for r in range(rows)]
            with cgutils.for_range(builder, kp_) as loop:
                p = loop.index
                b_row = builder.gep(vp_ptr, [builder.mul(p, intp_t(NR))])
                bvecs = []
                for v in range(nv):
                    ptr = builder.bitcast(builder.gep(b_row, [intp_t(16 * v)]),
                                          _V16I.as_pointer())
                    bvecs.append(builder.bitcast(builder.load(ptr, align=4), _DP_OPERAND))
                a_row = builder.gep(bc_ptr, [builder.mul(p, sp_)])
                for r in range(rows):
                    a = builder.load(builder.gep(a_row, [row_offsets[r]]), align=4)
                    a = builder.bitcast(_splat(builder, a, _V16I), _DP_OPERAND)
                    for v in range(nv):
                        acc = builder.load(accs[r][v])
                        builder.store(builder.call(dp, [acc, a, bvecs[v]]), accs[r][v])
            # Stores: lanes j < n_valid of rows r < m_valid.
            masks = [_lane_mask(builder, builder.sub(n_valid_, intp_t(16 * v)), 16)
                     for v in range(nv)]
            mstore = _masked_function(builder.module, True)
            mload = _masked_function(builder.module, False)
            alpha_v = _splat(builder, alpha_, _V16F)
            beta_v = _splat(builder, beta_, _V16F)
            beta_zero = builder.fcmp_ordered("==", beta_, ir.Constant(_F32, 0.0))
            with builder.if_else(beta_zero) as (then, otherwise):
                for read_c in (False, True):
                    with (otherwise if read_c else then):
                        for r in range(rows):
                            with builder.if_then(builder.icmp_signed("<", intp_t(r), m_valid_),
                                                 likely=True):
                                c_row = builder.gep(c_ptr, [builder.mul(intp_t(r), ldc_)])
                                for v in range(nv):
                                    ptr = builder.gep(c_row, [intp_t(16 * v)])
                                    out = builder.fmul(builder.load(accs[r][v]), alpha_v)
                                    if read_c:
                                        old = builder.call(mload,
                                                           [ptr, _I32(4), masks[v], zero])
                                        out = builder.fadd(out, builder.fmul(old, beta_v))
                                    builder.call(mstore, [out, ptr, _I32(4), masks[v]])
            return context.get_dummy_value()
        return sig, codegen
    return tile


# Full tiles, and the smaller ones of the edge panels: a panel's last rows (mv <= 8,
# mv <= 4) and its last 16 columns or fewer (as in n = 784 = 24 * 32 + 16, n = 10).
_tile, _tile8, _tile4 = _make_tile(MR), _make_tile(8), _make_tile(4)
_tile_h, _tile8_h, _tile4_h = _make_tile(MR, 1), _make_tile(8, 1), _make_tile(4, 1)


def _has_avx512bf16(context):
    """Whether the target Numba compiles for has AVX512-BF16 (and AVX512BW)."""
    features = getattr(context.codegen(), "_tm_features", None)
    if features is None:
        return HAS_AVX512BF16
    features = features.split(",")
    return "+avx512bf16" in features and "+avx512bw" in features


def _trap(context, builder):
    # The code of an avx512bf16 intrinsic on a target without it: never run, since
    # BF16_BACKEND is "avx512bf16" only where the target has it.
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                        "llvm.trap")
    builder.call(fn, [])
    return context.get_dummy_value()


def _splat(builder, value, vtype):
    undef = ir.Constant(vtype, ir.Undefined)
    one = builder.insert_element(undef, value, _I32(0))
    return builder.shuffle_vector(one, undef, ir.Constant(ir.VectorType(_I32, vtype.count),
                                                          [0] * vtype.count))


def _lane_mask(builder, count, lanes):
    """<lanes x i1>: lane < count (count an integer value)."""
    vtype = ir.VectorType(_I32, lanes)
    return builder.icmp_signed("<", ir.Constant(vtype, list(range(lanes))),
                               _splat(builder, builder.trunc(count, _I32), vtype))


def _load16(builder, address, count):
    """Floats address[0:count] (count <= 16; the other lanes zero), masked load."""
    ptr = builder.inttoptr(address, _F32.as_pointer())
    zero = ir.Constant(_V16F, [0.0] * 16)
    return builder.call(_masked_function(builder.module, False),
                        [ptr, _I32(4), _lane_mask(builder, count, 16), zero])


def _cvt2(builder, lo, hi):
    """<32 x i16>: bf16 of lo's 16 floats then hi's (vcvtne2ps2bf16: round to nearest
    even; float32 subnormals read as zero)."""
    fnty = ir.FunctionType(_DP_OPERAND, [_V16F, _V16F])
    fn = cgutils.get_or_insert_function(builder.module, fnty,
                                        "llvm.x86.avx512bf16.cvtne2ps2bf16.512")
    return builder.bitcast(builder.call(fn, [hi, lo]), ir.VectorType(_I16, 32))


def _masked_store_int(builder, value, ptr, count):
    vtype = value.type
    name = f"llvm.masked.store.v{vtype.count}i{vtype.element.width}.p0"
    fnty = ir.FunctionType(ir.VoidType(), [vtype, vtype.element.as_pointer(), _I32,
                                           ir.VectorType(ir.IntType(1), vtype.count)])
    fn = cgutils.get_or_insert_function(builder.module, fnty, name)
    builder.call(fn, [value, ptr, _I32(4), _lane_mask(builder, count, vtype.count)])


@intrinsic
def _pack_pairs16(typingctx, dst, dst_off, lo, hi, n_lo, n_hi, n_store):
    """dst[dst_off + j] = bf16 pair (lo[j], hi[j]) for j < n_store <= 16, where lo and hi
    are float32 addresses and lo[j] reads 0 from j >= n_lo, hi[j] from j >= n_hi."""
    intp = types.intp
    sig = types.void(dst, intp, types.uintp, types.uintp, intp, intp, intp)

    def codegen(context, builder, sig, args):
        dst_, dst_off_, lo_, hi_, n_lo_, n_hi_, n_store_ = args
        if not _has_avx512bf16(context):
            return _trap(context, builder)
        words = _cvt2(builder, _load16(builder, lo_, n_lo_), _load16(builder, hi_, n_hi_))
        undef = ir.Constant(words.type, ir.Undefined)
        order = [j // 2 + 16 * (j % 2) for j in range(32)]   # lo0 hi0 lo1 hi1 ...
        pairs = builder.shuffle_vector(words, undef, ir.Constant(ir.VectorType(_I32, 32),
                                                                 order))
        ptr = context.make_array(sig.args[0])(context, builder, dst_).data
        _masked_store_int(builder, builder.bitcast(pairs, _V16I),
                          builder.gep(ptr, [dst_off_]), n_store_)
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def _transpose16(typingctx, src, src_off, src_ld, dst, dst_off, dst_ld, rows):
    """dst[dst_off + i*dst_ld + j] = src[src_off + j*src_ld + i] for i < rows <= 16,
    j < 16: a 16 x 16 block of 32-bit words transposed in registers (four stages of
    two-vector shuffles)."""
    intp = types.intp
    sig = types.void(src, intp, intp, dst, intp, intp, intp)

    def codegen(context, builder, sig, args):
        src_, src_off_, src_ld_, dst_, dst_off_, dst_ld_, rows_ = args
        intp_t = context.get_value_type(types.intp)
        sptr = builder.gep(context.make_array(sig.args[0])(context, builder, src_).data,
                           [src_off_])
        dptr = builder.gep(context.make_array(sig.args[3])(context, builder, dst_).data,
                           [dst_off_])
        vptr = _V16I.as_pointer()
        row_ptrs = [builder.gep(sptr, [builder.mul(intp_t(j), src_ld_)]) for j in range(16)]
        vec = [builder.load(builder.bitcast(row, vptr), align=4) for row in row_ptrs]
        # Stage d swaps element (r, l) with (r ^ d, l ^ d) where bit d of r is 0 and of
        # l is 1; after the four stages (r, l) has moved to (l, r).
        mtype = ir.VectorType(_I32, 16)
        for d in (1, 2, 4, 8):
            keep_a = [lane if not lane & d else 16 + (lane ^ d) for lane in range(16)]
            keep_b = [16 + lane if lane & d else lane ^ d for lane in range(16)]
            for r in range(16):
                if r & d:
                    continue
                a, b = vec[r], vec[r ^ d]
                vec[r] = builder.shuffle_vector(a, b, ir.Constant(mtype, keep_a))
                vec[r ^ d] = builder.shuffle_vector(a, b, ir.Constant(mtype, keep_b))
        for i in range(16):
            with builder.if_then(builder.icmp_signed("<", intp_t(i), rows_), likely=True):
                ptr = builder.gep(dptr, [builder.mul(intp_t(i), dst_ld_)])
                builder.store(vec[i], builder.bitcast(ptr, vptr), align=4)
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def _pack_bf16_32(typingctx, dst, dst_off, src, n):
    """dst[dst_off + j] = bf16(src[j]) for j < n <= 32: dst uint16, src a float32
    address."""
    intp = types.intp
    sig = types.void(dst, intp, types.uintp, intp)

    def codegen(context, builder, sig, args):
        dst_, dst_off_, src_, n_ = args
        if not _has_avx512bf16(context):
            return _trap(context, builder)
        intp_t = context.get_value_type(types.intp)
        n_hi = builder.sub(n_, intp_t(16))
        words = _cvt2(builder, _load16(builder, src_, n_),
                      _load16(builder, builder.add(src_, intp_t(64)), n_hi))
        ptr = context.make_array(sig.args[0])(context, builder, dst_).data
        _masked_store_int(builder, words, builder.gep(ptr, [dst_off_]), n_)
        return context.get_dummy_value()
    return sig, codegen


# --- elementwise conversions ----------------------------------------------------------

@_jit()
def round_to_bf16(X, out):
    """out = X rounded to the nearest bfloat16 value (ties to even), kept in float32.

    X, out float32 arrays of one shape, 1-D or 2-D (any strides; out may be X). NaN
    stays NaN (quieted), +-inf stays +-inf, finite values beyond bf16's largest round
    to +-inf as the rounding says; subnormals are rounded, not flushed.
    """
    if X.ndim == 1:
        for i in range(X.shape[0]):
            out[i] = _bf16_round(X[i])
    else:
        for i in range(X.shape[0]):
            xi, oi = X[i], out[i]
            for j in range(X.shape[1]):
                oi[j] = _bf16_round(xi[j])


@_jit()
def to_bf16_bits(X, out):
    """out = the bfloat16 bit patterns (uint16) of X rounded as in ``round_to_bf16``.

    X float32, out uint16, one shape, 1-D or 2-D.
    """
    if X.ndim == 1:
        for i in range(X.shape[0]):
            out[i] = _bf16_of(X[i])
    else:
        for i in range(X.shape[0]):
            xi, oi = X[i], out[i]
            for j in range(X.shape[1]):
                oi[j] = _bf16_of(xi[j])


# --- operands as row-major blocks -----------------------------------------------------

@_jit(inline="always")
def _block(M, trans):
    """(address, rows, cols, ld, op_is_block) of the row-major block behind the float32
    matrix M (M itself, or M.T for a column-major M): op(M) is that block when
    op_is_block, else its transpose."""
    s0, s1 = M.strides
    r, c = M.shape
    if s1 == 4 and s0 % 4 == 0 and s0 >= max(c, 1) * 4:
        return M.ctypes.data, r, c, s0 // 4, not bool(trans)
    if s0 == 4 and s1 % 4 == 0 and s1 >= max(r, 1) * 4:
        return M.ctypes.data, c, r, s1 // 4, bool(trans)
    raise ValueError("gemm_bf16: each matrix needs one unit stride (a row- or column-major "
                     "block, such as a C-contiguous array or its .T)")


@_jit(inline="always")
def _row(address, ld, i, n):
    """Row i (n float32 values) of a row-major block, as a C-contiguous 1-D array."""
    return carray(_f32_ptr(address + i * ld * 4), n)


@_jit(inline="always")
def _aligned(size):
    """(uint32 buffer, offset): buffer[offset:offset + size] starts 64-byte aligned."""
    buf = np.empty(size + 16, np.uint32)
    return buf, ((64 - buf.ctypes.data % 64) % 64) // 4


@_jit(inline="always")
def _round_block(address, rows, cols, ld):
    """A C-contiguous float32 copy of the block, rounded to bf16 values."""
    out = np.empty((rows, cols), np.float32)
    for i in range(rows):
        src, dst = _row(address, ld, i, cols), out[i]
        for j in range(cols):
            dst[j] = _bf16_round(src[j])
    return out


@_jit(inline="always")
def _bits_block(address, rows, cols, ld):
    """The block's bf16 bits, C-contiguous uint16."""
    out = np.empty((rows, cols), np.uint16)
    for i in range(rows):
        src, dst = _row(address, ld, i, cols), out[i]
        for j in range(cols):
            dst[j] = _bf16_of(src[j])
    return out


# --- the three paths, on blocks given by address (one compilation for every layout) ---

@_jit()
def _gemm_emulate(a_addr, a_rows, a_cols, lda, a_op, b_addr, b_rows, b_cols, ldb, b_op,
                  c_addr, ldc, m, n, k, alpha, beta):
    Ar = _round_block(a_addr, a_rows, a_cols, lda)
    Br = _round_block(b_addr, b_rows, b_cols, ldb)
    C = carray(_f32_ptr(c_addr), (m, ldc))[:, :n]
    blas.gemm(Ar, Br, C, not a_op, not b_op, alpha, beta)


@_jit()
def _gemm_mkl(a_addr, a_rows, a_cols, lda, a_op, b_addr, b_rows, b_cols, ldb, b_op,
              c_addr, ldc, m, n, k, alpha, beta):
    Ab = _bits_block(a_addr, a_rows, a_cols, lda)
    Bb = _bits_block(b_addr, b_rows, b_cols, ldb)
    _mkl_gemm_bf16(_ROW_MAJOR, _NO_TRANS if a_op else _TRANS, _NO_TRANS if b_op else _TRANS,
                   m, n, k, np.float32(alpha), Ab.ctypes, max(a_cols, 1), Bb.ctypes,
                   max(b_cols, 1), np.float32(beta), _f32_ptr(c_addr), ldc)


@_jit(inline="always")
def _panel_rows(address, ld, i0, mv, k, panel, off, ldk):
    """Rows i0 .. i0 + mv of op(A) = the block (k contiguous) as bf16 rows of ldk pairs:
    panel16[2*(off + r*ldk) + kk] = bf16(A[i0 + r, kk]); zeros after an odd k and in
    the rows mv .. MR of an edge panel."""
    panel16 = panel.view(np.uint16)
    kp = (k + 1) // 2
    for r in range(mv):
        src = address + (i0 + r) * ld * 4
        base = 2 * (off + r * ldk)
        for c in range(0, k, 32):
            _pack_bf16_32(panel16, base + c, src + c * 4, min(32, k - c))
        if k % 2 == 1:
            panel16[base + k] = 0
    for r in range(mv, MR):
        dst = panel[off + r * ldk:off + r * ldk + kp]
        for p in range(kp):
            dst[p] = 0


@_jit(inline="always")
def _panel_pairs(address, ld, i0, mv, k, panel, off):
    """Columns i0 .. i0 + mv of op(A) = the transpose of the (k, m) block (i
    contiguous) as pairs: panel[off + p*MR + r] = bf16 pair (block[2p, i0 + r],
    block[2p + 1, i0 + r]); zero for the row after an odd k and for r >= mv."""
    start = address + i0 * 4
    for p in range((k + 1) // 2):
        lo = start + 2 * p * ld * 4
        n_hi = mv if 2 * p + 1 < k else 0
        _pack_pairs16(panel, off + p * MR, lo, lo + ld * 4, mv, n_hi, MR)


# The loop bodies below are functions of their own, compiled once and called by both
# builds of _gemm_avx512 (as kernels.dense does): the builds then compile in seconds
# less, and run as fast (one call per panel).

@_jit(no_cfunc_wrapper=True)
def _pack_pair_row(address, ld, k, n, out, off, p):
    """Pair p of op(B) = the (k, n) block (j contiguous), into every panel of NR
    columns: out[off + (jp*kp + p)*NR + jj] = bf16 pair (B[2p, j], B[2p + 1, j]),
    j = jp*NR + jj; zero beyond n and k."""
    kp = (k + 1) // 2
    lo = address + 2 * p * ld * 4
    odd = 2 * p + 1 < k
    for jp in range((n + NR - 1) // NR):
        base = off + (jp * kp + p) * NR
        for v in range(NV):
            j = jp * NR + 16 * v
            count = max(0, min(16, n - j))
            _pack_pairs16(out, base + 16 * v, lo + j * 4, lo + (ld + j) * 4, count,
                          count if odd else 0, 16)


@_jit(no_cfunc_wrapper=True)
def _pack_panel_t(address, ld, k, n, out, off, jp, tmp):
    """Panel jp of op(B) = the transpose of the (n, k) block (k contiguous), as
    ``_pack_pair_row`` lays them out: a row-major bf16 copy of its NR rows in ``tmp``
    (NR * ldt words), transposed 16 x 16 pairs at a time. The copy's words past kp in
    each row, and its rows past n, are not written: they land in panel rows past kp
    (not stored) and in columns past n (whose sums are not stored)."""
    kp = (k + 1) // 2
    ldt = (kp + 15) // 16 * 16
    tmp16 = tmp.view(np.uint16)
    for jj in range(min(NR, n - jp * NR)):
        src = address + (jp * NR + jj) * ld * 4
        for c in range(0, k, 32):
            _pack_bf16_32(tmp16, 2 * jj * ldt + c, src + c * 4, min(32, k - c))
        if k % 2 == 1:
            tmp16[2 * jj * ldt + k] = 0
    base = off + jp * kp * NR
    for q in range(0, kp, 16):
        for v in range(NV):
            _transpose16(tmp, 16 * v * ldt + q, ldt, out, base + q * NR + 16 * v, NR,
                         min(16, kp - q))


@_jit(no_cfunc_wrapper=True)
def _row_panel(a_addr, lda, a_op, k, m, n, vp, vp_off, c_addr, ldc, a32, b32, ip):
    """Rows ip*MR .. ip*MR + MR of C: op(A)'s rows packed (the panel stays in L1:
    [r][p] rows of ldk pairs when k is contiguous in A, else [p][r]), then a tile per
    panel of op(B), each over all of k."""
    kp = (k + 1) // 2
    ldk = (kp + 15) // 16 * 16
    i0 = ip * MR
    mv = min(MR, m - i0)
    if a_op:
        sp, sr = 1, ldk
        panel, off = _aligned(MR * ldk)
        _panel_rows(a_addr, lda, i0, mv, k, panel, off, ldk)
    else:
        sp, sr = MR, 1
        panel, off = _aligned(kp * MR)
        _panel_pairs(a_addr, lda, i0, mv, k, panel, off)
    for jp in range((n + NR - 1) // NR):
        nv = min(NR, n - jp * NR)
        vo = vp_off + jp * kp * NR
        co = i0 * ldc + jp * NR
        # edge panels take smaller tiles (little work on padding)
        if nv > 16:
            if mv > 8:
                _tile(panel, off, sp, sr, vp, vo, kp, c_addr, co, ldc, a32, b32, mv, nv)
            elif mv > 4:
                _tile8(panel, off, sp, sr, vp, vo, kp, c_addr, co, ldc, a32, b32, mv, nv)
            else:
                _tile4(panel, off, sp, sr, vp, vo, kp, c_addr, co, ldc, a32, b32, mv, nv)
        elif mv > 8:
            _tile_h(panel, off, sp, sr, vp, vo, kp, c_addr, co, ldc, a32, b32, mv, nv)
        elif mv > 4:
            _tile8_h(panel, off, sp, sr, vp, vo, kp, c_addr, co, ldc, a32, b32, mv, nv)
        else:
            _tile4_h(panel, off, sp, sr, vp, vo, kp, c_addr, co, ldc, a32, b32, mv, nv)


def _gemm_avx512(a_addr, a_rows, a_cols, lda, a_op, b_addr, b_rows, b_cols, ldb, b_op,
                 c_addr, ldc, m, n, k, alpha, beta):
    kp = (k + 1) // 2
    n_pan = (n + NR - 1) // NR
    # op(B), packed once: NR columns per panel, pairs of k in each 32-bit lane
    # by the calling thread: a parallel loop of its own would wake the other threads
    # twice per call, which cost more than the packing (2-5% of the product) saves.
    vp, vp_off = _aligned(n_pan * kp * NR)
    if b_op:
        for p in range(kp):
            _pack_pair_row(b_addr, ldb, k, n, vp, vp_off, p)
    else:
        tmp = np.empty(NR * ((kp + 15) // 16 * 16), np.uint32)
        for jp in range(n_pan):
            _pack_panel_t(b_addr, ldb, k, n, vp, vp_off, jp, tmp)
    # op(A) and C, MR rows at a time
    a32, b32 = np.float32(alpha), np.float32(beta)
    for ip in prange((m + MR - 1) // MR):
        _row_panel(a_addr, lda, a_op, k, m, n, vp, vp_off, c_addr, ldc, a32, b32, ip)


with _caching():
    _gemm_avx512_serial, _gemm_avx512_parallel = serial_and_parallel(_gemm_avx512)

#: m * n * k from which the avx512bf16 path takes its parallel build (and C has more
#: than one panel of rows): 8M multiply-adds, about 80 us on one Zen 4 core. Below it
#: the threads' wake-up (15-50 us under OMP_WAIT_POLICY=PASSIVE on a 2-core VM) costs
#: more than the second thread saves.
PARALLEL_MIN_MNK = 1 << 23


@_jit()
def _gemm_blocks(a_addr, a_rows, a_cols, lda, a_op, b_addr, b_rows, b_cols, ldb, b_op,
                 c_addr, ldc, m, n, k, alpha, beta):
    code = _backend_code()
    if code == _AVX512BF16:
        if m * n * k >= PARALLEL_MIN_MNK and m > MR:
            _gemm_avx512_parallel(a_addr, a_rows, a_cols, lda, a_op, b_addr, b_rows, b_cols,
                                  ldb, b_op, c_addr, ldc, m, n, k, alpha, beta)
        else:
            _gemm_avx512_serial(a_addr, a_rows, a_cols, lda, a_op, b_addr, b_rows, b_cols,
                                ldb, b_op, c_addr, ldc, m, n, k, alpha, beta)
    elif code == _MKL:
        _gemm_mkl(a_addr, a_rows, a_cols, lda, a_op, b_addr, b_rows, b_cols, ldb, b_op,
                  c_addr, ldc, m, n, k, alpha, beta)
    else:
        _gemm_emulate(a_addr, a_rows, a_cols, lda, a_op, b_addr, b_rows, b_cols, ldb, b_op,
                      c_addr, ldc, m, n, k, alpha, beta)


@_jit()
def gemm_bf16(A, B, C, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """C = alpha * op(A) @ op(B) + beta * C with A and B rounded to bfloat16.

    ``kernels.blas.gemm``'s convention: A, B, C float32 2-D arrays, each with one unit
    stride (C-contiguous, a row range of one, or the ``.T`` of one; C's columns must be
    the unit stride); op(M) = M.T when its trans flag is set; op(A) (m, k), op(B)
    (k, n), C (m, n) written (read too when beta != 0). Shapes are not checked. With k
    zero, C = beta * C.

    Products of the bf16-rounded values (round to nearest even) are exact in float32
    and summed in float32 (the error of a k-term float32 sum). The backend is
    ``BF16_BACKEND``; avx512bf16 splits C's row panels among Numba's threads (the same
    bits for any thread count) and flushes subnormals (module docstring).
    """
    if A.itemsize != 4 or B.itemsize != 4 or C.itemsize != 4:
        raise ValueError("gemm_bf16: A, B and C must be float32")
    m, n = C.shape
    if m == 0 or n == 0:
        return
    k = A.shape[0] if trans_a else A.shape[1]
    if C.strides[1] != 4 or C.strides[0] < n * 4:
        raise ValueError("gemm_bf16: C must be row-major (unit column stride)")
    if k == 0:
        zero = np.float32(0.0)
        for i in range(m):
            for j in range(n):
                C[i, j] = zero if beta == 0.0 else C[i, j] * beta
        return
    a_addr, a_rows, a_cols, lda, a_op = _block(A, trans_a)
    b_addr, b_rows, b_cols, ldb, b_op = _block(B, trans_b)
    # Scalars only below: one compilation of the paths for every layout of the arrays.
    _gemm_blocks(a_addr, a_rows, a_cols, lda, a_op, b_addr, b_rows, b_cols, ldb, b_op,
                 C.ctypes.data, C.strides[0] // 4, m, n, k, np.float64(alpha),
                 np.float64(beta))
