"""A checkpoint that cannot be used (damaged, foreign, or a pickle with code in it) is moved
aside and named, never run, and the trial trains from the beginning; left in place it would
fail every later try."""

import contextlib
import os
import pickle
import random
from pathlib import Path
from typing import Any

import pytest
import torch

from ablate.spec import Recipe
from ablate.train import EpochResult, FitResult, fit
from ablate.train.checkpoint import CheckpointSetAside, load_checkpoint, set_aside

TIMING = {"train/images_per_s"}  # wall-clock, not a result
SEED = 1
RECIPE = Recipe.model_validate(
    {
        "data": {"num_classes": 4, "image_size": [32, 32], "train_size": 16, "val_size": 8},
        "model": {"name": "pspnet_tiny", "args": {"width": 8}},
        "train": {"iters": 4, "batch_size": 6, "lr": 0.02},
        "eval": {"every": 2},  # a checkpoint at iteration 2
    }
)
IDENTITY = {"recipe": RECIPE.model_dump(mode="json"), "seed": SEED}


class _Stop(Exception):
    pass


def _stop(result: EpochResult) -> None:
    raise _Stop  # as a kill would, right after the first checkpoint was written


def _numbers(result: FitResult) -> list[dict[str, float]]:
    return [{k: v for k, v in r.metrics.items() if k not in TIMING} for r in result.history]


@pytest.fixture(scope="module")
def whole() -> FitResult:
    """The trial trained from the beginning, never stopped."""
    return fit(RECIPE, seed=SEED)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of this trial's real checkpoint after its first evaluation."""
    path = tmp_path_factory.mktemp("good") / "c.pt"
    with pytest.raises(_Stop):
        fit(RECIPE, seed=SEED, on_epoch=_stop, checkpoint=path)
    return path.read_bytes()


class _Touch:
    """A pickle that creates `marker` when unpickled in full."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def _torch_bytes(obj: Any, tmp: Path) -> bytes:
    torch.save(obj, tmp)
    return tmp.read_bytes()


def _fit_over(path: Path, content: bytes) -> tuple[FitResult, list[EpochResult]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    seen: list[EpochResult] = []
    with pytest.warns(CheckpointSetAside, match="the trial starts from the beginning"):
        result = fit(RECIPE, seed=SEED, on_epoch=seen.append, checkpoint=path)
    return result, seen


def _aside(path: Path) -> list[Path]:
    return sorted(p for p in path.parent.iterdir() if p.name.startswith(f"{path.name}."))


def _assert_trained_from_the_start(
    result: FitResult, seen: list[EpochResult], whole: FitResult
) -> None:
    assert result.resumed_at == 0
    assert [r.epoch for r in seen] == [1, 2]  # nothing replayed from a checkpoint
    assert _numbers(result) == _numbers(whole)  # exactly the numbers of a fresh trial


def _damaged(tmp: Path, good: bytes) -> dict[str, bytes]:
    """Each way a file at a checkpoint's path can be unusable though the trial is ours."""
    state = torch.load(_path(tmp, good), weights_only=True)
    return {
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "random bytes": random.Random(0).randbytes(4096),
        "not a dict": _torch_bytes([1, 2, 3], tmp / "list.pt"),
        "no identity": _torch_bytes({"step": 2}, tmp / "plain.pt"),
        "missing keys": _torch_bytes({"identity": IDENTITY, "step": 2}, tmp / "keys.pt"),
        # the model loads, then the optimiser does not: the run must be set up afresh
        "no optimiser": _torch_bytes({**state, "optimizer": {}}, tmp / "opt.pt"),
    }


def _path(tmp: Path, content: bytes) -> Path:
    path = tmp / "good.pt"
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    "kind",
    [
        "empty",
        "truncated",
        "random bytes",
        "not a dict",
        "no identity",
        "missing keys",
        "no optimiser",
    ],
)
def test_a_damaged_checkpoint_is_set_aside_and_the_trial_starts_over(
    tmp_path: Path, good: bytes, whole: FitResult, kind: str
) -> None:
    make = tmp_path / "make"
    make.mkdir()
    content = _damaged(make, good)[kind]
    path = tmp_path / "ckpt" / "cell-0123abcd-seed1.pt"

    result, seen = _fit_over(path, content)

    _assert_trained_from_the_start(result, seen, whole)
    (moved,) = _aside(path)
    assert moved.name.startswith(f"{path.name}.damaged-")
    assert moved.read_bytes() == content  # kept as it was, beside the checkpoint
    assert result.set_aside.startswith(f"set aside as {moved}: ")
    assert "\n" not in result.set_aside
    # the trial wrote a good checkpoint of its own where the damaged one was
    assert load_checkpoint(path, IDENTITY).state is not None


@pytest.mark.parametrize("layout", ["pickle", "torch.save"])
def test_a_checkpoint_with_code_in_it_is_never_run(
    tmp_path: Path, whole: FitResult, layout: str
) -> None:
    marker = tmp_path / "PWNED"
    payload = (
        pickle.dumps(_Touch(marker), protocol=2)
        if layout == "pickle"
        else _torch_bytes({"identity": IDENTITY, "step": _Touch(marker)}, tmp_path / "evil.pt")
    )
    live = tmp_path / "live.pt"  # the payload is real: a full unpickling runs it
    live.write_bytes(payload)
    with contextlib.suppress(RuntimeError):  # the old loader: a raw pickle ran, then failed
        torch.load(live, weights_only=False)
    assert marker.exists()
    marker.unlink()
    path = tmp_path / "results" / "s" / "ckpt" / "cell-0123abcd-seed1.pt"

    result, seen = _fit_over(path, payload)

    assert not marker.exists()
    _assert_trained_from_the_start(result, seen, whole)
    (moved,) = _aside(path)
    assert moved.name.startswith(f"{path.name}.damaged-")
    assert "weights-only loader" in result.set_aside


def test_another_trials_checkpoint_is_set_aside_as_foreign(
    tmp_path: Path, good: bytes, whole: FitResult
) -> None:
    path = tmp_path / "c.pt"
    path.write_bytes(good)
    other = {**IDENTITY, "seed": SEED + 1}
    with pytest.warns(CheckpointSetAside):
        loaded = load_checkpoint(path, other)
    assert loaded.state is None
    (moved,) = _aside(path)
    assert moved.name.startswith("c.pt.foreign-") and moved.read_bytes() == good
    assert loaded.set_aside == f"set aside as {moved}: written for another trial (seed)"
    assert not path.exists()  # a later try does not find it again


def test_a_foreign_recipe_is_named_by_the_keys_that_differ(tmp_path: Path, good: bytes) -> None:
    path = tmp_path / "c.pt"
    path.write_bytes(good)
    other = RECIPE.model_copy(update={"train": RECIPE.train.model_copy(update={"lr": 0.5})})
    with pytest.warns(CheckpointSetAside):
        loaded = load_checkpoint(path, {"recipe": other.model_dump(mode="json"), "seed": SEED})
    assert loaded.set_aside.endswith("written for another trial (recipe.train.lr)")


def test_setting_aside_never_overwrites_an_earlier_file_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    lines = []
    for content in (b"first", b"second", b"third"):
        path.write_bytes(content)
        with pytest.warns(CheckpointSetAside):
            lines.append(set_aside(path, "damaged", "test"))
    moved = _aside(path)
    assert sorted(p.read_bytes() for p in moved) == [b"first", b"second", b"third"]
    assert not path.exists() and len(set(lines)) == 3


def test_a_checkpoint_that_cannot_be_moved_is_named_and_the_trial_starts_over(
    tmp_path: Path, whole: FitResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: Path, target: Path) -> Path:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "rename", refuse)  # a read-only folder (root ignores chmod)
    path = tmp_path / "c.pt"

    result, seen = _fit_over(path, b"")

    _assert_trained_from_the_start(result, seen, whole)
    assert result.set_aside.startswith(f"could not set aside {path} (PermissionError")
    assert result.set_aside.endswith(": unreadable (EOFError)")
    assert _aside(path) == []


def test_a_good_checkpoint_loads_as_plain_tensors_and_resumes(
    tmp_path: Path, good: bytes, whole: FitResult
) -> None:
    path = _path(tmp_path, good)
    torch.load(path, weights_only=True)  # no dataclass, no NumPy object: nothing to trust
    seen: list[EpochResult] = []
    result = fit(RECIPE, seed=SEED, on_epoch=seen.append, checkpoint=path)
    assert result.resumed_at == 1 and result.set_aside == ""
    assert _numbers(result) == _numbers(whole)
    assert [r.epoch for r in seen] == [1, 2]  # the first replayed from the checkpoint
