"""The `ablate` command: validate, run, worker, submit, status, report, ui, diagnose,
fetch-weights, schema."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from ablate.cli._errors import err_console, stop_on_sigterm, user_errors
from ablate.errors import SpecError, UserError
from ablate.study_file import Study, load_study


class _KeepsArgv(TyperGroup):
    """Keeps the command line it parsed in `ctx.meta["argv"]` for a report's provenance:
    `sys.argv` is not the command when ablate is called from Python (a notebook, a test)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # typer's own click Context
        ctx.meta["argv"] = ["ablate", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_KeepsArgv,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Does this segmentation training trick help on my model and my data, by how much, "
    "and how sure are we?",
)
console = Console(width=None if Console().is_terminal else 120)  # logs get full-width tables

StudyArg = Annotated[str, typer.Argument(help="A study file (studies/x.yaml), or a study's name.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a key, from the file's top: base.train.epochs=1."),
]
ResultsOpt = Annotated[Path, typer.Option("--results", help="Where results go.")]


def _url_option(flag: str, env: str, help: str) -> Any:
    """A URL option that may also come from `env`: a URL may carry a password, and the
    environment keeps it out of shell history and `ps`."""
    return typer.Option(flag, envvar=env, show_envvar=True, help=help)


StorageOpt = Annotated[
    str | None,
    _url_option(
        "--storage", "ABLATE_STORAGE", "Optuna storage URL (default: results/<name>/optuna.db)."
    ),
]
TrackingOpt = Annotated[
    str | None,
    _url_option(
        "--tracking-uri", "ABLATE_TRACKING_URI", "MLflow tracking URI (default: results/mlflow.db)."
    ),
]
CheckpointOpt = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint-dir",
        help="Where running trials keep their checkpoints (default: results/<name>/ckpt); "
        "a folder all machines share lets a trial continue on another one.",
    ),
]


def _is_file(ref: str) -> bool:
    return Path(ref).suffix in (".yaml", ".yml") or Path(ref).is_file()


def _study(ref: str, overrides: list[str] | None, results: Path, storage: str | None) -> Study:
    """A study from its file, or — given a name — from the spec saved with its Optuna study."""
    if _is_file(ref):
        return load_study(ref, overrides or ())
    return _existing(ref, results, storage, read_only=True)[0]


def _existing(
    ref: str, results: Path, storage: str | None, *, read_only: bool
) -> tuple[Study, Any]:
    """A study that has run (its file, or its name) and its queue, the storage opened once."""
    from ablate.study import default_storage_url, load_existing, stored_study

    s = load_study(ref) if _is_file(ref) else None
    name = s.spec.name if s is not None else ref
    queue = load_existing(name, storage or default_storage_url(results, name), read_only=read_only)
    return (s or stored_study(queue, ref)), queue


@app.command()
@user_errors
def validate(study: StudyArg, set_: SetOpt = None) -> None:
    """Check a study file as `run` does before it trains, without training or writing anything:
    every key, each disk dataset's layout, and each model built once and run on a batch."""
    s = load_study(study, set_ or ())
    from ablate.preflight import preflight  # torch: the same check `run` makes, so ok means ok

    preflight(s)
    baseline = f"; baseline {s.baseline!r}" if s.baseline else ""
    # a path or a cell name may hold [brackets]: text, not rich markup
    console.print(f"{s.path}: ok — {s.describe()} = {s.n_trials} trials{baseline}", markup=False)
    for line in s.design.outline():
        console.print(line, highlight=False, markup=False)
    for claim in s.claims:
        console.print(
            f"claim {claim.index}: {claim.sentence} ({claim.test}: {claim.method})",
            markup=False,
            highlight=False,
        )
    if not s.claims:
        console.print(
            "no claims declared: the comparisons with the baseline are exploratory",
            highlight=False,
        )


@app.command()
@user_errors
def plan(
    study: StudyArg,
    set_: SetOpt = None,
    probe: Annotated[
        bool, typer.Option("--probe", help="Time a few iterations of each distinct model.")
    ] = False,
    workers: Annotated[int | None, typer.Option(help="CPU worker processes.", min=1)] = None,
    devices: Annotated[str | None, typer.Option(help="e.g. cuda:0,cuda:1 or cpu.")] = None,
) -> None:
    """What a study will train: its trials by model, and with --probe the estimated wall
    time, from timing a few iterations and one evaluation of each distinct model."""
    from ablate.formats import duration
    from ablate.options import check_devices
    from ablate.plan import make_plan
    from ablate.study import plan_devices

    s = load_study(study, set_ or ())
    check_devices(devices)
    placed = plan_devices(devices, workers)
    timer = None
    if probe:
        from ablate.preflight import preflight
        from ablate.train.probe import probe as time_recipe

        preflight(s)
        device = placed[0][0]

        def timer(recipe: Any) -> float:
            console.print(f"probing {recipe.model.name} on {device} …", highlight=False)
            return time_recipe(recipe, device).trial_s

    made = make_plan(s, len(placed), timer)
    console.print(f"{s.path}: {s.describe()} = {made.trials} trials", highlight=False)
    for line in made.lines:
        each = f", {duration(line.trial_s)} per trial" if line.trial_s is not None else ""
        cells = ", ".join(line.cells[:4]) + (
            f" and {len(line.cells) - 4} more" * (len(line.cells) > 4)
        )
        console.print(f"  {line.model}: {line.trials} trials ({cells}){each}", highlight=False)
    if made.wall_s is not None:
        console.print(
            f"estimated wall time: {duration(made.wall_s)} on {len(placed)} worker(s) "
            f"({', '.join(d for d, _ in placed)}), from {len(made.lines)} probe(s); data "
            "loading from disk and the report are not counted",
            highlight=False,
        )


@app.command()
@user_errors
def run(
    ctx: typer.Context,
    study: StudyArg,
    set_: SetOpt = None,
    workers: Annotated[int | None, typer.Option(help="CPU worker processes.", min=1)] = None,
    devices: Annotated[str | None, typer.Option(help="e.g. cuda:0,cuda:1 or cpu.")] = None,
    results: ResultsOpt = Path("results"),
    storage: StorageOpt = None,
    tracking_uri: TrackingOpt = None,
    checkpoint_dir: CheckpointOpt = None,
    start_over: Annotated[
        bool,
        typer.Option(
            "--start-over",
            help="The study's Optuna storage was lost but MLflow holds its runs: train it "
            "again from nothing and delete those runs.",
        ),
    ] = False,
) -> None:
    """Train every (cell, seed) that is not done yet, then write the report."""
    from ablate.options import check_devices, check_places

    s = load_study(study, set_ or ())
    check_devices(devices)  # before anything is written
    check_places(s.spec.name, results, storage, tracking_uri, checkpoint_dir)
    stop_on_sigterm()
    from ablate.preflight import preflight
    from ablate.report import print_summary, write_report
    from ablate.study import Locations, create_or_load, run_study, run_tree_of

    preflight(s)
    where = Locations.resolve(results, s.spec.name, storage, tracking_uri, checkpoint_dir)
    outcome = run_study(s, where, devices, workers, console, start_over=start_over)
    queue = create_or_load(s, where.storage_url, where.tracking_uri)
    rep = write_report(s, queue, results, argv=ctx.meta.get("argv"))
    tree = run_tree_of(queue, where.tracking_uri)
    if tree is not None:
        _publish(rep, s, tree)
    console.print(f"report: {rep.folder / 'report.md'}")
    print_summary(console, rep, s)
    if outcome.failed:
        err_console.print(
            f"[red]{len(outcome.failed)} trial(s) failed after retries:[/] "
            + escape(", ".join(f"{c} seed={k}" for c, k in outcome.failed))
        )
    if outcome.unfinished:
        err_console.print(
            f"[yellow]{len(outcome.unfinished)} trial(s) not finished yet[/] (waiting or "
            "running elsewhere; `ablate status` shows them, `ablate run` again trains them): "
            + escape(", ".join(f"{c} seed={k}" for c, k in outcome.unfinished[:10]))
        )
    if outcome.failed or outcome.unfinished:
        raise typer.Exit(1)


@app.command()
@user_errors
def worker(
    study: StudyArg,
    storage: Annotated[
        str, _url_option("--storage", "ABLATE_STORAGE", "The shared Optuna storage URL.")
    ],
    tracking_uri: TrackingOpt = None,
    workers: Annotated[int | None, typer.Option(help="CPU worker processes.", min=1)] = None,
    devices: Annotated[str | None, typer.Option(help="e.g. cuda:0,cuda:1 or cpu.")] = None,
    checkpoint_dir: CheckpointOpt = None,
) -> None:
    """Join a study that `ablate run --storage URL` started and pull its trials."""
    from ablate.options import check_devices, check_folder, check_tracking_uri
    from ablate.study import default_checkpoints, join_study, run_tree_of

    stop_on_sigterm()
    check_devices(devices)
    s, queue = _existing(study, Path("results"), storage, read_only=False)
    tree = run_tree_of(queue, tracking_uri)
    if tree is None:
        raise SpecError(f"study {s.spec.name!r} has no MLflow runs yet; start it with `ablate run`")
    given = "--tracking-uri" if tracking_uri else "the study's tracking URI (--tracking-uri)"
    check_tracking_uri(tree.tracking_uri, option=given)
    checkpoints = checkpoint_dir or default_checkpoints(Path("results"), s.spec.name)
    check_folder("--checkpoint-dir", checkpoints)
    join_study(s, queue, tree, devices, workers, console, checkpoints)


@app.command()
@user_errors
def submit(
    study: StudyArg,
    storage: Annotated[
        str,
        _url_option("--storage", "ABLATE_STORAGE", "The shared Optuna storage (PostgreSQL) URL."),
    ],
    tracking_uri: Annotated[
        str,
        _url_option(
            "--tracking-uri",
            "ABLATE_TRACKING_URI",
            "An MLflow server or tracking database every job reaches.",
        ),
    ],
    time_limit: Annotated[
        str,
        typer.Option("--time", help="Each job's time limit: 4:00:00, 1-12:00:00 or minutes."),
    ],
    executor: Annotated[
        str, typer.Option(help="slurm, or local (jobs on this machine, to try it out).")
    ] = "slurm",
    jobs: Annotated[int, typer.Option(help="Jobs to start.", min=1)] = 1,
    gpus_per_job: Annotated[
        int, typer.Option(help="GPUs per job; one worker on each (0: CPU workers).", min=0)
    ] = 1,
    workers: Annotated[
        int | None, typer.Option(help="CPU worker processes per job without GPUs.", min=1)
    ] = None,
    partition: Annotated[str | None, typer.Option(help="The Slurm partition.")] = None,
    slurm: Annotated[
        list[str] | None,
        typer.Option(
            "--slurm",
            help="Another Slurm parameter, as submitit names it: cpus_per_task=8, mem=64G, "
            "account=lab, setup=[source venv/bin/activate].",
        ),
    ] = None,
    set_: SetOpt = None,
    results: ResultsOpt = Path("results"),
    checkpoint_dir: CheckpointOpt = None,
) -> None:
    """Start workers as Slurm jobs (submitit): create or resume the study as `run` does, then
    submit N jobs that each run `ablate worker` on their GPUs until the queue is empty. A
    preempted or timed-out job ends its trial KILLED, re-queues it and is requeued itself."""
    from ablate.submit import (
        WorkerCommand,
        check_scheduler,
        check_shared_stores,
        job_plan,
        submit_jobs,
    )

    plan = job_plan(executor, jobs, gpus_per_job, time_limit, partition, slurm or [])
    check_shared_stores(storage, tracking_uri, executor)
    check_scheduler(executor)
    s = _study(study, set_, results, storage)
    from ablate.options import check_places
    from ablate.preflight import preflight
    from ablate.study import Locations, start_study

    check_places(s.spec.name, results, storage, tracking_uri, checkpoint_dir)
    preflight(s)
    where = Locations.resolve(results, s.spec.name, storage, tracking_uri, checkpoint_dir)
    started = start_study(s, where, console)
    queued = started.queued
    to_train = queued.enqueued + queued.pending + s.design.later(started.queue)
    if to_train == 0:
        console.print(f"All {queued.total} trials of {s.spec.name!r} are complete; no job sent.")
        return
    devices, cpu_workers = plan.devices(workers)
    command = WorkerCommand(
        s.spec.name,
        storage,
        tracking_uri,
        where.checkpoints.resolve(),
        Path.cwd(),
        devices,
        cpu_workers,
    )
    sent = submit_jobs(plan, command, results, s.spec.name)
    console.print(
        f"{s.spec.name}: {to_train} trials to train ({queued.done} done); "
        f"{len(sent)} {plan.executor} job(s) submitted: {', '.join(j.job_id for j in sent)}",
        highlight=False,
    )
    console.print(
        f"logs: {sent[0].folder}/<job id>_0_log.out|err; `ablate status {s.spec.name} "
        "--storage ...` shows the trials and the jobs; `ablate report` once they are done",
        highlight=False,
    )


_STATUS_ROWS = 30  # beyond this many cells, the table lists only those not finished


@app.command()
@user_errors
def status(
    study: StudyArg,
    results: ResultsOpt = Path("results"),
    storage: StorageOpt = None,
    all_cells: Annotated[
        bool, typer.Option("--all", help="List every cell, finished ones too.")
    ] = False,
) -> None:
    """Counts of trials by state, and each cell's progress, read from storage. A study of
    many cells lists only the cells not finished (`--all` lists every one)."""
    from collections import Counter

    from ablate.study import Outcome, planned_seeds

    s, queue = _existing(study, results, storage, read_only=True)
    records = queue.records(results=False)  # where each trial stands is all this shows
    counts = Counter(r.state for r in records)
    planned = planned_seeds(s, queue)
    console.print(
        f"{s.spec.name}: {s.describe()}; "
        + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing run yet")
    )
    # one pass, however many cells: each trial under its outcome, or where it waits
    n = Counter(
        (r.cell, r.outcome.value if r.outcome else "running" if r.running else "waiting")
        for r in records
    )
    states = ["running", "waiting", *(o.value for o in (Outcome.FAILED, Outcome.KILLED))]
    states.append(Outcome.DIVERGED.value)
    done = Outcome.COMPLETE.value

    def finished(c: str) -> bool:
        return n[c, done] >= planned.get(c, 0) and not n[c, "running"] + n[c, "waiting"]

    cells = [c.name for c in s.cells]
    many = len(cells) > _STATUS_ROWS and not all_cells
    shown = [c for c in cells if not finished(c)] if many else cells
    folded = len(cells) - len(shown)
    table = Table(
        "cell", "done", "running", "waiting", "failed tries", "killed", "diverged",
        caption=f"{folded} more cell(s) finished (--all lists them)" if folded else None,
    )  # fmt: skip
    for c in shown:
        table.add_row(
            escape(c), f"{n[c, done]}/{planned.get(c, 0)}", *(str(n[c, x]) for x in states)
        )  # a name is text
    if shown:
        console.print(table)
    else:
        console.print(f"all {len(cells)} cells finished (--all lists them)")
    _print_jobs(results, s.spec.name)


def _print_jobs(results: Path, name: str) -> None:
    """The jobs `ablate submit` started for the study, with their scheduler's state."""
    from ablate.submit import job_state, jobs_file, read_jobs

    jobs = read_jobs(jobs_file(results, name))
    if not jobs:
        return
    table = Table("job", "executor", "state", "submitted", "logs", title="jobs (ablate submit)")
    for job in jobs:
        table.add_row(job.job_id, job.executor, job_state(job), job.submitted, job.folder)
    console.print(table)


@app.command()
@user_errors
def report(
    ctx: typer.Context,
    study: StudyArg,
    results: ResultsOpt = Path("results"),
    storage: StorageOpt = None,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Rebuild trials.csv, summary.csv, plots and report.md from storage, without training."""
    from ablate.options import check_tracking_uri
    from ablate.report import print_summary, write_report
    from ablate.study import reconcile_and_say, run_tree_of

    s, queue = _existing(study, results, storage, read_only=True)
    tree = run_tree_of(queue, tracking_uri)
    if tree is not None:  # an unreachable server: one line now, not minutes of MLflow's retries
        given = "--tracking-uri" if tracking_uri else "the study's tracking URI (--tracking-uri)"
        check_tracking_uri(tree.tracking_uri, option=given)
        reconcile_and_say(queue, tree, console)
    rep = write_report(s, queue, results, argv=ctx.meta.get("argv"))
    if tree is not None:
        _publish(rep, s, tree)
    console.print(f"report: {rep.folder / 'report.md'}")
    print_summary(console, rep, s)


@app.command()
def ui(
    results: ResultsOpt = Path("results"),
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5000,
) -> None:
    """Open the MLflow UI on this results folder's store, bound to 127.0.0.1."""
    from ablate.track import default_tracking_uri

    db = results / "mlflow.db"
    if not db.exists():
        err_console.print(f"[bold red]error:[/] {db}: no MLflow store yet; run a study first")
        raise typer.Exit(2)
    from ablate.track import experiment_ids, runs_url

    address = f"http://127.0.0.1:{port}"
    console.print(f"MLflow UI: {address}/  (Ctrl-C to stop)")
    for name, experiment in experiment_ids(default_tracking_uri(results)).items():
        # the training view: MLflow 3's bare experiment page opens a GenAI overview
        console.print(f"  {name}: {runs_url(address, experiment)}", highlight=False)
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        default_tracking_uri(results),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        # one person's browser on localhost needs one server worker; MLflow's default four
        # each import MLflow, which delays the UI's start on a small machine
        "--workers",
        "1",
    ]
    # its own session: Ctrl-C and SIGTERM reach ablate, which then stops the server and every
    # process it started (they outlived ablate before)
    server = subprocess.Popen(cmd, env={**os.environ}, start_new_session=True)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    code = 0
    try:
        code = server.wait()
    except KeyboardInterrupt:
        code = 130
    finally:
        _stop_group(server)
        signal.signal(signal.SIGTERM, previous)
    raise typer.Exit(code)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop_group(leader: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM to the leader's process group, then SIGKILL to what is left after `grace_s`."""
    import time

    deadline = time.monotonic() + grace_s
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(leader.pid, sig)
        except ProcessLookupError:
            break
        while time.monotonic() < deadline:
            leader.poll()  # reap the leader, or the group never empties
            try:
                os.killpg(leader.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        deadline = time.monotonic() + grace_s
    leader.wait()


def _publish(rep: Any, s: Study, tree: Any) -> None:
    """The report's files and aggregates to MLflow; a tracking store that fails says so and
    leaves the report on disk as it is."""
    from ablate.errors import store_error
    from ablate.report import publish

    try:
        publish(rep, s, tree)
    except Exception as exc:
        err_console.print(
            f"[yellow]warning:[/] the report was not logged to MLflow ({escape(store_error(exc))})"
            "; `ablate report` logs it again once the tracking store works",
            highlight=False,
        )


@app.command("fetch-weights")
@user_errors
def fetch_weights(
    name: Annotated[
        str, typer.Argument(help="A backbone: resnet18, resnet34, resnet50, resnet101.")
    ],
) -> None:
    """Download a backbone's ImageNet weights (torchvision's file) into torch hub's cache, where
    `pretrained: true` finds them; for a machine with network, before training offline."""
    from ablate.models import fetch_weights as download

    console.print(f"{name}: {download(name)}", highlight=False)


@app.command()
@user_errors
def diagnose(
    study: StudyArg,
    set_: SetOpt = None,
    steps: Annotated[int, typer.Option(help="Training steps of the base recipe.", min=1)] = 300,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    keep_aux: Annotated[
        bool, typer.Option(help="Keep the base's companion losses on while measuring.")
    ] = False,
    results: ResultsOpt = Path("results"),
) -> None:
    """Where companion heads go: train the base recipe for a few hundred steps (no Optuna, no
    MLflow), print each stage's mean |gradient| and flag those under 1e-7, the placement rule
    of Wang et al. (2015); plot the gradients to results/<name>/diagnose.png."""
    from ablate.preflight import preflight
    from ablate.report.plots import plot_stage_gradients
    from ablate.train.diagnose import check_device
    from ablate.train.diagnose import diagnose as measure

    s = load_study(study, set_ or ())
    check_device(device)
    preflight(s)
    found = measure(s.spec.base, steps, device=device, keep_aux=keep_aux)
    aux = "on" if found.aux_weight else "off"
    console.print(
        f"{s.spec.name}: base recipe ({s.spec.base.model.name}), {steps} steps on {device}, "
        f"companion losses {aux} (loss.aux.weight = {found.aux_weight:g}); gradients every "
        f"{found.every} steps",
        highlight=False,
    )
    if found.diverged or not found.samples:
        err_console.print("[red]the loss diverged before any gradient was kept[/]; lower the lr")
        raise typer.Exit(1)
    table = Table(
        "stage",
        "at step 0",
        f"mean of steps {steps // 2}–{steps - 1}",
        f"under {found.threshold:g}",
        title="mean |∂L/∂w| of each stage's weights",
    )
    for g in found.stages:
        flag = "[bold red]yes[/]" if g.vanishing else "no"
        table.add_row(g.name, f"{g.first:.2e}", f"{g.late:.2e}", flag)
    console.print(table)
    if found.first_vanishing:
        console.print(f"first stage under {found.threshold:g}: {found.first_vanishing}")
    if found.recommended:
        console.print(f"companion heads after: {', '.join(found.recommended)}", highlight=False)
    elif found.first_vanishing:
        console.print("only the last stage is under it, and the main head follows it already")
    else:
        console.print(
            f"no stage under {found.threshold:g}: deep supervision is not expected to help "
            "by this rule",
            highlight=False,
        )
    png = plot_stage_gradients(
        found.samples,
        title=f"{s.spec.name}: base recipe, {steps} steps, companion losses {aux}",
        out_dir=results / s.spec.name,
        stem="diagnose",
        threshold=found.threshold,
        flagged=[g.name for g in found.stages if g.vanishing],
    )[0]
    console.print(f"plot: {png}", highlight=False)


@app.command()
@user_errors
def schema(
    output: Annotated[
        Path | None, typer.Option("--output", help="Write it to this file instead.")
    ] = None,
) -> None:
    """Print the JSON Schema of a study file, for an editor that checks YAML as you type: a
    first line `# yaml-language-server: $schema=<path to the file this writes>` in a study
    file. The same rules as docs/study-file.md; `validate` checks more (models, data)."""
    from ablate._reference import schema_text  # pydantic only: no torch, no MLflow

    text = schema_text()
    if output is None:
        typer.echo(text, nl=False)  # not rich: it would wrap and colour the JSON
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{output}: cannot write it ({exc.strerror or exc})") from None
    console.print(f"wrote {output}", highlight=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
