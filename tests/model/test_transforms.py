"""Each TF -> torch transform, checked on hand-built tensors against a channels-last numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model.convert.transforms import conv1d_kernel, conv3d_kernel, dense_kernel, identity

RNG = np.random.default_rng(0)


def _randn(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def test_dense_kernel_matches_keras_matmul() -> None:
    x, kernel, bias = _randn(5, 7), _randn(7, 3), _randn(3)  # Keras: y = x @ kernel + bias
    weight = dense_kernel(kernel)
    assert weight.shape == (3, 7) and weight.is_contiguous() and weight.dtype == torch.float32
    y = F.linear(torch.from_numpy(x), weight, identity(bias))
    np.testing.assert_allclose(y.numpy(), x @ kernel + bias, rtol=1e-5, atol=1e-5)


def test_conv3d_kernel_reproduces_channels_last_patch_projection() -> None:
    """ViT voxel_to_patch: a Conv3D with stride = kernel on [B, T, H, W, C] video."""
    b, t, h, w, c, cout = 2, 4, 6, 8, 3, 5
    kt, kh, kw = 2, 3, 4  # all different, so a wrong permutation fails by shape or value
    video, kernel, bias = _randn(b, t, h, w, c), _randn(kt, kh, kw, c, cout), _randn(cout)
    # numpy reference, channels-last: cut patches and contract (kt, kh, kw, cin) with the kernel
    patches = video.reshape(b, t // kt, kt, h // kh, kh, w // kw, kw, c)
    ref = np.einsum("bTtHhWwc,thwco->bTHWo", patches, kernel) + bias  # [B, T', H', W', cout]

    weight = conv3d_kernel(kernel)
    assert weight.shape == (cout, c, kt, kh, kw) and weight.is_contiguous()
    conv = torch.nn.Conv3d(c, cout, (kt, kh, kw), stride=(kt, kh, kw))
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(identity(bias))
        out = conv(torch.from_numpy(video).permute(0, 4, 1, 2, 3))  # [B, C, T, H, W]
    np.testing.assert_allclose(out.permute(0, 2, 3, 4, 1).numpy(), ref, rtol=1e-5, atol=1e-5)


def test_conv1d_kernel_reproduces_channels_last_waveform_projection() -> None:
    """WaT wave_to_patch: a Conv1D with stride = kernel on [B, L, C] audio."""
    b, k, cin, cout, n = 2, 4, 3, 6, 5
    audio, kernel, bias = _randn(b, n * k, cin), _randn(k, cin, cout), _randn(cout)
    ref = np.einsum("bnkc,kco->bno", audio.reshape(b, n, k, cin), kernel) + bias  # [B, N, cout]

    weight = conv1d_kernel(kernel)
    assert weight.shape == (cout, cin, k) and weight.is_contiguous()
    out = F.conv1d(torch.from_numpy(audio).transpose(1, 2), weight, identity(bias), stride=k)
    np.testing.assert_allclose(out.transpose(1, 2).numpy(), ref, rtol=1e-5, atol=1e-5)


def test_identity_and_dtypes() -> None:
    x64 = RNG.standard_normal((3, 4))  # float64 -> float32
    t = identity(x64)
    assert t.dtype == torch.float32 and t.shape == (3, 4)
    np.testing.assert_allclose(t.numpy(), x64.astype(np.float32))
    assert identity(np.float16([1.5])).dtype == torch.float32
    assert identity(np.array(7, dtype=np.int64)).dtype == torch.int64  # 0-d counters stay ints
    assert identity(np.array([True, False])).dtype == torch.bool
    assert identity(np.arange(6, dtype=">f4")).tolist() == list(range(6))  # big-endian input
    assert dense_kernel(np.arange(6, dtype=np.int32).reshape(2, 3)).dtype == torch.int32
    assert identity(torch.ones(2, dtype=torch.float64)).dtype == torch.float32


def test_results_own_their_memory() -> None:
    src = _randn(4, 4)
    t = identity(src)
    src[0, 0] = 1e6
    assert t[0, 0].item() != 1e6
    read_only = _randn(2, 3)
    read_only.flags.writeable = False
    assert dense_kernel(read_only).shape == (3, 2)


@pytest.mark.parametrize(
    ("fn", "shape"),
    [(dense_kernel, (2, 3, 4)), (conv3d_kernel, (2, 3, 4, 5)), (conv1d_kernel, (4, 5))],
)
def test_wrong_rank_is_refused(fn, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=rf"{fn.__name__}: expected a \d-d array, got shape"):
        fn(np.zeros(shape, dtype=np.float32))


def test_non_numeric_arrays_are_refused() -> None:
    with pytest.raises(ValueError, match="dtype object"):
        identity(np.array(b"graph", dtype=object))
