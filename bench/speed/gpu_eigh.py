"""The ridge head's refit kernel on CPU and GPU: float64 eigendecomposition of H × H.

    python bench/speed/gpu_eigh.py            # on a GPU machine (device tool)

``RidgeHead._fit`` does one float64 ``eigh`` of the H × H second-moment matrix per update
(O(H³)); the rest of an update is O(B·H²). For the packaged backbones (H = 576, 384) that is
milliseconds on the CPU, but for a 1.7B–3B backbone (H = 2048–3072) it dominates a head
update. This times it on both devices of one machine, side by side: means of 5
after 2 warm-ups, on a random symmetric positive-definite matrix. Writes
bench/results/gpu_eigh_<device>.json.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parents[1]))  # bench/: the shared helpers
from _common import write_result

HIDDEN = (576, 1024, 2048, 3072)
REPEATS = 5


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("gpu_eigh.py needs a CUDA device")
    rows = []
    for h in HIDDEN:
        a = torch.randn(h, h, dtype=torch.float64)
        a = a @ a.T + torch.eye(h, dtype=torch.float64)
        row: dict[str, float] = {"hidden": h}
        for dev in ("cpu", "cuda"):
            x = a.to(dev)
            for _ in range(2):
                torch.linalg.eigh(x)
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(REPEATS):
                torch.linalg.eigh(x)
            torch.cuda.synchronize()
            row[f"{dev}_eigh_f64_s"] = (time.perf_counter() - start) / REPEATS
        row["cpu_over_cuda"] = row["cpu_eigh_f64_s"] / row["cuda_eigh_f64_s"]
        rows.append(row)
        print(row, flush=True)
    card = torch.cuda.get_device_name(0)
    meta = {"device": card, "cpu_threads": torch.get_num_threads(), "torch": torch.__version__}
    print(f"wrote {write_result('gpu_eigh_' + card.replace(' ', '_'), meta, rows)}")


if __name__ == "__main__":
    main()
