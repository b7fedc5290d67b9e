"""Maskers, as ``shap.maskers``: only ``Image`` (what the explainers hide pixels with)."""

from __future__ import annotations

from typing import Optional, Sequence, Union


class Image:
    """``shap.maskers.Image(mask_value, shape)``: ``"blur(kw,kh)"``, ``"inpaint_telea"``,
    ``"inpaint_ns"``, or a number that hidden pixels take. The images' values are what the
    masker sees: [0, 1] for the inpainting maskers (docs/maskers.md)."""

    def __init__(self, mask_value: Union[str, float], shape: Optional[Sequence[int]] = None) -> None:
        if isinstance(mask_value, bool):
            raise TypeError("mask_value: give a masker name or a number")
        if isinstance(mask_value, (int, float)):
            spec = repr(float(mask_value))
        elif isinstance(mask_value, str):
            spec = mask_value.strip()
        else:
            raise TypeError(f"mask_value: give a masker name or a number, got {mask_value!r}")
        self.spec = spec
        self.shape = None if shape is None else tuple(int(s) for s in shape)

    def __repr__(self) -> str:
        return f"shap_toolkit.maskers.Image({self.spec!r}, shape={self.shape})"
