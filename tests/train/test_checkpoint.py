"""A trial stopped after any evaluation and continued from its checkpoint gives the numbers of
a trial that was never stopped, bit for bit on the CPU."""

from pathlib import Path
from typing import Any

import pytest
import torch

from ablate.spec import Recipe
from ablate.train import EpochResult, fit
from ablate.train.checkpoint import CheckpointSetAside, checkpoint_name, load_checkpoint

TIMING = {"train/images_per_s"}  # wall-clock, not a result


def _recipe(**train: Any) -> Recipe:
    return Recipe.model_validate(
        {
            "data": {"num_classes": 4, "image_size": [32, 32], "train_size": 16, "val_size": 8},
            "model": {"name": "pspnet_tiny", "args": {"width": 8}},
            "train": {"batch_size": 6, "lr": 0.02, "save_model": True, **train},
            "loss": {"center": {"weight": 0.05}},  # a loss with buffers of its own
        }
    )


def _numbers(history: list[EpochResult]) -> list[dict[str, float]]:
    return [{k: v for k, v in r.metrics.items() if k not in TIMING} for r in history]


class _Stop(Exception):
    pass


def _stopped_after(evaluations: int) -> Any:
    seen: list[EpochResult] = []

    def on_epoch(result: EpochResult) -> None:
        seen.append(result)
        if len(seen) == evaluations:
            raise _Stop  # as a kill would, right after the checkpoint was written

    return on_epoch


@pytest.mark.parametrize(
    ("train", "every", "stop_after"),
    [
        ({"epochs": 4}, None, 2),  # at an epoch's end (3 batches an epoch)
        ({"iters": 10}, 4, 1),  # mid-epoch: iteration 4 is the 1st batch of epoch 2
        ({"iters": 10}, 4, 2),  # iteration 8: the 2nd batch of epoch 3
    ],
)
def test_a_trial_continued_from_its_checkpoint_equals_one_never_stopped(
    tmp_path: Path, train: dict[str, Any], every: int | None, stop_after: int
) -> None:
    recipe = _recipe(**train).model_copy(
        update={"eval": _recipe().eval.model_copy(update={"every": every})}
    )
    whole = fit(recipe, seed=3)

    path = tmp_path / "ckpt" / checkpoint_name("a cell", 3)
    with pytest.raises(_Stop):
        fit(recipe, seed=3, on_epoch=_stopped_after(stop_after), checkpoint=path)
    assert path.exists()
    torch.load(path, weights_only=True)  # tensors and plain values only
    replayed: list[EpochResult] = []
    resumed = fit(recipe, seed=3, on_epoch=replayed.append, checkpoint=path)

    assert _numbers(resumed.history) == _numbers(whole.history)  # exactly, not approximately
    assert [r.epoch for r in replayed] == list(range(1, len(whole.history) + 1))
    assert resumed.best == whole.best
    assert resumed.checkpoint is not None and whole.checkpoint is not None
    for key, value in whole.checkpoint["model"].items():
        assert torch.equal(resumed.checkpoint["model"][key], value), key
    for key, value in whole.checkpoint["objective"].items():
        assert torch.equal(resumed.checkpoint["objective"][key], value), key


def test_iterations_and_evaluation_interval_set_the_evaluations(tmp_path: Path) -> None:
    recipe = _recipe(iters=7).model_copy(
        update={"eval": _recipe().eval.model_copy(update={"every": 3})}
    )
    result = fit(recipe, seed=0)
    assert [r.metrics["train/iteration"] for r in result.history] == [3.0, 6.0, 7.0]
    assert result.total_steps == 7


def test_a_checkpoint_of_another_recipe_or_seed_is_not_continued(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    with pytest.raises(_Stop):
        fit(_recipe(epochs=3), seed=1, on_epoch=_stopped_after(1), checkpoint=path)
    written = path.read_bytes()
    ours = {"recipe": _recipe(epochs=3).model_dump(mode="json"), "seed": 1}
    assert load_checkpoint(path, ours).state is not None
    other = {"recipe": _recipe(epochs=3, lr=0.5).model_dump(mode="json"), "seed": 1}
    for theirs in ({**ours, "seed": 2}, other):
        path.write_bytes(written)
        with pytest.warns(CheckpointSetAside):
            assert load_checkpoint(path, theirs).state is None
        assert not path.exists()  # set aside: the next try does not meet it again
    assert len(list(tmp_path.glob("c.pt.foreign-*"))) == 2


def test_checkpoint_names_are_files_and_distinct_per_cell_and_seed() -> None:
    names = {checkpoint_name(c, s) for c in ("a/b", "a_b", "loss.aux.weight=0.4") for s in (0, 1)}
    assert len(names) == 6 and not any("/" in n for n in names)


def test_a_long_non_ascii_cell_name_fits_a_file_name(tmp_path: Path) -> None:
    cells = ["a" + "名" * 199, "a" + "名" * 198 + "字"]  # 598 bytes; the cut falls inside a 名
    names = [checkpoint_name(cell, 12345) for cell in cells]
    for name in names:
        assert len(name.encode()) <= 255
        assert name.startswith("a" + "名" * 39 + "-")  # whole characters only: 118 bytes
        (tmp_path / name).touch()  # the file system takes it
    assert names[0] != names[1]  # cut alike, told apart by the hash
    assert len(list(tmp_path.iterdir())) == 2


@pytest.mark.parametrize("deterministic", [True, False])
def test_threads_and_determinism_come_from_the_recipe(deterministic: bool) -> None:
    seen: list[tuple[int, bool]] = []

    def on_epoch(result: EpochResult) -> None:
        seen.append((torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()))

    before = torch.get_num_threads()
    try:
        fit(_recipe(epochs=1, threads=1, deterministic=deterministic), seed=0, on_epoch=on_epoch)
    finally:
        torch.set_num_threads(before)
        torch.use_deterministic_algorithms(False)
    assert seen == [(1, deterministic)]
