"""Label downsampling for coarse heads: class-probability-preserving (CPP) pooling and nearest.

CPP pooling (SeeThroughNet, 2022) turns full-resolution labels into per-class shares on the coarse
grid, so that a head at 1/8 resolution is trained against the class mixture of each window rather
than against one pixel that happens to sit at the window's corner (`nearest`).

Neither function ever builds the full-resolution one-hot ``[B, C, H, W]``: CPP pooling counts
(cell, class) pairs with one ``bincount``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ablate.losses._threads import one_thread

__all__ = ["cpp_pool", "nearest_pool"]


def _pair(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(size, int):
        h, w = size, size
    else:
        h, w = (int(s) for s in size)
    if h < 1 or w < 1:
        raise ValueError(f"pooled size must be positive, got {size!r}")
    return h, w


def _window_pairs(n_in: int, n_out: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Every (input index, output cell) pair of adaptive average pooling along one axis.

    Output cell i covers inputs [floor(i·n_in/n_out), ceil((i+1)·n_in/n_out)), exactly as
    ``F.adaptive_avg_pool2d``. Windows overlap when n_in is not a multiple of n_out, so an input
    index may occur in several pairs. Returns (src, cell), both long [P].
    """
    cells = torch.arange(n_out, device=device)  # (n_out,)
    start = (cells * n_in) // n_out  # (n_out,)
    end = ((cells + 1) * n_in + n_out - 1) // n_out  # (n_out,)  ceil
    length = end - start  # (n_out,) >= 1
    cell = torch.repeat_interleave(cells, length)  # (P,)
    first = torch.cumsum(length, 0) - length  # (n_out,) offset of each cell's first pair
    src = torch.arange(cell.numel(), device=device) - first[cell] + start[cell]  # (P,)
    return src, cell


def _ignored_mask(labels: Tensor, num_classes: int, ignore_index: int) -> Tensor | None:
    """Mask of ignored pixels, or None when there can be none; raises on out-of-range labels.

    One cheap ``aminmax`` pass settles the common case where every label is a class.
    """
    if labels.numel() == 0:
        return None
    low, high = (int(v) for v in torch.aminmax(labels))
    all_classes = low >= 0 and high < num_classes
    if all_classes and not 0 <= ignore_index < num_classes:
        return None
    ignored = labels == ignore_index  # (B, H, W)
    if not all_classes:
        bad_mask = ((labels < 0) | (labels >= num_classes)) & ~ignored  # (B, H, W)
        if bool(bad_mask.any()):
            bad = labels[bad_mask].unique()[:10].tolist()
            raise ValueError(
                f"labels must be in [0, {num_classes}) or equal ignore_index={ignore_index}; "
                f"found {bad}"
            )
    return ignored


def cpp_pool(
    labels: Tensor,
    size: int | tuple[int, int] | list[int],
    num_classes: int,
    ignore_index: int = 255,
) -> Tensor:
    """Class-probability-preserving pooling of labels (SeeThroughNet, 2022).

    Output cell (i, j) covers the input window that ``F.adaptive_avg_pool2d`` uses
    (rows floor(i·H/h) to ceil((i+1)·H/h), likewise columns); its value for class c is
    q_c = n_c / Σ_k n_k, the share of the window's *valid* pixels labelled c. Ignored pixels are not
    counted; a window without a valid pixel gives an all-zero cell. When the windows tile the input
    evenly and nothing is ignored, Σ_cells q_c · |window| equals the number of pixels of class c.

    Args:
        labels: long ``[B, H, W]``.
        size: ``(h, w)`` or ``h`` for a square grid.
        num_classes: C; every label must be in [0, C) or equal ``ignore_index``.
        ignore_index: label of pixels that carry no class.

    Returns:
        float32 ``[B, C, h, w]`` (no gradient: labels are targets). On CPU it is computed on one
        intra-op thread (see ``ablate.losses._threads``).
    """
    if labels.dim() != 3:
        raise ValueError(f"labels must be [B, H, W], got shape {tuple(labels.shape)}")
    with one_thread(labels.device):
        return _cpp_pool(labels, _pair(size), num_classes, ignore_index)


def _cpp_pool(labels: Tensor, size: tuple[int, int], num_classes: int, ignore_index: int) -> Tensor:
    h, w = size
    n_bins = num_classes + 1  # class C collects ignored pixels and is dropped at the end
    batch, height, width = labels.shape
    device = labels.device
    n_total = batch * h * w * n_bins
    # int32 bins halve the memory traffic and make bincount ~3x faster on CPU
    index_dtype = torch.int32 if n_total < 2**31 else torch.int64

    ignored = _ignored_mask(labels, num_classes, ignore_index)  # (B, H, W) or None
    index = labels.to(index_dtype, copy=True)  # (B, H, W) class of each pixel, later its bin
    if ignored is not None:
        index.masked_fill_(ignored, num_classes)

    row_src, row_cell = _window_pairs(height, h, device)  # (Pr,)
    col_src, col_cell = _window_pairs(width, w, device)  # (Pc,)
    if row_src.numel() != height:  # uneven rows: repeat the rows shared by two windows
        index = index.index_select(1, row_src)  # (B, Pr, W)
    if col_src.numel() != width:
        index = index.index_select(2, col_src)  # (B, Pr, Pc)

    # bin of a (pixel, class) pair: ((b·h + i)·w + j)·(C+1) + class
    cell = (row_cell[:, None] * w + col_cell[None, :]) * n_bins  # (Pr, Pc)
    batch_offset = torch.arange(batch, device=device) * (h * w * n_bins)  # (B,)
    index += cell.to(index_dtype)
    index += batch_offset.to(index_dtype)[:, None, None]
    counts = torch.bincount(index.reshape(-1), minlength=n_total)  # (B·h·w·(C+1),)
    counts = counts.view(batch, h, w, n_bins)[..., :num_classes].float()  # (B, h, w, C)
    valid = counts.sum(-1, keepdim=True)  # (B, h, w, 1)
    shares = counts / valid.clamp(min=1.0)  # (B, h, w, C); empty cells stay 0
    return shares.permute(0, 3, 1, 2).contiguous()  # (B, C, h, w)


def _nearest_src(n_in: int, n_out: int, device: torch.device) -> Tensor:
    """Input index that ``F.interpolate(mode="nearest")`` reads for each output index.

    PyTorch computes floor(i · s) in float32 with s = float32(n_in / n_out) and clamps to n_in − 1.
    This is the window's top-left pixel, but it is *not* always the exact floor(i·n_in/n_out)
    (e.g. 26 → 22 differs), so the float32 arithmetic is reproduced here.
    """
    if n_out == n_in:
        return torch.arange(n_out, device=device)
    scale = torch.tensor(n_in / n_out, dtype=torch.float32, device=device)
    pos = torch.arange(n_out, dtype=torch.float32, device=device) * scale  # (n_out,)
    return pos.floor().long().clamp(max=n_in - 1)


def nearest_pool(labels: Tensor, size: int | tuple[int, int] | list[int]) -> Tensor:
    """Downsample labels by taking the pixel PyTorch's ``nearest`` mode takes (top-left).

    Returns long ``[B, h, w]``, identical to
    ``F.interpolate(labels[:, None].float(), size, mode="nearest")[:, 0].long()`` without the float
    round trip (exact for any label value).
    """
    if labels.dim() != 3:
        raise ValueError(f"labels must be [B, H, W], got shape {tuple(labels.shape)}")
    h, w = _pair(size)
    rows = _nearest_src(labels.shape[1], h, labels.device)  # (h,)
    cols = _nearest_src(labels.shape[2], w, labels.device)  # (w,)
    return labels.index_select(1, rows).index_select(2, cols)  # (B, h, w)
