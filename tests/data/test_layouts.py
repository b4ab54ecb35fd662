"""The disk layout records are the one list of disk datasets: the spec, the class counts and the
messages all follow them, and reading them imports no torch."""

import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

from ablate.data.layouts import LAYOUTS, Layout, layout, list_pairs
from ablate.errors import DatasetError
from ablate.names import DATASETS, DISK_DATASETS, FIXED_CLASSES, GENERATED_DATASETS, DatasetName

RECORDS = [pytest.param(record, id=record.name) for record in LAYOUTS]


@pytest.mark.parametrize("record", RECORDS)
def test_a_layouts_stored_ids_map_onto_its_classes(record: Layout) -> None:
    if record.label_ids is not None:
        assert record.num_classes is not None
        assert set(record.label_ids.values()) == set(range(record.num_classes))
        assert all(0 <= stored <= 255 for stored in record.label_ids)


@pytest.mark.parametrize("record", RECORDS)
def test_a_layouts_class_count_is_its_class_names_and_the_spec_enforces_it(
    record: Layout,
) -> None:
    if record.class_names is None:
        assert record.num_classes is None and record.name not in FIXED_CLASSES
    else:
        assert len(set(record.class_names)) == record.num_classes == FIXED_CLASSES[record.name]


def test_the_dataset_names_are_the_generated_ones_then_the_layouts_in_order() -> None:
    assert DISK_DATASETS == ("folder", "cityscapes", "ade20k", "voc")
    assert DATASETS == (*GENERATED_DATASETS, *DISK_DATASETS) == get_args(DatasetName)
    assert FIXED_CLASSES == {"digits": 11, "cityscapes": 19, "ade20k": 150, "voc": 21}


def test_an_unknown_disk_dataset_is_refused_naming_the_layouts(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        list_pairs("kitti", tmp_path, "train")
    assert str(info.value) == (
        "unknown disk dataset 'kitti'; expected one of ('folder', 'cityscapes', 'ade20k', 'voc')"
    )
    with pytest.raises(DatasetError, match="'kitti'"):
        layout("kitti")


# adds a record to LAYOUTS before anything reads it, as a new entry in the file would
NEW_LAYOUT = """
import sys
from pathlib import Path

from ablate.data import layouts


def tile_pairs(root: Path, split: str) -> layouts.Pairs:
    return [(p, p.with_suffix(".mask.png")) for p in sorted((root / split).glob("*.jpg"))]


tiles = layouts.Layout(
    "tiles", "<split>/*.jpg and <split>/<stem>.mask.png", tile_pairs, ("ground", "roof", "road")
)
layouts.LAYOUTS = (*layouts.LAYOUTS, tiles)

from ablate.names import DATASETS, FIXED_CLASSES
from ablate.spec import Recipe

root = sys.argv[1]
print(DATASETS[-1], FIXED_CLASSES["tiles"])
recipe = Recipe.model_validate({"data": {"name": "tiles", "num_classes": 3, "root": root}})
print(recipe.data.name, [p.name for p, _ in layouts.list_pairs("tiles", root, "val")])
for data in (
    {"name": "tiles", "num_classes": 4, "root": root},
    {"name": "tiles", "num_classes": 3},
):
    try:
        Recipe.model_validate({"data": data})
    except ValueError as exc:
        print("refused:", str(exc).partition("Value error, ")[2].partition(" [type=")[0])
print("heavy:", sorted(m for m in ("torch", "numpy") if m in sys.modules))
from ablate.data.disk import disk_class_names, label_table

print(disk_class_names("tiles", 3), label_table("tiles")[:4].tolist())
"""


def test_a_new_record_is_a_dataset_the_spec_takes_and_list_pairs_reads(tmp_path: Path) -> None:
    (tmp_path / "val").mkdir()
    for stem in ("b", "a"):
        (tmp_path / "val" / f"{stem}.jpg").touch()
    done = subprocess.run(
        [sys.executable, "-c", NEW_LAYOUT, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    assert done.stdout.splitlines() == [
        "tiles 3",
        "tiles ['a.jpg', 'b.jpg']",
        "refused: tiles has 3 classes: set num_classes: 3",
        "refused: tiles is read from disk: set root to its folder",
        "heavy: []",
        "['ground', 'roof', 'road'] [0, 1, 2, 3]",
    ]


def test_every_public_name_of_the_package_is_its_modules_object() -> None:
    import ablate.data
    from ablate.data import disk, splits

    assert ablate.data.load_splits is splits.load_splits
    assert ablate.data.DiskDataset is disk.DiskDataset
    assert all(getattr(ablate.data, name) is not None for name in ablate.data.__all__)
    with pytest.raises(AttributeError, match="no attribute 'torch'"):
        ablate.data.torch  # noqa: B018
