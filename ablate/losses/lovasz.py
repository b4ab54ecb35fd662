"""Lovász-Softmax: a convex surrogate of the per-class Jaccard loss (1 − IoU).

Berman, Rannen Triki, Blaschko, "The Lovász-Softmax loss: A tractable surrogate for the
optimization of the intersection-over-union measure in neural networks", CVPR 2018.

How it is computed (no Python loop over pixels; within a chunk, none over classes):

* A row is a selected class (or a selected (image, class) pair when ``per_image``). Each pixel of a
  row gets an int32 key: an error e in [0, 1] is a non-negative float32, whose bit pattern orders
  like its value, so key = 2·bits(1.0) + 1 − 2·bits(e) − fg is non-negative and sorts errors in
  decreasing order, foreground first on ties; its lowest bit says "background". Ignored pixels get
  the largest key, 2^31 − 1, after all others.
* Sorting the keys is most of the cost. PyTorch sorts a 1-D integer tensor with a radix sort,
  several times faster on CPU than its comparison sort of a 2-D tensor, so on CPU each long row is
  sorted by its own 1-D call; short rows, and all rows on other devices, go through one batched
  ``torch.sort(dim=1)``.
* Everything after the sort is read from the sorted keys (no gather): the union G + b_k by an
  integer cumulative sum of the background bits, the errors by decoding the keys. The value is the
  Abel sum Σ_k Δ_J({1..k})·(m_(k) − m_(k+1)) of non-negative terms.
* For a fixed order the Lovász extension is linear in the errors, so its gradient is the weight
  vector g itself, scattered back to the pixels by a custom autograd function during the forward
  pass (only when a gradient is needed).
* Rows go through this in chunks of about ``_CHUNK`` (row, pixel) pairs, which bounds the working
  memory for many classes or large images and keeps the temporaries in cache.
* Keys are made without ``torch.where``, ``masked_fill`` or mixed-dtype arithmetic, which PyTorch
  runs several times slower on CPU than a plain same-dtype ``sub``.
* On CPU the whole forward runs on one intra-op thread (see ``ablate.losses._threads``): with a
  core taken by another process, each of the kernel's some hundred parallel regions (every op of
  every chunk, every pass of each radix sort) would wait for a descheduled thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from ablate.losses._threads import one_thread

__all__ = ["lovasz_softmax"]

ClassSelection = Literal["present", "all"] | Sequence[int]

_ONE_BITS = 0x3F800000  # bit pattern of float32 1.0; the largest error
_KEY_BASE = 2 * _ONE_BITS + 1  # key = _KEY_BASE − 2·bits(e) − fg: odd, so key & 1 = background
_IGNORED_KEY = 0x7FFFFFFF  # or-ed into an ignored pixel's key: last, background, decodes to e = 0
_ONE_SHIFT = 29  # bits(1.0) >> 29 == 1 and bits(0.0) >> 29 == 0: a float 0/1 mask to int 0/1
_RADIX_MIN = 1 << 15  # on CPU, rows at least this long are sorted one 1-D (radix) call each
# rows are processed in chunks of about this many (row, pixel) pairs: temporaries of a few MB stay
# in cache and far below glibc's 32 MB mmap threshold, so they are reused rather than page-faulted
# in on every call
_CHUNK = 1 << 20


def lovasz_softmax(
    probs: Tensor,
    labels: Tensor,
    classes: ClassSelection = "present",
    per_image: bool = False,
    ignore_index: int = 255,
) -> Tensor:
    """Lovász-Softmax loss (Berman et al. 2018, Sec. 3: Definition 2 applied to Δ_J; Algorithm 1).

    For class c, the error vector is m_i(c) = |1[y_i = c] − p_i(c)| over the valid pixels. Sorted in
    decreasing order, m_(1) ≥ … ≥ m_(N), the loss is the Lovász extension of the Jaccard loss Δ_J,

        Δ̄_J(m) = Σ_k m_(k) g_k,   g_k = Δ_J({1..k}) − Δ_J({1..k−1}),
        Δ_J(S) = 1 − |fg \\ S| / |fg ∪ S|.

    With a_k foreground and b_k background pixels among the first k, and G = |fg|, this is
    Δ_J({1..k}) = k / (G + b_k), so g_k = 1 / (G + b_k) at a foreground pixel and
    g_k = (G − a_k) / ((G + b_k)(G + b_k − 1)) at a background one (1 for the first pixel of a
    class with G = 0). These closed forms avoid the cancellation of differencing Δ_J in float32;
    the value is summed as Σ_k Δ_J({1..k})·(m_(k) − m_(k+1)), which is the same sum regrouped.
    The value does not depend on how ties are ordered; the (sub)gradient puts a foreground pixel
    before a background pixel of equal error, and pixels of the same kind in pixel order.

    Args:
        probs: ``[B, C, H, W]`` class probabilities (already softmaxed); computed in float32 and
            clamped to [0, 1].
        labels: long ``[B, H, W]``, each in [0, C) or ``ignore_index``.
        classes: ``"present"`` (classes occurring in the valid labels — of that image when
            ``per_image``), ``"all"``, or a list of class indices.
        per_image: mean over images of each image's loss (an image without a selected class
            counts as 0, as in the paper's code) instead of one loss over the whole batch.
        ignore_index: label of pixels that are left out.

    Returns:
        Scalar mean over the selected classes. When nothing is selected (e.g. every pixel ignored)
        it is a finite 0 with zero gradient.
    """
    if probs.dim() != 4 or labels.shape != (probs.shape[0], *probs.shape[2:]):
        raise ValueError(
            f"expected probs [B, C, H, W] and labels [B, H, W], got {tuple(probs.shape)} "
            f"and {tuple(labels.shape)}"
        )
    batch, num_classes = probs.shape[:2]
    lab = labels.reshape(batch, -1)  # (B, N)
    with torch.no_grad():
        fg_count, row_scale = _row_weights(lab, num_classes, classes, per_image, ignore_index)
    if not bool((row_scale > 0).any()):
        return probs.sum() * 0.0
    prob = probs.float().reshape(batch, num_classes, -1).contiguous()  # (B, C, N)
    return _LovaszExtension.apply(prob, lab, fg_count, row_scale, per_image, ignore_index)


def _row_weights(
    lab: Tensor, num_classes: int, classes: ClassSelection, per_image: bool, ignore_index: int
) -> tuple[Tensor, Tensor]:
    """Foreground count G of every row and the row's weight in the final mean, both (R,).

    R = B·C rows when per_image, else C. The weight is 1/(number of selected rows) for a selected
    row (further divided by B when per_image) and 0 for a row that is not selected.
    """
    batch = lab.shape[0]
    device = lab.device
    valid = lab != ignore_index  # (B, N)
    true_class = lab.masked_fill(~valid, 0)  # (B, N)
    if lab.numel():
        low, high = (int(v) for v in torch.aminmax(true_class))
        if low < 0 or high >= num_classes:
            bad = lab[valid & ((lab < 0) | (lab >= num_classes))].unique()[:10].tolist()
            raise ValueError(
                f"labels must be in [0, {num_classes}) or equal ignore_index={ignore_index}; "
                f"found {bad}"
            )
    groups = batch if per_image else 1
    row = true_class + torch.arange(groups, device=device)[:, None] * num_classes  # (B, N)
    row = row.masked_fill(~valid, groups * num_classes)  # ignored pixels: an extra bin
    fg_count = torch.bincount(row.view(-1), minlength=groups * num_classes + 1)[:-1]  # (R,)
    has_valid = valid.any(1) if per_image else valid.any().view(1)  # (groups,)

    if isinstance(classes, str):
        if classes not in ("present", "all"):
            raise ValueError(f"classes must be 'present', 'all' or a list of ints, got {classes!r}")
        if classes == "present":
            selected = (fg_count > 0).view(groups, num_classes)
        else:
            selected = has_valid[:, None].expand(groups, num_classes)
    else:
        wanted = torch.zeros(num_classes, dtype=torch.bool, device=device)
        wanted[torch.as_tensor(list(classes), dtype=torch.long, device=device)] = True
        selected = has_valid[:, None] & wanted[None, :]  # (groups, C)
    sel = selected.float()
    row_scale = sel / (sel.sum(1, keepdim=True).clamp(min=1.0) * groups)  # (groups, C)
    return fg_count, row_scale.reshape(-1)


def _chunk_rows(
    prob: Tensor, pixels: tuple[Tensor, Tensor | None], rows: Tensor, per_image: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Probabilities, pixel classes, row classes and ignored-pixel bits of some rows.

    ``pixels`` holds the class of every pixel (B, N) and, when some pixel is ignored, a (B, N)
    int32 that is ``_IGNORED_KEY`` there and 0 elsewhere. Returns p as a view (r, B, N) or (r, N)
    where possible, and the other three broadcastable against it.
    """
    batch, num_classes, n_pix = prob.shape  # (B, C, N)
    pixel_class, ignored = pixels
    first, count = int(rows[0]), rows.numel()
    contiguous = int(rows[-1]) - first + 1 == count  # e.g. every row selected
    if per_image:
        flat = prob.reshape(batch * num_classes, n_pix)
        p = flat.narrow(0, first, count) if contiguous else flat.index_select(0, rows)  # (r, N)
        image = rows // num_classes
        ignored_rows = None if ignored is None else ignored.index_select(0, image)
        row_class = (rows % num_classes).float()
        return p, pixel_class.index_select(0, image), row_class, ignored_rows
    p = prob.narrow(1, first, count) if contiguous else prob.index_select(1, rows)  # (B, r, N)
    return p.transpose(0, 1), pixel_class, rows.float(), ignored  # (r, B, N)


def _row_keys(p: Tensor, pixel_class: Tensor, row_class: Tensor, ignored: Tensor | None) -> Tensor:
    """Sort key of every (row, pixel): int32 (r, L), ascending = decreasing error.

    key = 2·bits(1) + 1 − 2·bits(e) − fg, with e = m_i(c) = |fg − p|: a larger error gives a
    smaller key, and a foreground pixel comes first among equal errors. The sign of fg − p is
    shifted out with 2·bits(fg − p) = 2·bits(e) (mod 2^32), so no abs is needed.
    """
    count = p.shape[0]
    row_class = row_class.view(count, *([1] * (p.dim() - 1)))  # (r, 1, ...)
    fg = torch.eq(pixel_class, row_class, out=p.new_empty(p.shape))  # (r, ...) 1.0 / 0.0
    key = torch.rsub(fg.view(torch.int32) >> _ONE_SHIFT, _KEY_BASE)  # base − fg
    twice_bits = fg.sub_(p).view(torch.int32).bitwise_left_shift_(1)  # 2·bits(e)
    key.sub_(twice_bits)
    if ignored is not None:
        key.bitwise_or_(ignored)
    return key.view(count, -1)


def _sort_rows(keys: Tensor) -> tuple[Tensor, Tensor]:
    """Sort every row of non-negative int32 keys ascending and stably: (sorted keys, order), (r, L).

    PyTorch's CPU radix sort only serves 1-D integer tensors of at least 2^15 elements. Long rows
    are sorted one 1-D int32 call each; short rows together, as one 1-D sort of the int64 keys
    (row << 31) | key, which keeps the rows apart and each row's keys in order.
    """
    n_rows, width = keys.shape
    if keys.device.type != "cpu" or n_rows * width < _RADIX_MIN:
        return torch.sort(keys, dim=1, stable=True)
    if width < _RADIX_MIN:
        row = torch.arange(n_rows, device=keys.device)[:, None]  # (r, 1)
        composite, flat_order = torch.sort((keys.long() | (row << 31)).view(-1), stable=True)
        sorted_keys = (composite & 0x7FFFFFFF).int().view(n_rows, width)
        return sorted_keys, flat_order.view(n_rows, width) - row * width
    sorted_keys = torch.empty_like(keys)
    order = torch.empty(n_rows, width, dtype=torch.long, device=keys.device)
    for r in range(n_rows):
        torch.sort(keys[r], stable=True, out=(sorted_keys[r], order[r]))
    return sorted_keys, order


def _union(sorted_keys: Tensor, fg_count: Tensor) -> tuple[Tensor, Tensor]:
    """G + b_k at every sorted position, int32 (r, L), and the background bits, int32 (r, L)."""
    background = sorted_keys & 1  # (r, L) 1 at background (and ignored) pixels
    union = torch.cumsum(background, 1, dtype=torch.int32)  # b_k
    union += fg_count.to(torch.int32)[:, None]  # G + b_k
    return union, background


def _abel_sum(sorted_keys: Tensor, union: Tensor, rank: Tensor) -> Tensor:
    """Σ_k Δ_J({1..k})·(m_(k) − m_(k+1)) of every row, (r,), with Δ_J({1..k}) = k / (G + b_k).

    Every term is non-negative (m is sorted, Δ_J ≥ 0), so the float32 sum does not cancel.
    """
    # m_(k) decoded from the keys; ignored keys decode to a negative bit pattern, clamped to 0
    bits = torch.rsub(sorted_keys, _KEY_BASE).bitwise_right_shift_(1).clamp_(min=0)  # (r, L)
    error = bits.view(torch.float32)  # (r, L) m_(k)
    jaccard = rank / union.float()  # (r, L) Δ_J({1..k})
    drop = error[:, :-1] - error[:, 1:]  # (r, L−1) m_(k) − m_(k+1) >= 0
    return torch.linalg.vecdot(jaccard[:, :-1], drop) + jaccard[:, -1] * error[:, -1]


def _gradient(union: Tensor, background: Tensor, fg_count: Tensor, rank: Tensor) -> Tensor:
    """∂Δ̄_J/∂p at every sorted position, float32 (r, L): +g_k at background, −g_k at foreground.

    G − a_k = (G + b_k) − k is an exact integer; only the final divisions round, so long rows
    suffer no cancellation.
    """
    union_f = union.float()  # (r, L) G + b_k
    weight_fg = union_f.reciprocal()  # 1 / (G + b_k)
    missing = torch.sub(union, rank).float()  # (r, L) G − a_k, rank int32
    # (G − a_k) / ((G + b_k)(G + b_k − 1)); 0/0 only where G + b_k = 1, i.e. at a foreground pixel
    # (other branch) or the first pixel of a row without foreground (below)
    weight_bg = missing.mul_(weight_fg).div_(union_f.sub_(1.0))
    signed = torch.where(background.bool(), weight_bg, weight_fg.neg_())
    signed[fg_count == 0, 0] = 1.0  # no foreground: the whole weight on the largest error
    return signed


class _LovaszExtension(torch.autograd.Function):
    """Σ_rows scale_r · Δ̄_J(m_r) over the selected rows.

    For a fixed order Δ̄_J is linear in the errors, so the gradient with respect to p is ∓g_k at
    the pixel sorted k-th (− at foreground, as m = 1 − p there). It is scattered into place during
    the forward pass, chunk by chunk, so nothing but the gradient itself is kept for backward, and
    the working memory stays bounded by ``_CHUNK`` elements per chunk of rows.
    """

    @staticmethod
    def forward(ctx: Any, *args: Any) -> Tensor:
        # float32 throughout: autocast would run the dot products in bfloat16
        with torch.autocast(args[0].device.type, enabled=False), one_thread(args[0].device):
            return _LovaszExtension._forward(ctx, *args)

    @staticmethod
    def _forward(
        ctx: Any,
        prob: Tensor,
        lab: Tensor,
        fg_count: Tensor,
        row_scale: Tensor,
        per_image: bool,
        ignore_index: int,
    ) -> Tensor:
        batch, _, n_pix = prob.shape  # (B, C, N)
        low, high = (float(v) for v in torch.aminmax(prob))
        if low < 0.0 or high > 1.0:
            prob = prob.clamp(0.0, 1.0)
        ignored = lab == ignore_index  # (B, N)
        # float classes (exact below 2^24): float == float into float is the fastest 0/1 mask
        pixel_class = lab.masked_fill(ignored, -1).float()  # (B, N), −1 where ignored
        ignored_bits = ignored.int().mul_(_IGNORED_KEY) if bool(ignored.any()) else None
        selected = torch.nonzero(row_scale > 0).squeeze(1)  # (S,) row ids
        width = n_pix if per_image else batch * n_pix
        rows_per_chunk = max(1, _CHUNK // width)
        rank = torch.arange(1, width + 1, device=prob.device, dtype=torch.int32)  # (L,) k
        rank_f = rank.float()
        needs_grad = bool(ctx.needs_input_grad[0])
        grad: Tensor | None = None  # (B, C, N); rows that are not selected get zeros
        if needs_grad:
            every_row = selected.numel() == row_scale.numel()
            grad = prob.new_empty(prob.shape) if every_row else prob.new_zeros(prob.shape)
        total = prob.new_zeros((), dtype=torch.float32)
        for rows in selected.split(rows_per_chunk):
            p, pixel_row, row_class, ignored_rows = _chunk_rows(
                prob, (pixel_class, ignored_bits), rows, per_image
            )
            sorted_keys, order = _sort_rows(_row_keys(p, pixel_row, row_class, ignored_rows))
            union, background = _union(sorted_keys, fg_count[rows])  # (r, L)
            scale = row_scale[rows]  # (r,)
            total += torch.dot(_abel_sum(sorted_keys, union, rank_f), scale)
            if grad is not None:
                signed = _gradient(union, background, fg_count[rows], rank).mul_(scale[:, None])
                _put_rows(
                    grad, torch.empty_like(signed).scatter_(1, order, signed), rows, per_image
                )
        ctx.save_for_backward(grad)
        return total

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        (grad,) = ctx.saved_tensors
        return grad * grad_out, None, None, None, None, None


def _put_rows(grad: Tensor, rows_grad: Tensor, rows: Tensor, per_image: bool) -> None:
    """Write the gradient of some rows, (r, L), into the (B, C, N) gradient."""
    batch, num_classes, n_pix = grad.shape
    if per_image:
        grad.view(batch * num_classes, n_pix).index_copy_(0, rows, rows_grad)
    else:
        grad.index_copy_(1, rows, rows_grad.view(-1, batch, n_pix).transpose(0, 1))
