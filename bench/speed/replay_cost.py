"""What the replay window costs per run: update latency, scoring latency, memory, checkpoint.

    .venv/bin/python bench/speed/replay_cost.py [--windows 1000 10000 100000] [--repeats 20]

For each hidden size of the packaged backbones (SmolLM2 576, MiniLM 384) and each window
size, a ``RidgeHead`` is filled to its window with synthetic LayerNorm'd features (loaded as
a saved window, so filling takes one pass), then timed on what the service does per request:
``observe`` of one update of 16 prompts (progressive validation, decay, add, evict, eigen-
decomposition, one solve per α), and ``predict`` + ``novelty`` of 64 candidates. Features
come from the backbone's cache, so no forward pass is included. Memory is the window's
tensors plus the statistics; the checkpoint is the serialised ``state()``. Medians over
``--repeats``. Writes bench/results/replay_cost.json.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parents[1]))  # bench/: the shared helpers
from _common import write_result
from tqdm import tqdm

from sweetspot_service.ridge import RidgeHead

HIDDEN = {"smollm2": 576, "minilm": 384}
BATCH, CANDIDATES = 16, 64


def filled(hidden: int, window: int, gen: torch.Generator) -> RidgeHead:
    head = RidgeHead(hidden, window=window, half_life=256.0)
    versions = torch.arange(window, dtype=torch.long) // BATCH + 1
    state = {
        "window": -1,  # another window: load_state rebuilds the statistics from the rows
        "half_life": 256.0,
        "version": int(versions[-1]),
        "x": torch.nn.functional.layer_norm(torch.randn(window, hidden, generator=gen), (hidden,)),
        "y": torch.rand(window, generator=gen, dtype=torch.float64),
        "n": torch.full((window,), 8.0, dtype=torch.float64),
        "v": versions,
        "stats": [],
        "errors": torch.zeros(1),
    }
    head.load_state(state)
    return head


def window_bytes(head: RidgeHead) -> int:
    tensors = [head._x, head._y, head._n, head._v, head._sxx, head._q, head._betas]
    return sum(t.numel() * t.element_size() for t in tensors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    rows = []
    for (name, hidden), window in tqdm(
        [(item, w) for item in HIDDEN.items() for w in args.windows], desc="window sizes"
    ):
        head = filled(hidden, window, gen)
        update_s, score_s = [], []
        for _ in range(args.repeats):
            x = torch.nn.functional.layer_norm(torch.randn(BATCH, hidden, generator=gen), (hidden,))
            y = torch.rand(BATCH, generator=gen, dtype=torch.float64)
            start = time.perf_counter()
            head.observe(x, y, torch.full((BATCH,), 8.0, dtype=torch.float64))
            update_s.append(time.perf_counter() - start)
            probe = torch.randn(CANDIDATES, hidden, generator=gen)
            start = time.perf_counter()
            head.predict(probe)
            head.novelty(probe)
            score_s.append(time.perf_counter() - start)
        buffer = io.BytesIO()
        torch.save(head.state(), buffer)
        rows.append(
            {
                "backbone": name,
                "hidden_size": hidden,
                "window": window,
                "update_ms": 1000 * statistics.median(update_s),
                "score_64_ms": 1000 * statistics.median(score_s),
                "memory_mb": window_bytes(head) / 2**20,
                "checkpoint_mb": buffer.tell() / 2**20,
            }
        )
    print(f"{'backbone':<9} {'window':>8} {'update ms':>10} {'score ms':>9} {'MiB':>8} {'ckpt':>8}")
    for r in rows:
        print(
            f"{r['backbone']:<9} {r['window']:>8} {r['update_ms']:>10.1f} "
            f"{r['score_64_ms']:>9.2f} {r['memory_mb']:>8.1f} {r['checkpoint_mb']:>8.1f}"
        )
    meta = {
        "settings": {**vars(args), "batch": BATCH, "candidates": CANDIDATES},
        "torch_threads": torch.get_num_threads(),
    }
    path = write_result("replay_cost", meta, rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
