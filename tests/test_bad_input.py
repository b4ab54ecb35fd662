"""Every malformed input `ablate` is known to meet, in one table: each is refused with exit
code 2 and one message naming where it came from (the file, or the `--set` argument), the key
and what is allowed, without a traceback and without writing anything.

Every row runs through `ablate validate` (in-process); the rows in RUN also through
`ablate run --results DIR` in a fresh interpreter, which must leave the folder empty. A row's
study is GOOD with one edit, or its own text."""

from __future__ import annotations

import os
import socket
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


def _axes(n: int, m: int) -> str:
    """Two grid keys of n and m values: n × m cells in a few KB."""
    aux = ", ".join(f"{i / n:.4f}" for i in range(n))
    lovasz = ", ".join(f"{i / m:.4f}" for i in range(m))
    return f"loss.aux.weight: [{aux}], loss.lovasz: [{lovasz}]"


SEEDS = str(list(range(21)))


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
        "lr of 1e308",  # finite, so allowed before: every try overflowed
        edit("lr: 0.01", "lr: 1e308"),
        "base.train.lr = '1e308': must be at most 100; allowed: 0 < lr ≤ 100",
    ),
    Bad(
        "weight decay of 1e300",
        edit("lr: 0.01", "lr: 0.01, weight_decay: 1.0e+300"),
        "base.train.weight_decay = 1e+300: must be at most 10; allowed: 0 ≤ weight_decay ≤ 10",
    ),
    Bad(
        "momentum of 1",
        edit("lr: 0.01", "lr: 0.01, momentum: 1.0"),
        "base.train.momentum = 1.0: Input should be less than 1",
    ),
    Bad(
        "aux weight of 1e300 in a grid",
        edit("[0.0, 0.4]", "[0.0, 1.0e+300]"),
        "in sweep.grid (cell aux.weight=1e+300), loss.aux.weight = 1e+300: must be at most 100; "
        "allowed: 0 ≤ weight ≤ 100",
    ),
    Bad(
        "lovasz weight of 1e300 in --set",
        GOOD,
        "base.loss.lovasz = 1e+300: must be at most 100; allowed: 0 ≤ lovasz ≤ 100",
        set_=["base.loss.lovasz=1.0e+300"],
    ),
    Bad(
        "center weight of 1e300",
        edit("lr: 0.01}", "lr: 0.01}\n  loss: {center: {weight: 1.0e+300}}"),
        "base.loss.center.weight = 1e+300: must be at most 100",
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
    # --- how big a study is
    Bad(
        "a 1000 x 1000 grid",  # a 13 KB file: 286 s and 10 GB to validate before
        edit("loss.aux.weight: [0.0, 0.4]", _axes(1000, 1000)),
        "sweep.grid: 1,000 × 1,000 values make 1,000,000 cells; a study has at most 10,000 cells",
    ),
    Bad(
        "a grid and variants past the cap",
        edit(
            "loss.aux.weight: [0.0, 0.4]}", _axes(100, 100) + "}, variants: {v: {loss.lovasz: 1}}"
        ),
        "sweep.grid: 100 × 100 values + 1 variants make 10,001 cells; a study has at most 10,000",
    ),
    Bad(
        "a search of 10**9 trials",
        edit(
            "sweep: {grid: {loss.aux.weight: [0.0, 0.4]}, seeds: [0, 1]}",
            "sweep: {search: {n_trials: 1000000000, space: {train.lr: {low: 0.001, high: 0.1}}}}",
        ),
        "sweep.search.n_trials = 1000000000: must be at most 10,000",
    ),
    Bad(
        "cells times seeds past the trial cap",
        edit("loss.aux.weight: [0.0, 0.4]}, seeds: [0, 1]", _axes(100, 50) + "}, seeds: " + SEEDS),
        "sweep.seeds: 5000 cells × 21 seeds = 105,000 trials; a study has at most 100,000",
    ),
    # --- names and keys
    Bad(
        "a 200-character non-ASCII variant name",  # 400 bytes: "File name too long" in every try
        edit(
            "grid: {loss.aux.weight: [0.0, 0.4]}", f"variants: {{{'ü' * 200}: {{loss.lovasz: 1}}}}"
        ),
        "ü… is 400 bytes in UTF-8 (200 characters); a cell name has at most 200 bytes (it "
        "names the cell's MLflow runs and checkpoint files)",
    ),
    Bad(
        "a grid cell name past 200 bytes",
        edit("loss.aux.weight: [0.0, 0.4]", "model.args.tag: [" + "x" * 195 + "]"),
        "sweep.grid: the cell name 'args.tag=xxx",
    ),
    Bad(
        "a newline in a variant name",
        edit("grid: {loss.aux.weight: [0.0, 0.4]}", 'variants: {"a\\nb": {loss.lovasz: 1}}'),
        "sweep.variants: the cell name 'a\\nb' holds a control character",
    ),
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
    "lr of 1e308",
    "a 1000 x 1000 grid",
    "a 200-character non-ASCII variant name",
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


# --------------------------------------------------------------------------- not a file


def _ablate(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`ablate ARGS` in a fresh interpreter in `cwd`, where stores would land by default."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "ablate", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,  # a read that blocks fails the test instead of hanging it
    )


def _one_error(done: subprocess.CompletedProcess[str], expected: str) -> None:
    output = done.stdout + done.stderr
    flat = " ".join(output.split())
    assert done.returncode == 2, output
    assert "Traceback" not in output
    assert flat.count("error:") == 1, output
    assert expected in flat, output


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("fifo", "is a named pipe (FIFO); a study file is a regular YAML file"),
        ("/dev/zero", "/dev/zero: is a character device; a study file is a regular YAML file"),
        ("folder", "is a folder; a study file is a regular YAML file"),
        ("2 MiB", "more than 1 MiB; a study file has at most 1,048,576 bytes"),
    ],
)
def test_a_study_file_that_is_no_regular_file_or_too_big_is_refused_before_reading_it(
    command: str, kind: str, expected: str, tmp_path: Path
) -> None:
    """A FIFO blocked the read until a writer came; /dev/zero was read without end."""
    path = tmp_path / "study.yaml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "2 MiB":
        path.write_text(GOOD + "#" * 2**21 + "\n")
    study = "/dev/zero" if kind == "/dev/zero" else str(path)
    before = sorted(tmp_path.iterdir())
    _one_error(_ablate([command, study], tmp_path, timeout=60), expected)
    assert sorted(tmp_path.iterdir()) == before


# --------------------------------------------------------------------------- options


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class BadOption:
    id: str
    args: list[str]  # after `ablate run study.yaml`; {tmp} is the test's folder
    expected: str  # a fragment of the message: the option, the value, what is allowed
    makes: tuple[str, ...] = ()  # files the test makes first, in {tmp}
    hidden: str = ""  # what the message must not show (a password)


BAD_OPTIONS = [
    BadOption(
        "--results naming a file",
        ["--results", "afile"],
        "--results afile: afile is a file, not a folder; give a folder (it is made if missing)",
        makes=("afile",),
    ),
    BadOption(
        "--results under a file",
        ["--results", "afile/results"],
        "--results afile/results: afile is a file; give a folder",
        makes=("afile",),
    ),
    BadOption(
        "the study's folder in --results is a file",
        ["--results", "res"],
        "--results res/tiny: res/tiny is a file, not a folder",
        makes=("res/tiny",),
    ),
    BadOption(
        "--checkpoint-dir naming a file",
        ["--checkpoint-dir", "afile"],
        "--checkpoint-dir afile: afile is a file, not a folder",
        makes=("afile",),
    ),
    BadOption(
        "--storage sqlite in a missing folder",
        ["--storage", "sqlite:///{tmp}/no/such/optuna.db"],
        "--storage sqlite:///{tmp}/no/such/optuna.db: the folder {tmp}/no/such does not exist; "
        "create it first",
    ),
    BadOption(
        "--storage sqlite naming a folder",
        ["--storage", "sqlite:///{tmp}/afolder"],
        "--storage sqlite:///{tmp}/afolder: {tmp}/afolder is not a file",
        makes=("afolder/",),
    ),
    BadOption(
        "--tracking-uri ftp",
        ["--tracking-uri", "ftp://x/y"],
        "--tracking-uri ftp://x/y: MLflow has no tracking store for 'ftp' URIs; allowed: "
        "sqlite:///PATH, postgresql://…",
    ),
    BadOption(
        "--tracking-uri a folder, MLflow's file store",
        ["--tracking-uri", "{tmp}/mlruns"],
        "--tracking-uri {tmp}/mlruns: a folder (MLflow's file store), which MLflow 3 refuses "
        "unless MLFLOW_ALLOW_FILE_STORE=true",
    ),
    BadOption(
        "--tracking-uri sqlite in a missing folder",
        ["--tracking-uri", "sqlite:///{tmp}/no/such/mlflow.db"],
        "--tracking-uri sqlite:///{tmp}/no/such/mlflow.db: the folder {tmp}/no/such does not exist",
    ),
    BadOption(  # 268 s of MLflow's retries and a traceback before
        "--tracking-uri http with no server, its password masked",
        ["--tracking-uri", "http://ablate:s3cret@127.0.0.1:{port}"],
        "--tracking-uri http://ablate:***@127.0.0.1:{port}: no MLflow tracking server answers "
        "there (Connection refused; 3 tries in",
        hidden="s3cret",
    ),
    BadOption(
        "--devices cuda:9",
        ["--devices", "cuda:9"],
        "--devices cuda:9: no device 'cuda:9' here; this machine has cpu",
    ),
    BadOption(
        "--devices gpu",
        ["--devices", "cpu,gpu"],
        "--devices cpu,gpu: 'gpu' is not a device name (a device is cpu, cuda, cuda:N or mps)",
    ),
]


@pytest.mark.parametrize("bad", BAD_OPTIONS, ids=lambda b: b.id)
def test_run_refuses_a_bad_option_before_writing_anything(bad: BadOption, tmp_path: Path) -> None:
    (tmp_path / "study.yaml").write_text(GOOD)
    for made in bad.makes:
        (tmp_path / made).parent.mkdir(parents=True, exist_ok=True)
        if made.endswith("/"):
            (tmp_path / made).mkdir()
        else:
            (tmp_path / made).write_text("")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    fill = {"tmp": str(tmp_path), "port": str(_free_port())}
    args = [a.format(**fill) for a in bad.args]
    done = _ablate(["run", "study.yaml", "--workers", "1", *args], tmp_path)
    _one_error(done, bad.expected.format(**fill))
    if bad.hidden:
        assert bad.hidden not in done.stdout + done.stderr
    # no results folder, no optuna.db, no mlflow.db, no folder made for them
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
