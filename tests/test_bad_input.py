"""Every malformed input `ablate` is known to meet, in one table: each is refused with exit
code 2 and one message naming where it came from (the file, or the `--set` argument), the key
and what is allowed, without a traceback and without writing anything.

Every row runs through `ablate validate` (in-process); the rows in RUN also through
`ablate run --results DIR` in a fresh interpreter, which must leave the folder empty. A row's
study is GOOD with one edit, or its own text."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ablate.cli import app

ROOT = Path(__file__).parents[1]

GOOD = """\
name: tiny
base:
  data: {num_classes: 3, image_size: [32, 32], train_size: 8, val_size: 4}
  model: {name: pspnet_tiny, args: {width: 4}}
  train: {epochs: 1, batch_size: 8, lr: 0.01}
sweep: {grid: {loss.aux.weight: [0.0, 0.4]}, seeds: [0, 1]}
"""


def edit(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new, 1)


def model(spec: str) -> str:
    return edit("{name: pspnet_tiny, args: {width: 4}}", spec)


def _bomb() -> str:
    """Billion laughs: 9 levels of 9 aliases each, 9**9 strings once expanded."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 9):
        prev, this = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{this}: &{this} [{', '.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\nname: i\nsweep: {grid: {loss.aux.weight: *i}}\n"


@dataclass(frozen=True)
class Bad:
    id: str
    text: str | None  # the study file; None: there is none
    expected: str  # a fragment of the message: the key and what is allowed
    set_: list[str] = field(default_factory=list)
    from_set: bool = False  # the message names the --set argument, not the file


DIGITS = "9" * 5000
BAD = [
    # --- YAML itself
    Bad("missing file", None, "no such study file"),
    Bad("invalid yaml", "name: [unclosed\n", "not valid YAML"),
    Bad("not a mapping", "- just\n- a list\n", "a study file is a mapping"),
    Bad("unsafe tag", "name: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
    Bad("alias bomb", _bomb(), "aliases expand it to 926,177,121 values, more than the 100,000"),
    Bad(
        "duplicate key",
        "name: tiny\n" + GOOD,
        "line 2, name: key 'name' is given twice in one mapping (lines 1 and 2)",
    ),
    Bad(
        "duplicate key in a flow mapping",
        edit("epochs: 1,", "epochs: 1, epochs: 5,"),
        "line 5, base.train.epochs: key 'epochs' is given twice",
    ),
    Bad(
        "alias holding itself in model.args",
        model("{name: pspnet_tiny, args: &a {width: 4, me: *a}}"),
        "line 4, base.model.args.me: this alias names a value that holds it",
    ),
    Bad(
        "alias holding itself in --set",
        GOOD,
        "--set 'base.model.args=&a [*a]': line 1, base.model.args.0: this alias names a value",
        set_=["base.model.args=&a [*a]"],
        from_set=True,
    ),
    Bad(
        "nested too deep",
        GOOD + "description: " + "[" * 60 + "]" * 60 + "\n",
        "mappings and lists nest more than 50 deep",
    ),
    Bad(
        "nested past the parser's recursion",
        GOOD + "description: " + "[" * 5000 + "]" * 5000 + "\n",
        "mappings and lists nest more than 50 deep",
    ),
    Bad(
        "5000-digit integer",
        edit("train_size: 8", f"train_size: {DIGITS}"),
        "line 3, base.data.train_size: a whole number 5,000 characters long; "
        "a study file's numbers have at most 100 digits",
    ),
    Bad(
        "5000-digit integer in --set",
        GOOD,
        "base.train.epochs: a whole number 5,000 characters long",
        set_=[f"base.train.epochs={DIGITS}"],
        from_set=True,
    ),
    # --- numbers
    Bad(
        "inf lr",
        edit("lr: 0.01", "lr: .inf"),
        "line 5, base.train.lr: .inf is not a finite number; a study file holds finite numbers",
    ),
    Bad("-inf lr", edit("lr: 0.01", "lr: -.inf"), "base.train.lr: -.inf is not a finite number"),
    Bad(
        "nan weight",
        edit("lr: 0.01}", "lr: 0.01}\n  loss: {lovasz: .nan}"),
        "line 6, base.loss.lovasz: .nan is not a finite number",
    ),
    Bad(
        "overflowing float",
        edit("lr: 0.01", "lr: 1.0e+400"),
        "base.train.lr: 1.0e+400 is not a finite number",
    ),
    Bad(
        "overflowing float written as text",  # YAML 1.1 reads 1e400 as a string
        edit("lr: 0.01", "lr: 1e400"),
        "base.train.lr = '1e400': Input should be a finite number",
    ),
    Bad(
        "inf in model.args",  # free keys: JSON would store it as null
        model('{name: "tests.bad_models:build_any", args: {clip: .inf}}'),
        "base.model.args.clip: .inf is not a finite number",
    ),
    Bad(
        "inf lr in --set",
        GOOD,
        "--set 'base.train.lr=.inf': line 1, base.train.lr: .inf is not a finite number",
        set_=["base.train.lr=.inf"],
        from_set=True,
    ),
    Bad(
        "inf in a grid",
        edit("[0.0, 0.4]", "[0.0, .inf]"),
        "line 6, sweep.grid.loss.aux.weight.1: .inf is not a finite number",
    ),
    Bad(
        "true for an integer",
        edit("epochs: 1", "epochs: true"),
        "base.train.epochs = True: a number is needed here, not true/false",
    ),
    Bad(
        "false for a float",
        edit("lr: 0.01", "lr: false"),
        "base.train.lr = False: a number is needed here, not true/false",
    ),
    Bad(
        "true for an integer in --set",
        GOOD,
        "base.train.batch_size = True: a number is needed here",
        set_=["base.train.batch_size=true"],
    ),
    Bad(
        "true in a list of integers",
        edit("[32, 32]", "[true, 32]"),
        "base.data.image_size = [True, 32]: a number is needed here",
    ),
    Bad("true as a seed", edit("seeds: [0, 1]", "seeds: [0, true]"), "sweep.seeds = [0, True]"),
    Bad(
        "train_size of 10**12",
        edit("train_size: 8", "train_size: 1000000000000"),
        "base.data.train_size = 1000000000000: must be at most 10,000,000",
    ),
    Bad(
        "a million epochs",
        edit("epochs: 1", "epochs: 1000000"),
        "base.train.epochs = 1000000: must be at most 100,000",
    ),
    Bad(
        "batch of 100,000",
        edit("batch_size: 8", "batch_size: 100000"),
        "base.train.batch_size = 100000: must be at most 65,536",
    ),
    Bad(
        "5000 classes",
        edit("num_classes: 3", "num_classes: 5000"),
        "base.data.num_classes = 5000: must be at most 1,000",
    ),
    Bad(
        "seed past 2**32",
        edit("seeds: [0, 1]", "seeds: [0, 4294967296]"),
        "sweep.seeds.1 = 4294967296: must be at most 4,294,967,295",
    ),
    Bad(
        "wrong type",
        edit("epochs: 1", "epochs: many"),
        "base.train.epochs = 'many': Input should be a valid integer",
    ),
    # --- names and keys
    Bad(
        "uppercase name",
        edit("name: tiny", "name: Tiny Study"),
        "name = 'Tiny Study': a study name is lowercase letters, digits, '_' and '-' only, "
        "[a-z0-9_-]+ (it names the results folder",
    ),
    Bad(
        "name too long",
        edit("name: tiny", "name: " + "a" * 300),
        "a study name has at most 100 characters (it names the results folder and the MLflow "
        "experiment); this one has 300",
    ),
    Bad("rich markup in a value", edit("name: tiny", "name: 'x[/bold]'"), "name = 'x[/bold]'"),
    Bad(
        "rich markup in a key",
        edit("loss.aux.weight:", "'loss.aux.weight[/bold]':"),
        "sweep.grid.loss.aux.weight[/bold]: not a key of the recipe",
    ),
    Bad(
        "unknown key",
        edit("epochs: 1", "epohcs: 1"),
        "base.train.epohcs: unknown key (did you mean 'epochs'?); allowed here: epochs,",
    ),
    Bad(
        "unknown key in --set",
        GOOD,
        "base.trian: unknown key (did you mean 'train'?)",
        set_=["base.trian.epochs=1"],
    ),
    Bad(
        "--set without a value",
        GOOD,
        "--set 'base.train.epochs': expected KEY=VALUE",
        set_=["base.train.epochs"],
        from_set=True,
    ),
    Bad("unknown model", model("{name: pspnet_tyni}"), "did you mean 'pspnet_tiny'?"),
    # --- what the pre-flight finds: data on disk, model arguments, the user's code
    Bad(
        "data root missing",
        edit("data: {", "data: {name: folder, root: /no/such/dir, "),
        "base.data.root = '/no/such/dir': /no/such/dir: expected images/",
    ),
    Bad(
        "model argument misspelt",
        edit("width: 4", "widht: 4"),
        "base.model.args.widht: model 'pspnet_tiny' takes no argument 'widht' "
        "(did you mean 'width'?); its arguments: width, blocks",
    ),
    Bad(
        "model argument misspelt in a grid",
        edit("loss.aux.weight: [0.0, 0.4]", "model.args.widht: [4, 8]"),
        "cell 'args.widht=4': model.args.widht: model 'pspnet_tiny' takes no argument 'widht'",
    ),
    Bad(
        "model argument misspelt in a search space",
        edit(
            "sweep: {grid: {loss.aux.weight: [0.0, 0.4]}, seeds: [0, 1]}",
            "sweep: {search: {n_trials: 2, space: {model.args.widht: {low: 4, high: 8}}}}",
        ),
        "sweep.search.space.model.args.widht: model 'pspnet_tiny' takes no argument 'widht'",
    ),
    Bad(
        "user model lacks a required argument",
        model('{name: "tests.bad_models:build_needs_depth"}'),
        "base.model.args.depth: model 'tests.bad_models:build_needs_depth' needs argument "
        "'depth'; its arguments: depth",
    ),
    Bad(
        "user model module missing",
        model('{name: "tests.no_such_module:build"}'),
        "base.model: model 'tests.no_such_module:build': cannot import 'tests.no_such_module' "
        "(ModuleNotFoundError",
    ),
    Bad(
        "user model module raises on import",
        model('{name: "tests.import_fails:build"}'),
        "cannot import 'tests.import_fails' (RuntimeError: set MY_MODELS_HOME before",
    ),
    Bad(
        "user model build raises",
        model('{name: "tests.bad_models:build_raises"}'),
        "base.model: model 'tests.bad_models:build_raises': building it raised "
        "RuntimeError: no weights at /models/backbone.pt",
    ),
    Bad(
        "user model forward raises",
        model('{name: "tests.bad_models:build_forward_raises"}'),
        "base.model: model 'tests.bad_models:build_forward_raises' failed its check on a "
        "(1, 3, 32, 32) batch of zeros: ValueError: expected 4 input channels, got 3",
    ),
    Bad(
        "user model breaks the output contract",
        model('{name: "tests.models.user_model:build_without_embed"}'),
        "base.model: model 'tests.models.user_model:build_without_embed' output lacks 'embed'",
    ),
]
RUN = {
    "duplicate key",
    "alias holding itself in model.args",
    "alias holding itself in --set",
    "train_size of 10**12",
    "name too long",
    "model argument misspelt",
    "user model forward raises",
}
assert {b.id for b in BAD} >= RUN


def _write(tmp_path: Path, bad: Bad) -> Path:
    path = tmp_path / "study.yaml"
    if bad.text is not None:
        path.write_text(bad.text)
    return path


def _check(bad: Bad, path: Path, output: str) -> None:
    """One message, naming its source and the key, with no traceback."""
    flat = " ".join(output.split())  # the console may wrap a long message
    assert "Traceback" not in output
    assert flat.count("error:") == 1, output
    assert bad.expected in flat, output
    assert ("--set " if bad.from_set else str(path)) in flat


@pytest.mark.parametrize("bad", BAD, ids=[b.id for b in BAD])
def test_validate_refuses_with_one_message_and_exit_2(
    bad: Bad, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, bad)
    monkeypatch.chdir(tmp_path)
    args = ["validate", str(path), *(a for s in bad.set_ for a in ("--set", s))]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # typer.Exit(2), not an escaped error
    _check(bad, path, result.output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ([path.name] if bad.text else [])


def test_the_good_study_is_ok(tmp_path: Path) -> None:
    """The rows are one edit from this file: it must pass, or they prove nothing."""
    path = _write(tmp_path, Bad("good", GOOD, ""))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output


def test_a_builder_taking_any_argument_is_not_refused_its_arguments(tmp_path: Path) -> None:
    study = model('{name: "tests.bad_models:build_any", args: {flag: true, n: 1}}')
    result = CliRunner().invoke(app, ["validate", str(_write(tmp_path, Bad("any", study, "")))])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("bad", [b for b in BAD if b.id in RUN], ids=lambda b: b.id)
def test_run_refuses_before_writing_anything(bad: Bad, tmp_path: Path) -> None:
    path = _write(tmp_path, bad)
    results = tmp_path / "results"
    args = ["run", str(path), "--results", str(results), "--workers", "1"]
    args += [a for s in bad.set_ for a in ("--set", s)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "ablate", *args],
        cwd=tmp_path,  # where MLflow would put a store if anything reached it
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    _check(bad, path, done.stdout + done.stderr)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
