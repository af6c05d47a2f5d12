"""FLOPs and bytes of one operator, from the shapes and types the profiler recorded.

The profiler's JSON trace carries each operator's input shapes (``Input Dims``) and element
types (``Input type``) when ``record_shapes`` is on, but no FLOP count, so the count is made
here with the formulas PyTorch's own FLOP counter uses (``torch.utils.flop_counter``): a
matrix product of ``(m, k) @ (k, n)`` is ``2·m·k·n``; a batched one multiplies by the batch;
attention is two such products per head; a convolution is ``2 · output elements · (input
channels / groups) · kernel elements``.

Bytes are an estimate of the memory traffic of the operator alone, as a roofline counts it:
every input read once and the output written once (its size from the product's shape, else
the largest input's). Views, allocations and metadata ops move nothing and count zero.

Invariants: never raises on odd inputs (a shape it cannot read counts zero); counts only the
operators listed here as compute (``KIND``), so nested operators are never counted twice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

# Element sizes of the types the profiler names.
ITEM_BYTES = {
    "float": 4,
    "double": 8,
    "c10::Half": 2,
    "c10::BFloat16": 2,
    "c10::Float8_e4m3fn": 1,
    "c10::Float8_e5m2": 1,
    "long int": 8,
    "int": 4,
    "short int": 2,
    "signed char": 1,
    "unsigned char": 1,
    "bool": 1,
    "c10::complex<float>": 8,
    "c10::complex<double>": 16,
}
# The dtype name a peak figure is quoted for.
DTYPES = {
    "float": "fp32",
    "double": "fp64",
    "c10::Half": "fp16",
    "c10::BFloat16": "bf16",
    "c10::Float8_e4m3fn": "fp8",
    "c10::Float8_e5m2": "fp8",
}

MATMUL = "matmul"
OTHER = "other"

# Operators that only describe memory differently, allocate it, or read metadata.
NO_TRAFFIC = frozenset(
    {
        "aten::view",
        "aten::as_strided",
        "aten::transpose",
        "aten::t",
        "aten::reshape",
        "aten::_reshape_alias",
        "aten::_unsafe_view",
        "aten::expand",
        "aten::select",
        "aten::slice",
        "aten::squeeze",
        "aten::unsqueeze",
        "aten::permute",
        "aten::detach",
        "aten::alias",
        "aten::resolve_conj",
        "aten::resolve_neg",
        "aten::empty",
        "aten::empty_strided",
        "aten::empty_like",
        "aten::lift_fresh",
        "aten::is_nonzero",
        "aten::item",
        "aten::_local_scalar_dense",
        "aten::set_",
        "aten::record_stream",
        "detach",
    }
)


def _dims(value: Any) -> list[int] | None:
    if isinstance(value, list) and all(isinstance(d, int) for d in value):
        return value
    return None


def _matmul_flops(name: str, dims: Sequence[Any]) -> float:
    """FLOPs of the matrix products among the counted operators (0 when not one)."""
    if name in ("aten::mm", "aten::addmm", "aten::_scaled_mm"):
        a, b = (dims[0], dims[1]) if name != "aten::addmm" else (dims[1], dims[2])
        a, b = _dims(a), _dims(b)
        if a and b and len(a) == 2 and len(b) == 2:
            return 2.0 * a[0] * a[1] * b[1]
    elif name in ("aten::bmm", "aten::baddbmm"):
        a, b = (dims[0], dims[1]) if name == "aten::bmm" else (dims[1], dims[2])
        a, b = _dims(a), _dims(b)
        if a and b and len(a) == 3 and len(b) == 3:
            return 2.0 * a[0] * a[1] * a[2] * b[2]
    return 0.0


def _attention_flops(name: str, dims: Sequence[Any]) -> float:
    """Fused attention: q (b, h, s_q, d), k (b, h, s_k, d): two products, ``4·b·h·s_q·s_k·d``
    forward; the backward pass is 2.5 times that (five products, as FlashAttention counts)."""
    q, k = (_dims(dims[0]), _dims(dims[1])) if len(dims) >= 2 else (None, None)
    if not q or not k or len(q) != 4 or len(k) != 4:
        return 0.0
    forward = 4.0 * q[0] * q[1] * q[2] * k[2] * q[3]
    return forward * 2.5 if "backward" in name else forward


def _conv_flops(name: str, dims: Sequence[Any]) -> float:
    """``2 · batch · output positions · output channels · input channels/groups · kernel``,
    with output positions taken as the input's (stride 1, same padding): a rough count. The
    backward pass (inputs: grad, input, weight) counts twice the forward (inputs: input,
    weight)."""
    backward = name == "aten::convolution_backward"
    at = 1 if backward else 0
    if len(dims) < at + 2:
        return 0.0
    x, w = _dims(dims[at]), _dims(dims[at + 1])
    if not x or not w or len(x) < 3 or len(w) != len(x):
        return 0.0
    forward = 2.0 * x[0] * math.prod(x[2:]) * w[0] * math.prod(w[1:])
    return forward * 2 if backward else forward


_FLOPS = {
    "aten::mm": _matmul_flops,
    "aten::addmm": _matmul_flops,
    "aten::_scaled_mm": _matmul_flops,
    "aten::bmm": _matmul_flops,
    "aten::baddbmm": _matmul_flops,
    "aten::_scaled_dot_product_flash_attention": _attention_flops,
    "aten::_scaled_dot_product_efficient_attention": _attention_flops,
    "aten::_scaled_dot_product_cudnn_attention": _attention_flops,
    "aten::_scaled_dot_product_flash_attention_for_cpu": _attention_flops,
    "aten::_flash_attention_backward": _attention_flops,
    "aten::_efficient_attention_backward": _attention_flops,
    "aten::_scaled_dot_product_flash_attention_backward": _attention_flops,
    "aten::_scaled_dot_product_efficient_attention_backward": _attention_flops,
    "aten::_scaled_dot_product_flash_attention_for_cpu_backward": _attention_flops,
    "aten::_convolution": _conv_flops,
    "aten::convolution_backward": _conv_flops,
}
KIND = dict.fromkeys(_FLOPS, MATMUL)


def flops(name: str, dims: Sequence[Any] | None) -> float:
    """Floating-point operations of operator ``name`` with input shapes ``dims``."""
    count = _FLOPS.get(name)
    if count is None or not dims:
        return 0.0
    try:
        return count(name, dims)
    except (IndexError, TypeError):
        return 0.0


def _elements(dims: Any) -> int:
    shape = _dims(dims)
    return math.prod(shape) if shape is not None else 0


def traffic(name: str, dims: Sequence[Any] | None, types: Sequence[Any] | None) -> float:
    """Bytes operator ``name`` reads and writes: its tensor inputs once, its output once."""
    if name in NO_TRAFFIC or not dims or not types:
        return 0.0
    sizes = [
        _elements(d) * ITEM_BYTES[t]
        for d, t in zip(dims, types, strict=False)
        if isinstance(t, str) and t in ITEM_BYTES
    ]
    if not sizes:
        return 0.0
    written = max(sizes)
    if KIND.get(name) == MATMUL:
        written = _product_output(name, dims, types) or written
    return float(sum(sizes) + written)


def _product_output(name: str, dims: Sequence[Any], types: Sequence[Any]) -> int:
    """Bytes of a matrix product's output: ``m·n`` (times the batch) elements."""
    item = next((ITEM_BYTES[t] for t in types if isinstance(t, str) and t in ITEM_BYTES), 4)
    offset = 1 if name in ("aten::addmm", "aten::baddbmm") else 0
    try:
        a, b = _dims(dims[offset]), _dims(dims[offset + 1])
    except IndexError:
        return 0
    if not a or not b or len(a) != len(b) or len(a) not in (2, 3):
        return 0
    return math.prod(a[:-1]) * b[-1] * item


def dtype(types: Sequence[Any] | None) -> str:
    """The dtype an operator computes in, as a peak figure names it (``bf16``, ``fp32``)."""
    for t in types or ():
        if isinstance(t, str) and t in DTYPES:
            return DTYPES[t]
    return "fp32"
