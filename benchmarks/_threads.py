"""BLAS thread pinning for the model benchmarks (a helper, not a benchmark).

Import it before numpy. `pin` sets the thread variables BLAS libraries read when they load,
and, with ``threadpoolctl`` installed (the ``bench`` extra), also limits pools that are
already loaded -- the variables alone do nothing once numpy has been imported, and an
unpinned OpenBLAS starts a thread per core next to llama.cpp's and the engine's own work.
"""

from __future__ import annotations

import os
from typing import Any

_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_limits: list[Any] = []  # keeps the threadpoolctl limiter alive for the whole run


def pin(threads: int, *, respect_environment: bool = False) -> int:
    """Pin BLAS to ``threads`` threads and return the count used.

    With ``respect_environment``, a thread count already set in ``OMP_NUM_THREADS`` or
    ``OPENBLAS_NUM_THREADS`` wins (so a caller can measure other counts)."""
    if respect_environment:
        for name in _VARIABLES[:2]:
            value = os.environ.get(name, "")
            if value.isdigit() and int(value) > 0:
                threads = int(value)
                break
    for name in _VARIABLES:
        os.environ[name] = str(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return threads
    _limits.append(threadpool_limits(limits=threads, user_api="blas"))
    return threads


def describe() -> str:
    """The CPU count, the thread variables and each loaded BLAS pool's thread count."""
    env = ", ".join(f"{n}={os.environ[n]}" for n in _VARIABLES if n in os.environ) or "none set"
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return f"cpus={os.cpu_count()}; thread env: {env}; BLAS pools: threadpoolctl not installed"
    pools = ", ".join(f"{p['internal_api']}:{p['num_threads']}" for p in threadpool_info())
    return f"cpus={os.cpu_count()}; thread env: {env}; BLAS pools: {pools or 'none loaded'}"
