"""How a prediction is formed: whole image, sliding windows, several scales, mirrored."""

from contextlib import nullcontext
from itertools import pairwise
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ablate.data import Split, load_splits
from ablate.spec import Recipe, SpecError
from ablate.study_file import load_study
from ablate.train.evaluate import (
    Inference,
    evaluate,
    inference_for,
    predict,
    window_counts,
    window_starts,
)

C = 3  # classes of the test networks


def _images(b: int, h: int, w: int, seed: int = 0) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 3, h, w), generator=gen, dtype=torch.uint8)


class _Pointwise(nn.Module):
    """Each output pixel depends on its own input pixel only (1×1 convolutions)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, C, 1))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {"out": self.net(x)}


class _Context(nn.Module):
    """Sees its neighbourhood and the whole image (a global mean), answers at half resolution."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, C, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        out = self.conv(x)
        return {"out": out + out.mean((2, 3), keepdim=True)}


class _WindowMean(nn.Module):
    """Every pixel of a window gets the window's mean value: shows which windows were averaged."""

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        m = x.mean((1, 2, 3))[:, None, None, None].expand(-1, 1, *x.shape[-2:])
        return {"out": torch.cat([m, -m], 1)}


class _Mirrored(nn.Module):
    """A 3×3 convolution whose kernels are symmetric left-right: mirroring commutes with it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, C, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_((self.conv.weight + self.conv.weight.flip(-1)) / 2)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {"out": self.conv(x)}


def _slide(crop: tuple[int, int], stride: tuple[int, int]) -> Inference:
    return Inference(crop=crop, stride=stride)


def test_slide_with_the_window_the_image_size_is_exactly_whole() -> None:
    model, images = _Context().eval(), _images(4, 40, 56)
    whole = predict(model, images, Inference(), 8, nullcontext)
    slide = predict(model, images, _slide((40, 56), (27, 37)), 8, nullcontext)
    assert whole.shape == (4, C, 40, 56)
    assert torch.equal(slide, whole)


@pytest.mark.parametrize(
    ("crop", "stride"),
    [
        ((32, 32), (21, 21)),
        ((16, 24), (5, 24)),
        ((1, 7), (1, 3)),
        ((50, 37), (1, 1)),
        ((64, 64), (64, 64)),
    ],
)
def test_slide_of_a_pointwise_network_equals_whole(
    crop: tuple[int, int], stride: tuple[int, int]
) -> None:
    model, images = _Pointwise().eval(), _images(3, 50, 37)
    whole = predict(model, images, Inference(), 4, nullcontext)
    slide = predict(model, images, _slide(crop, stride), 4, nullcontext)
    torch.testing.assert_close(slide, whole, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("size", "crop", "stride"),
    [((50, 37), (32, 32), (21, 21)), ((97, 33), (32, 32), (32, 32)), ((33, 100), (7, 9), (5, 2))],
)
def test_the_windows_cover_every_pixel_and_the_last_one_ends_at_the_border(
    size: tuple[int, int], crop: tuple[int, int], stride: tuple[int, int]
) -> None:
    counts = window_counts(size, crop, stride)
    assert counts.shape == size and int(counts.min()) >= 1
    for n, c, s in zip(size, crop, stride, strict=True):
        starts = window_starts(n, c, s)
        assert starts[0] == 0 and starts[-1] + c == n
        assert all(0 < b - a <= s for a, b in pairwise(starts))


def test_window_starts_follow_mmsegmentation() -> None:
    # mmseg's slide_inference on a 1024×2048 Cityscapes image, crop 512×1024, stride 341×683
    assert window_starts(1024, 512, 341) == [0, 341, 512]
    assert window_starts(2048, 1024, 683) == [0, 683, 1024]
    assert window_starts(50, 32, 21) == [0, 18]
    assert window_starts(32, 32, 21) == [0]


def test_overlapping_windows_are_averaged_by_how_many_cover_a_pixel() -> None:
    images = _images(2, 5, 4)
    got = predict(_WindowMean(), images, _slide((3, 4), (2, 4)), 8, nullcontext)
    x = (images.float() / 255 - 0.5) / 0.25
    top, bottom = x[:, :, 0:3].mean((1, 2, 3)), x[:, :, 2:5].mean((1, 2, 3))  # rows 0-2 and 2-4
    expected = torch.stack([top, top, (top + bottom) / 2, bottom, bottom], 1)  # (B, H)
    torch.testing.assert_close(got[:, 0], expected[:, :, None].expand(-1, -1, 4))


def test_an_image_smaller_than_the_window_is_padded_and_cropped_back() -> None:
    model, images = _Pointwise().eval(), _images(2, 20, 13)
    whole = predict(model, images, Inference(), 4, nullcontext)
    slide = predict(model, images, _slide((32, 32), (21, 21)), 4, nullcontext)
    assert slide.shape == (2, C, 20, 13)
    torch.testing.assert_close(slide, whole, atol=1e-6, rtol=0)


def test_how_many_windows_go_through_at_once_does_not_change_the_result() -> None:
    model, images = _Context().eval(), _images(3, 50, 37)
    one = predict(model, images, _slide((32, 32), (21, 21)), 1, nullcontext)
    all_at_once = predict(model, images, _slide((32, 32), (21, 21)), 100, nullcontext)
    torch.testing.assert_close(one, all_at_once, atol=1e-6, rtol=0)


@pytest.mark.parametrize("window", [None, ((24, 24), (16, 16))])
def test_flip_with_a_mirror_symmetric_network_changes_nothing(
    window: tuple[tuple[int, int], tuple[int, int]] | None,
) -> None:
    model, images = _Mirrored().eval(), _images(2, 40, 33)
    crop, stride = window or (None, None)
    plain = predict(model, images, Inference(crop, stride), 4, nullcontext)
    flipped = predict(model, images, Inference(crop, stride, flip=True), 4, nullcontext)
    torch.testing.assert_close(flipped.softmax(1), plain.softmax(1), atol=1e-6, rtol=0)


def test_flip_mirrors_the_input_and_mirrors_the_answer_back() -> None:
    model, images = _Context().eval(), _images(2, 32, 40)
    plain = predict(model, images, Inference(), 4, nullcontext)
    mirrored = predict(model, images.flip(-1), Inference(), 4, nullcontext).flip(-1)
    both = predict(model, images, Inference(flip=True), 4, nullcontext)
    expected = ((plain.softmax(1) + mirrored.softmax(1)) / 2).log()
    torch.testing.assert_close(both, expected, atol=1e-6, rtol=0)


def test_scale_one_is_plain_and_several_scales_average_the_softmax() -> None:
    model, images = _Context().eval(), _images(2, 32, 40)
    plain = predict(model, images, Inference(), 4, nullcontext)
    assert torch.equal(predict(model, images, Inference(scales=(1.0,)), 4, nullcontext), plain)
    twice = predict(model, images, Inference(scales=(1.0, 1.0)), 4, nullcontext)
    torch.testing.assert_close(twice.softmax(1), plain.softmax(1), atol=1e-6, rtol=0)
    x = (images.float() / 255 - 0.5) / 0.25
    half = F.interpolate(x, (16, 20), mode="bilinear")
    small = F.interpolate(model(half)["out"], (16, 20), mode="bilinear")
    small = F.interpolate(small, (32, 40), mode="bilinear")
    expected = ((plain.softmax(1) + small.softmax(1)) / 2).log()
    got = predict(model, images, Inference(scales=(1.0, 0.5)), 4, nullcontext)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


class _Oracle(nn.Module):
    """Reads the label hidden in channel 0 of the image and predicts it with certainty."""

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        labels = ((x[:, 0] * 0.25 + 0.5) * 255).round().long()
        return {"out": F.one_hot(labels, 6).permute(0, 3, 1, 2).float() * 10}


def test_evaluate_slides_and_flips_over_a_split() -> None:
    _, val = load_splits("shapes", 6, (96, 96), 1, 8, 0, torch.device("cpu"))
    assert isinstance(val, Split)
    hidden = val.labels.to(torch.uint8)[:, None].expand(-1, 3, -1, -1).contiguous()
    split = Split(hidden, val.labels, val.instances)
    names = [str(i) for i in range(6)]
    how = Inference((40, 56), (27, 37), flip=True)
    metrics = evaluate(_Oracle(), split, 6, names, 4, 255, nullcontext, 3, how)
    assert metrics["val/mIoU"] == 1.0 and metrics["val/pixel_acc"] == 1.0


def test_inference_defaults_to_the_training_size_and_two_thirds_of_it() -> None:
    base = {"data": {"image_size": [64, 96]}}
    assert inference_for(Recipe.model_validate(base)) == Inference()
    slide = Recipe.model_validate(
        {**base, "eval": {"mode": "slide", "scales": [0.5, 1], "flip": True}}
    )
    assert inference_for(slide) == Inference((64, 96), (43, 64), (0.5, 1.0), True)
    given = Recipe.model_validate(
        {**base, "eval": {"mode": "slide", "crop": [32, 32], "stride": [8, 32]}}
    )
    assert inference_for(given) == Inference((32, 32), (8, 32))
    # crop and stride are kept but unused in whole mode, so a grid may sweep eval.mode
    kept = Recipe.model_validate({**base, "eval": {"crop": [32, 32]}})
    assert inference_for(kept) == Inference()


STUDY = """
name: t
base:
  data: {num_classes: 4, image_size: [64, 64], train_size: 8, val_size: 4}
  eval: EVAL
sweep:
  grid: {loss.aux.weight: [0.0, 0.4]}
baseline: {loss.aux.weight: 0.0}
"""


@pytest.mark.parametrize(
    ("eval_", "pattern"),
    [
        ("{mode: sliding}", r"base\.eval\.mode = 'sliding': Input should be 'whole' or 'slide'"),
        ("{crop: [0, 32]}", r"base\.eval\.crop = \[0, 32\]: each side must be between 1 and 4096"),
        ("{crop: [32, 32], stride: [33, 8]}", r"stride \[33, 8\] must not exceed crop \[32, 32\]"),
        ("{stride: [16, 16]}", r"base\.eval.*stride needs crop: set eval\.crop too"),
        ("{scales: []}", r"base\.eval\.scales = \[\]: give 1 to 8 scales"),
        ("{scales: [1.0, 0]}", r"base\.eval\.scales .*each scale must be above 0 and at most 4"),
        ("{scales: [4.5]}", r"each scale must be above 0 and at most 4"),
        ("{scales: [1, 1, 1, 1, 1, 1, 1, 1, 1]}", r"give 1 to 8 scales"),
        ("{flip: maybe}", r"base\.eval\.flip = 'maybe'"),
    ],
)
def test_bad_eval_settings_are_refused_naming_the_key(
    tmp_path: Path, eval_: str, pattern: str
) -> None:
    path = tmp_path / "study.yaml"
    path.write_text(STUDY.replace("EVAL", eval_))
    with pytest.raises(SpecError, match=pattern):
        load_study(path)


def test_good_eval_settings_load(tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    text = "{mode: slide, crop: [48, 48], stride: [32, 48], scales: [0.75, 1, 1.5], flip: true}"
    path.write_text(STUDY.replace("EVAL", text))
    study = load_study(path)
    assert all(r.eval.scales == [0.75, 1.0, 1.5] for r in study.recipes.values())


def test_a_trial_evaluates_with_sliding_windows_at_two_scales_and_flipped() -> None:
    from ablate.train import fit

    recipe = Recipe.model_validate(
        {
            "data": {"num_classes": 4, "image_size": [32, 40], "train_size": 8, "val_size": 4},
            "model": {"name": "pspnet_tiny", "args": {"width": 8}},
            "train": {"epochs": 1, "batch_size": 4},
            "eval": {"mode": "slide", "crop": [24, 24], "scales": [0.75, 1.0], "flip": True},
        }
    )
    result = fit(recipe, seed=0)
    assert not result.diverged and len(result.history) == 1
    assert 0 <= result.final["val/mIoU"] <= 1 and result.final["val/loss"] > 0


def test_centred_normalisation_is_unchanged_and_pretrained_backbones_get_imagenet_s() -> None:
    from ablate.train.evaluate import CENTERED, IMAGENET, input_stats, normalise

    x = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    assert torch.equal(normalise(x), (x.float() / 255.0 - 0.5) / 0.25)  # the numbers of before
    imagenet = normalise(x, IMAGENET)
    assert torch.allclose(imagenet[:, 1], (x[:, 1].float() / 255 - 0.456) / 0.224)

    def recipe(**data: object) -> Recipe:
        args = {"backbone": "resnet18", "pretrained": True}
        return Recipe.model_validate({"data": data, "model": {"name": "pspnet", "args": args}})

    assert input_stats(recipe()) == IMAGENET  # auto, with pretrained weights
    assert input_stats(recipe(normalize="centered")) == CENTERED
    assert input_stats(Recipe()) == CENTERED  # auto, trained from scratch
