"""Batches larger than an engine takes, run as consecutive chunks.

A TensorRT engine is built for 1..max cameras (1 on DLA); when more cameras
share it, their rows go through in chunks of at most max and the outputs are
put back together in camera order.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from edge_vad.errors import EdgeVadError

Run = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def batch_size(inputs: dict[str, np.ndarray]) -> int:
    sizes = {name: int(x.shape[0]) for name, x in inputs.items()}
    if len(set(sizes.values())) != 1:
        raise EdgeVadError(f"inputs disagree on the batch (camera) count: {sizes}")
    return next(iter(sizes.values()))


def run_in_chunks(run: Run, inputs: dict[str, np.ndarray], max_batch: int) -> dict[str, np.ndarray]:
    """``run`` on rows [0, max), [max, 2·max), …; ``run`` must return arrays it does not reuse."""
    n = batch_size(inputs)
    if n <= max_batch:
        return run(inputs)
    parts = [run({k: v[i : i + max_batch] for k, v in inputs.items()}) for i in range(0, n, max_batch)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
