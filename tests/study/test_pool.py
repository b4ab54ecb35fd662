import os

from ablate.study import plan_devices


def test_explicit_devices_get_one_worker_each() -> None:
    assert [d for d, _ in plan_devices("cuda:0,cuda:1", None)] == ["cuda:0", "cuda:1"]


def test_cpu_workers_split_the_cores() -> None:
    cores = os.cpu_count() or 1
    plan = plan_devices(None, 2)
    assert [d for d, _ in plan] == ["cpu", "cpu"]
    assert all(t == max(1, cores // 2) for _, t in plan)


def test_one_cpu_device_gets_all_cores() -> None:
    assert plan_devices("cpu", None) == [("cpu", os.cpu_count() or 1)]


def test_the_live_display_shows_the_metric_in_the_unit_the_report_uses() -> None:
    from rich.console import Console

    from ablate.study import TrialEnded
    from ablate.study._pool import _Display

    for metric, value, shown in [
        ("val/mIoU", 0.2113, "val/mIoU = 21.13 %"),
        ("val/boundary_iou", 0.62, "val/boundary_iou = 62.00 %"),
        ("val/loss", 0.531, "val/loss = 0.53 nats"),
    ]:
        console = Console(record=True, width=200)
        display = _Display(1, 1, console, metric)
        display.handle(TrialEnded(0, 7, "complete", value))
        assert f"[1/1] trial #7 complete, {shown}" in console.export_text()


class _Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_without_a_terminal_a_finished_trial_names_cell_seed_metric_unit_and_eta() -> None:
    import io

    from rich.console import Console

    from ablate.study import TrialEnded, TrialStarted
    from ablate.study._pool import _Display

    out, clock = io.StringIO(), _Clock()
    console = Console(file=out, width=200)  # a CI log: not a terminal
    assert not console.is_terminal
    display = _Display(5, 2, console, "val/mIoU", clock=clock)
    display.handle(TrialStarted(0, 4, "aux.weight=0.4", 1, 2))
    display.handle(TrialStarted(1, 5, "aux.weight=0", 1, 2))
    clock.now += 50
    display.handle(TrialEnded(0, 4, "complete", 0.4321))
    clock.now += 40  # two trials done in 90 s, three left: 135 s at that pace
    display.handle(TrialEnded(1, 5, "complete", 0.40))
    lines = out.getvalue().splitlines()
    assert lines == [
        "[1/5] trial #4 (seed 1 · aux.weight=0.4) complete, val/mIoU = 43.21 %, "
        "ETA 3m 20s for 4 trials",
        "[2/5] trial #5 (seed 1 · aux.weight=0) complete, val/mIoU = 40.00 %, "
        "ETA 2m 15s for 3 trials",
    ]


def test_the_last_trial_has_no_eta_and_a_failed_one_names_its_cell_and_seed() -> None:
    import io

    from rich.console import Console

    from ablate.study import TrialEnded, TrialStarted
    from ablate.study._pool import _Display

    out = io.StringIO()
    display = _Display(1, 1, Console(file=out, width=200), "val/loss", clock=_Clock())
    display.handle(TrialStarted(0, 2, "ohem", 3, None))
    display.handle(TrialEnded(0, 2, "retry", error="RuntimeError: [boom]"))
    display.handle(TrialStarted(0, 2, "ohem", 3, None))
    display.handle(TrialEnded(0, 2, "complete", 0.531))
    assert out.getvalue().splitlines() == [
        "trial #2 (seed 3 · ohem) will retry: RuntimeError: [boom]",
        "[1/1] trial #2 (seed 3 · ohem) complete, val/loss = 0.53 nats",
    ]


def test_in_a_terminal_a_worker_row_s_clock_restarts_with_each_trial() -> None:
    import io

    from rich.console import Console

    from ablate.study import EpochDone, TrialEnded, TrialStarted
    from ablate.study._pool import _Display

    out, clock = io.StringIO(), _Clock()
    console = Console(file=out, width=200, force_terminal=True)
    display = _Display(3, 1, console, "val/mIoU", clock=clock)
    row = display.progress.tasks[display.rows[0]]
    display.handle(TrialStarted(0, 0, "a", 0, 4))
    clock.now += 100
    display.handle(EpochDone(0, 0, 4, 0.5))
    display.handle(TrialEnded(0, 0, "complete", 0.5))
    assert row.finished_time == 100  # the first trial's row stopped at its end
    clock.now += 3
    display.handle(TrialStarted(0, 1, "b", 0, 4))
    clock.now += 7
    display.handle(EpochDone(0, 1, 1, 0.4))
    assert row.elapsed == 7  # since the second trial began, not since the worker started
    assert row.completed == 1 and row.total == 4 and "#1 seed 0 · b" in row.description
    assert display.progress.tasks[display.overall].elapsed == 110
    assert "[1/3] trial #0 (seed 0 · a) complete" in out.getvalue()
    assert "ETA" not in out.getvalue()  # the bars show it


def test_a_cell_name_with_rich_markup_is_shown_as_text_not_parsed() -> None:
    """A variant named "[/bold]" killed every trial of `ablate run` in the progress display."""
    from rich.console import Console

    from ablate.study import TrialEnded, TrialStarted
    from ablate.study._pool import _Display

    console = Console(record=True, width=200, force_terminal=True)
    display = _Display(1, 1, console, "val/mIoU")
    with display.progress:
        display.handle(TrialStarted(0, 3, "[/bold] x=[/]", 0, 2))
        display.handle(TrialEnded(0, 3, "complete", 0.5))
    assert "[/bold] x=[/]" in console.export_text()
