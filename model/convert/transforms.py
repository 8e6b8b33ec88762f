"""Pure functions from TF checkpoint arrays to PyTorch tensors.

Keras stores Dense kernels as [in, out] and convolution kernels channels-last ([..., cin, cout]);
PyTorch wants [out, in] and [cout, cin, ...]. Each function checks the rank it expects (a wrong
rule must fail loudly, not transpose the wrong thing), returns a contiguous tensor that owns its
memory, casts floating types to float32 (our models are float32), and keeps ints and bools.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["identity", "dense_kernel", "conv3d_kernel", "conv1d_kernel"]

ArrayLike = np.ndarray | torch.Tensor


def _tensor(a: ArrayLike, name: str, ndim: int | None = None) -> torch.Tensor:
    """Copy into a torch tensor; floats become float32, other dtypes stay as they are."""
    if isinstance(a, torch.Tensor):
        t = a.detach().clone()
    else:
        arr = np.asarray(a)
        if arr.dtype.kind not in "biufc":
            raise ValueError(f"{name}: cannot convert an array of dtype {arr.dtype} to a tensor")
        arr = arr.astype(arr.dtype.newbyteorder("="), copy=True)  # own, native-endian, writable
        t = torch.from_numpy(arr)
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array, got shape {list(t.shape)}")
    return t.to(torch.float32) if t.is_floating_point() else t


def identity(a: ArrayLike) -> torch.Tensor:
    """Same layout (biases, LayerNorm/BN vectors, embedding tables)."""
    return _tensor(a, "identity").contiguous()


def dense_kernel(a: ArrayLike) -> torch.Tensor:
    """Keras Dense kernel [in, out] -> torch Linear weight [out, in]."""
    return _tensor(a, "dense_kernel", 2).t().contiguous()


def conv3d_kernel(a: ArrayLike) -> torch.Tensor:
    """Keras Conv3D kernel [kt, kh, kw, cin, cout] -> torch Conv3d weight [cout, cin, kt, kh, kw]."""
    return _tensor(a, "conv3d_kernel", 5).permute(4, 3, 0, 1, 2).contiguous()


def conv1d_kernel(a: ArrayLike) -> torch.Tensor:
    """Keras Conv1D kernel [k, cin, cout] -> torch Conv1d weight [cout, cin, k]."""
    return _tensor(a, "conv1d_kernel", 3).permute(2, 1, 0).contiguous()
