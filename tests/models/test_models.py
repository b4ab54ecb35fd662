import pytest
import torch

from ablate.models import MODELS, ModelContractError, build_model, check_outputs

# Each registered model: (stride of `out`, {aux head: stride}).
EXPECTED = {
    "pspnet_tiny": (8, {"stage3": 8}),
    "dsnet": (8, {"stage1": 2, "stage2": 4, "stage3": 8}),  # the default depth 4
    "unet_ds": (1, {"d8": 8, "d4": 4, "d2": 2}),
    "pspnet": (8, {"stage3": 8}),
    "deeplabv3plus": (4, {}),  # the decoder's stride; no aux head by default
    "dsn": (8, {"stage1": 4, "stage2": 8, "stage3": 8}),
}
# the real networks at test size: their defaults (ResNet-50, 64 channels) with a narrow ResNet-18
TINY = {name: {"backbone": "resnet18", "width": 8} for name in ("pspnet", "deeplabv3plus", "dsn")}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_meets_the_output_contract_and_trains(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, num_classes=5, args=TINY.get(name))
    x = torch.randn(2, 3, 64, 96)
    outputs = model(x)
    check_outputs(outputs, 5, name)
    out_stride, aux_strides = EXPECTED[name]
    assert outputs["out"].shape == (2, 5, 64 // out_stride, 96 // out_stride)
    assert {k: v.shape[-2:] for k, v in outputs["aux"].items()} == {
        k: (64 // s, 96 // s) for k, s in aux_strides.items()
    }
    loss = outputs["out"].mean() + sum(v.mean() for v in outputs["aux"].values())
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_every_model_has_expected_shapes_listed() -> None:
    assert set(EXPECTED) == set(MODELS)


def test_width_knob_scales_the_model() -> None:
    small = sum(p.numel() for p in build_model("pspnet_tiny", 4, {"width": 8}).parameters())
    big = sum(p.numel() for p in build_model("pspnet_tiny", 4, {"width": 16}).parameters())
    assert big > 3 * small


def test_user_model_by_import_path() -> None:
    model = build_model("tests.models.user_model:build", 3, {"channels": 4})
    check_outputs(model(torch.randn(1, 3, 32, 32)), 3)


def test_unimportable_user_model_is_a_clear_error() -> None:
    with pytest.raises(ModelContractError, match=r"cannot import 'no_such_pkg\.mod'"):
        build_model("no_such_pkg.mod:build", 3)


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({"out": torch.zeros(1, 3, 4, 4)}, "lacks 'aux', 'embed'"),
        (torch.zeros(1, 3, 4, 4), "must return a dict"),
        (
            {"out": torch.zeros(1, 2, 4, 4), "aux": {}, "embed": torch.zeros(1, 8, 4, 4)},
            r"'out' must be logits \(B, 3, h, w\)",
        ),
        (
            {
                "out": torch.zeros(1, 3, 4, 4),
                "aux": {"s": torch.zeros(3, 4, 4)},
                "embed": torch.zeros(1, 8, 4, 4),
            },
            r"'aux.s' must be logits",
        ),
    ],
)
def test_contract_violations_name_what_is_wrong(outputs: object, message: str) -> None:
    with pytest.raises(ModelContractError, match=message):
        check_outputs(outputs, 3)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_trains_one_epoch_with_its_aux_heads_in_the_loss(name: str) -> None:
    """A one-epoch trial of each registered model through `fit`, at test size, with an aux
    weight on: every aux head is a term of the loss, and the metrics are finite."""
    from ablate.spec import Recipe
    from ablate.train import fit

    recipe = Recipe.model_validate(
        {
            "data": {"num_classes": 4, "image_size": [64, 64], "train_size": 8, "val_size": 4},
            "model": {"name": name, "args": TINY.get(name, {})},
            "train": {"epochs": 1, "batch_size": 4, "lr": 0.01},
            "loss": {"aux": {"weight": 0.4}},
        }
    )
    result = fit(recipe, seed=0)
    (epoch,) = result.history
    assert not result.diverged
    assert 0.0 <= epoch.metrics["val/mIoU"] <= 1.0
    if EXPECTED[name][1]:
        assert epoch.metrics["train/loss/aux"] > 0.0
    else:
        assert "train/loss/aux" not in epoch.metrics


def test_a_fused_unet_adds_each_heads_upsampled_logits_to_its_output() -> None:
    """`fuse=True` (SeeThroughNet's use): the coarse predictions are part of the output, so a
    head's gradient reaches it from the main loss too; the same weights unfused give the plain
    output."""
    torch.manual_seed(0)
    fused = build_model("unet_ds", 4, {"depth": 2, "fuse": True}).eval()
    plain = build_model("unet_ds", 4, {"depth": 2}).eval()
    plain.load_state_dict(fused.state_dict())
    x = torch.randn(2, 3, 16, 24)
    with torch.no_grad():
        got, base = fused(x), plain(x)
    upsampled = [
        torch.nn.functional.interpolate(v, size=(16, 24), mode="bilinear", align_corners=False)
        for v in base["aux"].values()
    ]
    assert set(base["aux"]) == {"d4", "d2"}
    torch.testing.assert_close(got["out"], base["out"] + sum(upsampled))
    torch.testing.assert_close(got["aux"]["d4"], base["aux"]["d4"])

    fused.train()
    fused(x)["out"].sum().backward()  # the main loss alone
    head = fused.heads["d4"]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
