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
