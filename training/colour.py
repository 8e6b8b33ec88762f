"""RGB <-> HSV and the HSV hue shift of the official colour augmentation (``tf.image.adjust_hue``).

``tf.image.adjust_hue`` converts to HSV, adds the shift to the hue (mod 1) and converts back; this
is that, in torch, on [3, ...] tensors in [0, 1].
"""

from __future__ import annotations

import torch

__all__ = ["adjust_hue", "hsv_to_rgb", "rgb_to_hsv"]


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """[3, ...] RGB in [0, 1] -> [3, ...] HSV, hue in [0, 1)."""
    r, g, b = x[0], x[1], x[2]
    v, _ = x.max(0)
    c = v - x.min(0).values
    safe = torch.where(c > 0, c, torch.ones_like(c))
    h = torch.where(v == r, ((g - b) / safe) % 6, torch.where(v == g, (b - r) / safe + 2, (r - g) / safe + 4))
    h = torch.where(c > 0, h / 6, torch.zeros_like(h)) % 1.0
    s = torch.where(v > 0, c / torch.where(v > 0, v, torch.ones_like(v)), torch.zeros_like(v))
    return torch.stack([h, s, v])


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """[3, ...] HSV (hue in [0, 1)) -> [3, ...] RGB in [0, 1]."""
    h, s, v = x[0], x[1], x[2]
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6])  # R, G, B
    return v - v * s * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def adjust_hue(x: torch.Tensor, delta: float) -> torch.Tensor:
    """Rotate the hue of [3, ...] RGB in [0, 1] by ``delta`` turns, in HSV (as tf.image.adjust_hue)."""
    hsv = rgb_to_hsv(x.clamp(0.0, 1.0))
    hsv = torch.stack([(hsv[0] + delta) % 1.0, hsv[1], hsv[2]])
    return hsv_to_rgb(hsv)
