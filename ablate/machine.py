"""The machine a trial trained on, as far as its numbers depend on it.

A (cell, seed) trained twice on one machine gives the same numbers bit for bit. On another
machine it need not, with the same code and packages: PyTorch picks its CPU kernels when it
loads, for the instruction set the CPU reports (ATen's elementwise and reduction kernels for
`DEFAULT`, `AVX2` or `AVX512`; oneDNN's convolutions by its own detection, `avx2`,
`avx512_core`, …; MKL's GEMM by CPU model), each summing in its own order, and the threads of a
trial split every sum again. oneDNN promises bitwise-equal results only on an identical hardware
platform and software environment, and MKL's reproducible branches hold across CPUs only on
Intel's, so ablate records what a result depends on instead of promising more: the worker that
trains a trial measures its `Machine`, the trial's record keeps it, and a report's provenance
lists the machines its complete trials ran on.

torch is imported by `read_machine` alone: the spec and the CLI import this module without it.
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# CPU extensions that PyTorch's, oneDNN's or MKL's dispatch looks at (x86, then Arm): of the
# dozens /proc/cpuinfo lists, those that can change which kernel runs
VECTOR_FLAGS = (
    "avx",
    "fma",
    "avx2",
    "avx512f",
    "avx512dq",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "amx_fp16",
    "asimd",
    "sve",
    "sve2",
    "bf16",
    "i8mm",
)
# environment variables that change the kernels or threads PyTorch's libraries pick; recorded
# with their values when set (nothing else from the environment is read)
DISPATCH_ENV = (
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "ONEDNN_CPU_ISA_HINTS",
    "MKL_CBWR",
    "MKL_ENABLE_INSTRUCTIONS",
    "MKL_NUM_THREADS",
    "OMP_NUM_THREADS",
)
_CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class Machine:
    """What a trial's numbers depend on besides its recipe and seed."""

    cpu: str  # model name, with vendor, family, model and stepping where the OS gives them
    flags: tuple[str, ...]  # the VECTOR_FLAGS the CPU reports, in that order
    isa: str  # torch.backends.cpu.get_cpu_capability(): the ISA ATen's CPU kernels run
    threads: int  # torch's intra-op threads when the trial ended (train.threads)
    torch: str
    onednn: str  # version; "none" when torch has none, ", disabled" when switched off
    blas: str  # "MKL <version>", or torch's BLAS_INFO where not MKL
    numpy: str
    python: str
    platform: str  # OS, architecture and C library (not the kernel's release: no sum runs in it)
    gpu: str = ""  # "<name> (CUDA x, cuDNN y)" when the trial ran on a CUDA device
    env: tuple[str, ...] = ()  # "NAME=value" of each DISPATCH_ENV variable that was set

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values, for a trial's stored attributes."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> Machine:
        """The inverse of `as_dict`; a key an older version did not store reads as unknown."""
        text = {
            k: str(stored.get(k, "unknown"))
            for k in ("cpu", "isa", "torch", "onednn", "blas", "numpy", "python", "platform")
        }
        return cls(
            **text,
            flags=tuple(str(f) for f in stored.get("flags", ())),
            threads=int(stored.get("threads", 0)),
            gpu=str(stored.get("gpu", "")),
            env=tuple(str(e) for e in stored.get("env", ())),
        )

    def describe(self) -> str:
        """One line, for the report and the trial's MLflow run."""
        threads = f"{self.threads} thread{'s' if self.threads != 1 else ''}"
        parts = [
            f"{self.cpu} [{' '.join(self.flags) or 'no vector flags read'}]",
            f"ATen {self.isa}, oneDNN {self.onednn}, {self.blas}, {threads}",
            f"torch {self.torch}, numpy {self.numpy}, python {self.python}, {self.platform}",
        ]
        if self.gpu:
            parts.append(f"GPU {self.gpu}")
        if self.env:
            parts.append("set: " + " ".join(self.env))
        return "; ".join(parts)


def read_machine(device: str = "cpu") -> Machine:
    """This process's machine as a trial on `device` sees it: read from torch (which it
    imports) and the OS, so call it in the process that trains."""
    import numpy
    import torch

    cpu, flags = _cpu()
    config = torch.__config__.show()
    onednn = _search(r"(?:MKL-DNN|oneDNN) v(\S+)", config, "none")
    if onednn != "none" and not torch.backends.mkldnn.enabled:
        onednn += ", disabled"
    mkl = _search(r"Math Kernel Library Version (\S+?)-", config, "")
    blas = f"MKL {mkl}" if mkl else "BLAS " + _search(r"BLAS_INFO=(\w+)", config, "unknown")
    return Machine(
        cpu=cpu,
        flags=flags,
        isa=torch.backends.cpu.get_cpu_capability(),
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        onednn=onednn,
        blas=blas,
        numpy=numpy.__version__,
        python=platform.python_version(),
        platform=_platform(),
        gpu=_gpu(device),
        env=tuple(f"{k}={os.environ[k]}" for k in DISPATCH_ENV if k in os.environ),
    )


def _search(pattern: str, text: str, default: str) -> str:
    found = re.search(pattern, text)
    return found.group(1) if found else default


def _cpu() -> tuple[str, tuple[str, ...]]:
    """The CPU's name and its VECTOR_FLAGS: from /proc/cpuinfo's first processor on Linux
    (a VM may name only the family, "AMD EPYC": the family, model and stepping numbers tell
    its generations apart), from `platform` elsewhere (no flags)."""
    try:
        text = _CPUINFO.read_text(errors="replace")
    except OSError:
        text = ""
    first = text.split("\n\n", 1)[0]
    fields: dict[str, str] = {}
    for line in first.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or platform.processor() or platform.machine() or "unknown"
    ids = [
        f"{label} {fields[key]}"
        for key, label in (
            ("vendor_id", "vendor"),
            ("cpu family", "family"),
            ("model", "model"),
            ("stepping", "stepping"),
            ("CPU implementer", "implementer"),
            ("CPU part", "part"),
        )
        if fields.get(key)
    ]
    present = set((fields.get("flags") or fields.get("Features") or "").split())
    cpu = f"{name} ({', '.join(ids)})" if ids else name
    return cpu, tuple(f for f in VECTOR_FLAGS if f in present)


def _platform() -> str:
    libc, libc_version = platform.libc_ver()
    libc = f", {libc} {libc_version}" if libc else ""
    return f"{platform.system()} {platform.machine()}{libc}"


def _gpu(device: str) -> str:
    if not device.startswith("cuda"):
        return ""
    import torch

    name = torch.cuda.get_device_name(torch.device(device))
    return f"{name} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()})"
