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
