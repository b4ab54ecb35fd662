"""The loss kernels run their CPU work on one intra-op thread.

PyTorch's OpenMP parallel regions end in a barrier. When another process holds a core, a team of
as many threads as cores waits at every barrier for its descheduled member, up to a scheduler time
slice: on the 2-core CPU of benchmarks/losses.py, a 30 µs multiply of 131k floats took 0.6–2.5 ms
on average with 2 threads, and a kernel of some hundred such regions (each op of each chunk, each
pass of a radix sort) ran 3–10× slower than on one thread. On one thread there is no barrier, and
the kernels' obvious counterparts spend most of their time in single-threaded sorts anyway.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["one_thread"]

# with OpenMP the count is the calling thread's own (omp_set_num_threads), so other Python threads
# keep theirs; PyTorch's native backend instead warns on every change once its pool has started
_OPENMP = "parallel backend: OpenMP" in torch.__config__.parallel_info()


@contextmanager
def one_thread(device: torch.device) -> Iterator[None]:
    """Run the enclosed work on one intra-op thread when it runs on the CPU; restore afterwards."""
    before = torch.get_num_threads()
    if device.type != "cpu" or before == 1 or not _OPENMP:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
