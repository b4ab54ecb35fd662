"""The machine a trial trained on: what torch and the OS report, stored and read back whole."""

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import create_trial

from ablate.machine import DISPATCH_ENV, VECTOR_FLAGS, Machine, read_machine
from ablate.study import Outcome, Queue, TrialResult, _record

CPUINFO = Path("/proc/cpuinfo")
linux_only = pytest.mark.skipif(not CPUINFO.exists(), reason="reads /proc/cpuinfo")


def _cpuinfo(key: str) -> str:
    for line in CPUINFO.read_text().splitlines():
        name, _, value = line.partition(":")
        if name.strip() == key:
            return value.strip()
    return ""


def test_the_kernels_threads_and_versions_are_those_torch_reports() -> None:
    m = read_machine("cpu")
    assert m.isa == torch.backends.cpu.get_cpu_capability()
    assert m.threads == torch.get_num_threads()
    assert m.torch == torch.__version__
    config = torch.__config__.show()
    assert f"v{m.onednn} " in config  # "Intel(R) MKL-DNN v3.12.0 (Git Hash …)"
    assert m.blas.split()[-1] in config  # MKL's version, or BLAS_INFO's value
    assert m.python == platform.python_version() and m.gpu == ""
    assert m.isa in m.describe() and m.torch in m.describe()


def test_threads_are_read_when_asked_not_fixed_at_import() -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert read_machine().threads == 1
        assert "1 thread;" in read_machine().describe()
    finally:
        torch.set_num_threads(before)


@linux_only
def test_the_cpu_is_named_as_proc_cpuinfo_names_it_with_its_vector_flags() -> None:
    m = read_machine()
    assert m.cpu.startswith(_cpuinfo("model name") or platform.machine())
    if family := _cpuinfo("cpu family"):  # x86: a VM's bare "AMD EPYC" needs the numbers
        assert f"family {family}, model {_cpuinfo('model')}" in m.cpu
    flags = set((_cpuinfo("flags") or _cpuinfo("Features")).split())
    assert m.flags == tuple(f for f in VECTOR_FLAGS if f in flags)
    if m.isa == "AVX512":
        assert "avx512f" in m.flags


def test_a_machine_survives_json_and_an_older_record_reads_as_unknown() -> None:
    m = read_machine()
    assert Machine.from_dict(json.loads(json.dumps(m.as_dict()))) == m
    old = Machine.from_dict({"cpu": "x", "threads": 2})
    assert old.cpu == "x" and old.threads == 2 and old.isa == "unknown" and old.flags == ()


def test_an_ended_trial_is_stored_with_its_machine_and_read_back_with_it() -> None:
    m = read_machine()
    enqueued = _record.enqueued("c", 0, {}, 1, sampled=False)
    stored = optuna.create_study(direction="maximize")
    for machine in (m, None):  # None: a trial stored before machines were recorded
        state, ended = _record.ended(Outcome.COMPLETE, TrialResult(machine=machine))
        stored.add_trial(create_trial(state=state, value=0.5, user_attrs=enqueued | ended))
    now, older = Queue(stored, "memory").records()
    assert now.result.machine == m and older.result.machine is None


PROBE = """
import json, sys
import ablate.machine
assert "torch" not in sys.modules, "ablate.machine imported torch"
print(json.dumps(ablate.machine.read_machine().as_dict()))
"""


def _machine_in(env: dict[str, str]) -> Machine:
    """The machine a fresh process sees with `env` added (torch reads it when it loads)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return Machine.from_dict(json.loads(done.stdout.splitlines()[-1]))


def test_a_pinned_capability_is_what_torch_dispatches_to_and_is_recorded() -> None:
    pinned = _machine_in({"ATEN_CPU_CAPABILITY": "default", "PGPASSWORD": "PWsecret"})
    assert pinned.isa == "DEFAULT"
    assert pinned.env == ("ATEN_CPU_CAPABILITY=default",)  # and no other variable
    assert "set: ATEN_CPU_CAPABILITY=default" in pinned.describe()
    assert "PW" not in json.dumps(pinned.as_dict())
    assert set(DISPATCH_ENV).isdisjoint({"PGPASSWORD", "ABLATE_STORAGE"})


@pytest.mark.gpu
def test_a_cuda_trial_names_its_gpu_and_the_cuda_and_cudnn_it_ran() -> None:
    m = read_machine("cuda:0")
    assert m.gpu.startswith(torch.cuda.get_device_name(0))
    assert f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}" in m.gpu
    assert f"GPU {m.gpu}" in m.describe()
