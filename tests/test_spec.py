import time
from pathlib import Path

import pytest
import yaml

from ablate.design import expand_cells, search_kind
from ablate.spec import SpecError, apply_overrides, parse_override
from ablate.study_file import load_study

STUDIES = sorted(Path(__file__).parents[1].joinpath("studies").glob("*.yaml"))
GOOD = """
name: t
base:
  data: {num_classes: 4, image_size: [64, 64], train_size: 8, val_size: 4}
  train: {epochs: 1}
sweep:
  grid: {loss.aux.weight: [0.0, 0.4]}
  seeds: [0, 1]
baseline: {loss.aux.weight: 0.0}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.name)
def test_every_shipped_study_loads(path: Path) -> None:
    study = load_study(path)
    assert study.cells and study.baseline in study.recipes


def test_shipped_studies_exist() -> None:
    assert any(p.name == "aux_weight.yaml" for p in STUDIES)


def test_grid_expands_to_full_factorial_with_named_cells(tmp_path: Path) -> None:
    grid = "sweep.grid={loss.aux.weight: [0, 1], loss.aux.schedule: [constant, linear]}"
    base = "baseline={loss.aux.weight: 0, loss.aux.schedule: constant}"
    study = load_study(write(tmp_path, GOOD), [grid, base])
    names = [c.name for c in study.cells]
    assert names == [
        "aux.weight=0,aux.schedule=constant",
        "aux.weight=0,aux.schedule=linear",
        "aux.weight=1,aux.schedule=constant",
        "aux.weight=1,aux.schedule=linear",
    ]
    assert study.recipes[names[3]].loss.aux.schedule == "linear"
    assert study.recipes[names[3]].loss.aux.weight == 1


def test_baseline_by_overrides_picks_the_matching_cell(tmp_path: Path) -> None:
    study = load_study(write(tmp_path, GOOD))
    assert study.baseline == "aux.weight=0"
    assert study.keys == ["loss.aux.weight"]


def test_variants_are_named_cells(tmp_path: Path) -> None:
    text = GOOD.replace(
        "grid: {loss.aux.weight: [0.0, 0.4]}",
        "variants: {no_aux: {loss.aux.weight: 0.0}, psp: {loss.aux.weight: 0.4}}",
    ).replace("baseline: {loss.aux.weight: 0.0}", "baseline: no_aux")
    study = load_study(write(tmp_path, text))
    assert [c.name for c in study.cells] == ["no_aux", "psp"]
    assert study.recipes["psp"].loss.aux.weight == 0.4


def test_set_overrides_reach_the_base(tmp_path: Path) -> None:
    study = load_study(write(tmp_path, GOOD), ["base.train.epochs=3", "sweep.seeds=[5]"])
    assert study.spec.base.train.epochs == 3
    assert study.spec.sweep.seeds == [5]


def test_parse_override_reads_values_as_yaml() -> None:
    assert parse_override("a.b=0.5") == ("a.b", 0.5)
    assert parse_override("a.b=null") == ("a.b", None)
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])
    with pytest.raises(SpecError, match="KEY=VALUE"):
        parse_override("no-equals-sign")


def test_apply_overrides_validates_again(tmp_path: Path) -> None:
    study = load_study(write(tmp_path, GOOD))
    with pytest.raises(ValueError):
        apply_overrides(study.spec.base, {"loss.aux.schedule": "sometimes"})


def test_expand_cells_of_variants_keeps_file_order(tmp_path: Path) -> None:
    study = load_study(write(tmp_path, GOOD))
    assert [c.name for c in expand_cells(study.spec.sweep)] == ["aux.weight=0", "aux.weight=0.4"]


BAD = [
    ("missing sweep", GOOD.split("sweep:")[0], r"sweep: required key is missing"),
    (
        "misspelt key",
        GOOD.replace("epochs: 1", "epohcs: 1"),
        r"base\.train\.epohcs: unknown key \(did you mean 'epochs'\?\)",
    ),
    (
        "bad literal",
        GOOD.replace("epochs: 1", "epochs: 1, optimizer: adam"),
        r"base\.train\.optimizer = 'adam': Input should be 'sgd' or 'adamw'",
    ),
    ("bad name", GOOD.replace("name: t", "name: Bad Name"), r"name = 'Bad Name'"),
    (
        "negative weight in grid",
        GOOD.replace("[0.0, 0.4]", "[0.0, -0.4]"),
        r"cell aux\.weight=-0\.4\), loss\.aux\.weight = -0\.4: Input should be greater",
    ),
    (
        "unknown sweep key",
        GOOD.replace("loss.aux.weight: [0.0, 0.4]", "loss.aux.wieght: [1, 2]"),
        r"sweep\.grid\.loss\.aux\.wieght: not a key of the recipe "
        r"\(did you mean 'loss\.aux\.weight'",
    ),
    (
        "baseline matches nothing",
        GOOD.replace("baseline: {loss.aux.weight: 0.0}", "baseline: {loss.aux.weight: 0.9}"),
        r"baseline = .* matches no cell",
    ),
    (
        "unknown model",
        GOOD.replace("train: {epochs: 1}", "train: {epochs: 1}\n  model: {name: pspnet_tyni}"),
        r"did you mean 'pspnet_tiny'",
    ),
    ("duplicate seeds", GOOD.replace("seeds: [0, 1]", "seeds: [0, 0]"), r"seeds must be distinct"),
    ("unknown metric", GOOD + "metric: {name: val/miou}\n", r"did you mean 'val/mIoU'"),
    ("not a mapping", "- just\n- a list\n", r"a study file is a mapping"),
    ("invalid yaml", "name: [unclosed\n", r"not valid YAML"),
    ("unsafe yaml tag", "name: !!python/object/apply:os.system ['true']\n", r"not valid YAML"),
    ("image too small", GOOD.replace("[64, 64]", "[8, 64]"), r"between 32 and 4096"),
]


@pytest.mark.parametrize(("case", "text", "pattern"), BAD, ids=[b[0] for b in BAD])
def test_bad_files_name_file_key_and_allowed(
    tmp_path: Path, case: str, text: str, pattern: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SpecError, match=pattern) as info:
        load_study(path)
    assert str(path) in str(info.value)


SEARCH = GOOD.replace(
    "grid: {loss.aux.weight: [0.0, 0.4]}",
    "search: {n_trials: 12, confirm_top: 2, space: {SPACE}}",
).replace("baseline: {loss.aux.weight: 0.0}\n", "")
SPACE = "loss.aux.weight: {low: 0.0, high: 1.0}, train.batch_size: {low: 2, high: 16, log: true}"


def test_a_search_has_a_cell_per_configuration_and_a_baseline_when_confirming(
    tmp_path: Path,
) -> None:
    study = load_study(write(tmp_path, SEARCH.replace("SPACE", SPACE)))
    names = [c.name for c in study.cells]
    assert names == ["baseline", *(f"search-{i:02d}" for i in range(12))]
    assert study.baseline == "baseline"
    assert study.keys == ["loss.aux.weight", "train.batch_size"]
    assert study.design.search_seed == 0  # the first of seeds [0, 1]
    assert study.design.space["train.batch_size"].kind == "int"
    assert study.design.space["loss.aux.weight"].kind == "float"
    assert search_kind("model.args.width", 4, 16) == "int"  # a free key: the bounds say
    assert search_kind("model.args.width", 4.0, 16) == "float"


def test_a_search_without_confirmation_has_no_baseline_and_its_own_seed(tmp_path: Path) -> None:
    text = SEARCH.replace("SPACE", SPACE).replace("confirm_top: 2", "confirm_top: 0, seed: 7")
    study = load_study(write(tmp_path, text))
    assert study.cells[0].name == "search-00" and study.baseline == ""
    assert study.design.search_seed == 7


def test_a_search_baseline_may_patch_the_base_recipe(tmp_path: Path) -> None:
    text = SEARCH.replace("SPACE", SPACE) + "baseline: {loss.aux.weight: 0.0}\n"
    study = load_study(write(tmp_path, text))
    assert study.recipes["baseline"].loss.aux.weight == 0.0
    assert dict(study.cells[0].overrides) == {"loss.aux.weight": 0.0}


BAD_SEARCH = [
    ("confirm more than searched", SPACE, "confirm_top: 13", r"cannot exceed n_trials \(12\)"),
    (
        "not a number",
        "loss.aux.schedule: {low: 0, high: 1}",
        "",
        r"sweep\.search\.space\.loss\.aux\.schedule: .*cannot be searched over a range",
    ),
    (
        "whole number with a fraction",
        "train.epochs: {low: 1.5, high: 4}",
        "",
        r"train\.epochs is a whole number: give whole-number low and high",
    ),
    (
        "bound the recipe refuses",
        "train.lr: {low: 0.0, high: 0.1}",
        "",
        r"in sweep\.search\.space\.train\.lr\.low, train\.lr = 0\.0",
    ),
    (
        "unknown key",
        "loss.aux.wieght: {low: 0, high: 1}",
        "",
        r"loss\.aux\.wieght: not a key of the recipe \(did you mean 'loss\.aux\.weight'\?\)",
    ),
    ("log from zero", "train.lr: {low: 0.0, high: 0.1, log: true}", "", r"log range needs low > 0"),
    ("empty space", "", "", r"sweep\.search\.space"),
]


@pytest.mark.parametrize(
    ("case", "space", "extra", "pattern"), BAD_SEARCH, ids=[b[0] for b in BAD_SEARCH]
)
def test_bad_search_spaces_are_refused_before_anything_runs(
    tmp_path: Path, case: str, space: str, extra: str, pattern: str
) -> None:
    text = SEARCH.replace("SPACE", space)
    if extra:
        text = text.replace("confirm_top: 2", extra)
    path = write(tmp_path, text)
    with pytest.raises(SpecError, match=pattern) as info:
        load_study(path)
    assert str(path) in str(info.value)


def test_a_search_baseline_must_be_overrides_not_a_cell_name(tmp_path: Path) -> None:
    text = SEARCH.replace("SPACE", SPACE) + "baseline: search-03\n"
    with pytest.raises(SpecError, match=r"baseline = 'search-03': a search study's baseline"):
        load_study(write(tmp_path, text))


def test_search_cannot_be_combined_with_a_grid(tmp_path: Path) -> None:
    text = SEARCH.replace("SPACE", SPACE).replace(
        "search:", "grid: {loss.lovasz: [0.0, 1.0]}\n  search:"
    )
    with pytest.raises(SpecError, match=r"'search' cannot be combined with 'grid'"):
        load_study(write(tmp_path, text))


def test_a_yaml_alias_bomb_is_refused_at_once_without_expanding_it(tmp_path: Path) -> None:
    levels = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 9):
        prev = chr(ord("a") + i - 1)
        levels.append(f"{chr(ord('a') + i)}: &{chr(ord('a') + i)} [{', '.join(['*' + prev] * 9)}]")
    bomb = write(tmp_path, "\n".join(levels) + "\nname: i\nsweep: {grid: {loss.aux.weight: *i}}\n")
    with pytest.raises(SpecError, match=r"aliases expand it to [\d,]+ values, more than the"):
        load_study(bomb)  # refused from the parsed nodes: nothing is expanded or printed


def test_a_few_aliases_are_fine_and_a_long_bad_value_is_cut_short(tmp_path: Path) -> None:
    text = GOOD + "description: &d x\n"
    assert load_study(write(tmp_path, text)).spec.description == "x"
    long = GOOD.replace("name: t", "name: t\nmetric: {name: " + "v" * 5000 + "}")
    with pytest.raises(SpecError) as info:
        load_study(write(tmp_path, long))
    assert len(str(info.value)) < 1000 and "…" in str(info.value)


def test_merge_keys_and_shared_aliases_are_not_duplicates_or_cycles(tmp_path: Path) -> None:
    text = GOOD.replace(
        "train: {epochs: 1}", "train: {epochs: 1}\n  model: {args: {a: &l [1], b: *l}}"
    ).replace(
        "grid: {loss.aux.weight: [0.0, 0.4]}",
        "variants: {v: {<<: {train.epochs: 2, train.lr: 0.1}, train.epochs: 3}}",
    )  # `<<` merges a mapping whose keys the mapping itself may then override
    study = load_study(write(tmp_path, text), ["baseline=v"])
    assert study.spec.base.model.args == {"a": [1], "b": [1]}
    assert study.recipes["v"].train.epochs == 3 and study.recipes["v"].train.lr == 0.1


def test_a_whole_number_is_a_float_and_the_bounds_themselves_are_allowed(tmp_path: Path) -> None:
    text = GOOD.replace("epochs: 1", "epochs: 100000, lr: 1, batch_size: 65536")
    base = load_study(write(tmp_path, text), ["base.data.train_size=10000000"]).spec.base
    assert base.train.lr == 1.0 and base.train.epochs == 100_000
    assert base.data.train_size == 10_000_000


# --------------------------------------------------------------------------- sane bounds


def _variants(names: list[str]) -> str:
    cells = ", ".join(f'"{n}": {{loss.lovasz: {i / 10}}}' for i, n in enumerate(names))
    return GOOD.replace("grid: {loss.aux.weight: [0.0, 0.4]}", f"variants: {{{cells}}}").replace(
        "baseline: {loss.aux.weight: 0.0}\n", ""
    )


@pytest.mark.parametrize(
    ("key", "ok", "bad", "allowed"),
    [
        ("train.lr", "100", "100.5", "0 < lr ≤ 100"),
        ("train.weight_decay", "10", "1e+300", "0 ≤ weight_decay ≤ 10"),
        ("train.poly_power", "100", "1000", "0 ≤ poly_power ≤ 100"),
        ("loss.aux.weight", "100", "1e+300", "0 ≤ weight ≤ 100"),
        ("loss.lovasz", "100", "101", "0 ≤ lovasz ≤ 100"),
        ("loss.center.weight", "100", "1.0e+300", "0 ≤ weight ≤ 100"),
    ],
)
def test_a_float_knob_whose_absurd_values_only_overflow_has_an_upper_bound(
    tmp_path: Path, key: str, ok: str, bad: str, allowed: str
) -> None:
    path = write(tmp_path, GOOD)
    load_study(path, [f"base.{key}={ok}"])
    with pytest.raises(SpecError) as info:
        load_study(path, [f"base.{key}={bad}"])
    shown = repr(yaml.safe_load(bad))  # YAML 1.1 reads 1e+300 as text: the issue's own case
    assert f"base.{key} = {shown}: must be at most {ok}; allowed: {allowed}" in str(info.value)


def test_a_grid_of_a_trillion_cells_is_refused_before_it_is_expanded(tmp_path: Path) -> None:
    values = "[" + ", ".join(f"{i / 10_000:.4f}" for i in range(10_000)) + "]"
    grid = "grid: {loss.aux.weight: V, loss.lovasz: V, loss.center.weight: V}".replace("V", values)
    path = write(tmp_path, GOOD.replace("grid: {loss.aux.weight: [0.0, 0.4]}", grid))
    started = time.monotonic()
    with pytest.raises(SpecError, match=r"10,000 × 10,000 × 10,000 values make "):
        load_study(path)
    assert time.monotonic() - started < 10


def test_a_grid_of_10000_cells_is_allowed(tmp_path: Path) -> None:
    values = "[" + ", ".join(f"{i / 100:.2f}" for i in range(100)) + "]"
    grid = f"grid: {{loss.aux.weight: {values}, loss.lovasz: {values}}}"
    text = GOOD.replace("grid: {loss.aux.weight: [0.0, 0.4]}", grid).replace("[0, 1]", "[0]")
    text = text.replace("baseline: {loss.aux.weight: 0.0}", "baseline: {loss.aux.weight: 0.5}")
    with pytest.raises(SpecError) as info:  # a hundred cells match: the message names a few
        load_study(write(tmp_path, text))
    assert len(str(info.value)) < 1000 and "and 9,990 more" in str(info.value)
    text = text.replace("{loss.aux.weight: 0.5}", "{loss.aux.weight: 0.5, loss.lovasz: 0.0}")
    assert len(load_study(write(tmp_path, text)).cells) == 10_000


def test_a_cell_name_may_hold_200_bytes_of_utf8_and_not_one_more(tmp_path: Path) -> None:
    fits = "é" * 100  # 100 characters, 200 bytes
    assert [c.name for c in load_study(write(tmp_path, _variants([fits, "b"]))).cells] == [
        fits,
        "b",
    ]
    with pytest.raises(SpecError, match=r"is 201 bytes in UTF-8 \(101 characters\)"):
        load_study(write(tmp_path, _variants([fits + "x", "b"])))


@pytest.mark.parametrize("char", ["\\t", "\\n", "\\0", "\\x1b"])
def test_a_cell_name_holds_no_control_character(tmp_path: Path, char: str) -> None:
    with pytest.raises(SpecError, match=r"sweep\.variants: the cell name .* holds a control"):
        load_study(write(tmp_path, _variants([f"a{char}b", "b"])))


def test_a_study_file_is_read_as_text_with_universal_newlines(tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    path.write_bytes(GOOD.replace("\n", "\r\n").encode())
    assert load_study(path).spec.name == "t"
    path.write_bytes(b"name: t\xff\n")
    with pytest.raises(SpecError, match="cannot read it"):
        load_study(path)
