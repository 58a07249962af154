"""``sweetspot``: the service from a terminal. ``sweetspot --help`` lists the commands.

    sweetspot score data.jsonl --field question -o scores.jsonl --plot difficulty.png
    sweetspot runs list | show RUN | delete RUN | fork SRC DST
    sweetspot calibration RUN --plot reliability.png
    sweetspot export RUN model.safetensors && sweetspot import model.safetensors NEW_RUN

``SWEETSPOT_URL`` and ``SWEETSPOT_API_KEY`` (or ``--url`` / ``--api-key``) say where the service
is. Only the client's own dependencies are needed (httpx, pydantic); ``--plot`` needs
matplotlib and Parquet input needs pyarrow (``pip install "sweetspot-client[cli]"``).

``score`` writes one JSON line per input row (``{"row", "p", "uncertainty", "prior"}``) as
each batch comes back, so a run that stops (killed, the service down) continues where it
stopped when run again with the same output file: rows already written are not scored
again, and a line cut off by the kill is rewritten.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from sweetspot_client._client import SweetspotClient
from sweetspot_client._exceptions import SweetspotError
from sweetspot_client.ranking import spearman
from sweetspot_client.schema import CalibrationResponse, RunInfo

BINS = 10
BAR = 40


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    client = SweetspotClient(
        base_url=args.url, api_key=args.api_key, run=getattr(args, "run", None) or "default"
    )
    try:
        with client:
            return int(args.command(client, args, sys.stdout) or 0)
    except SweetspotError as exc:
        print(f"sweetspot: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"sweetspot: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sweetspot", description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("SWEETSPOT_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--api-key", default=os.environ.get("SWEETSPOT_API_KEY"))
    commands = parser.add_subparsers(required=True, metavar="command")

    score = commands.add_parser("score", help="score a dataset; print its difficulty report")
    score.add_argument("file", type=Path, help=".jsonl, .csv or .parquet, one prompt per row")
    score.add_argument("--field", default="prompt", help="the column holding the prompt text")
    score.add_argument("--run", default="default", help="whose value model scores")
    score.add_argument(
        "-o", "--output", type=Path, help="JSONL of scores (default: FILE.scores.jsonl)"
    )
    score.add_argument("--batch-size", type=int, default=64)
    score.add_argument("--tau", type=float, default=0.5)
    score.add_argument("--band", type=float, default=0.2, help="report the share within ±band of τ")
    score.add_argument(
        "--truth-field", help="a column with a known pass rate: report the rank correlation"
    )
    score.add_argument("--plot", type=Path, help="write the p̂ histogram here (needs matplotlib)")
    score.set_defaults(command=_score)

    runs = commands.add_parser("runs", help="list, show, delete or fork runs")
    verbs = runs.add_subparsers(required=True, metavar="verb")
    verbs.add_parser("list").set_defaults(command=_runs_list)
    show = verbs.add_parser("show")
    show.add_argument("name")
    show.set_defaults(command=_runs_show)
    delete = verbs.add_parser("delete")
    delete.add_argument("name")
    delete.set_defaults(command=_runs_delete)
    fork = verbs.add_parser("fork", help="a new run whose value model starts as SRC's")
    fork.add_argument("source")
    fork.add_argument("name")
    fork.set_defaults(command=_runs_fork)

    export = commands.add_parser("export", help="save a run's value model to one file")
    export.add_argument("name")
    export.add_argument("file", type=Path)
    export.set_defaults(command=_export)
    load = commands.add_parser("import", help="a new run from an exported value model")
    load.add_argument("file", type=Path)
    load.add_argument("name")
    load.set_defaults(command=_import)

    calibration = commands.add_parser("calibration", help="a run's online error and bins")
    calibration.add_argument("name")
    calibration.add_argument("--plot", type=Path, help="write a reliability diagram here")
    calibration.set_defaults(command=_calibration)
    return parser


# score -----------------------------------------------------------------------------------


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The file's rows as dicts (JSONL, CSV with a header, or Parquet through pyarrow)."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        with path.open() as f:
            return [json.loads(line) for line in f if line.strip()]
    if suffix == ".csv":
        with path.open(newline="") as f:
            return list(csv.DictReader(f))
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq  # type: ignore[import-untyped,import-not-found,unused-ignore]
        except ImportError as exc:
            raise ValueError(
                'reading Parquet needs pyarrow: pip install "sweetspot-client[cli]"'
            ) from exc
        rows: list[dict[str, Any]] = pq.read_table(path).to_pylist()
        return rows
    raise ValueError(f"{path}: expected a .jsonl, .csv or .parquet file")


def done_rows(output: Path) -> dict[int, dict[str, Any]]:
    """Rows already scored in ``output``; a last line cut off by a kill is dropped (and the
    file truncated to the complete lines, so appending continues cleanly)."""
    if not output.exists():
        return {}
    done: dict[int, dict[str, Any]] = {}
    keep = 0
    with output.open("rb") as f:
        for raw in f:
            try:
                record = json.loads(raw)
            except ValueError:
                break
            if not raw.endswith(b"\n"):
                break
            done[int(record["row"])] = record
            keep += len(raw)
    with output.open("rb+") as f:
        f.truncate(keep)
    return done


def _score(client: SweetspotClient, args: argparse.Namespace, out: TextIO) -> int:
    rows = read_rows(args.file)
    missing = [i for i, r in enumerate(rows) if not isinstance(r.get(args.field), str)]
    if missing:
        raise ValueError(
            f"{len(missing)} rows have no text in field {args.field!r} (first: row "
            f"{missing[0]}); name the prompt column with --field"
        )
    output = args.output or args.file.with_suffix(".scores.jsonl")
    done = done_rows(output)
    todo = [i for i in range(len(rows)) if i not in done]
    if done:
        print(f"resuming: {len(done)} of {len(rows)} rows already in {output}", file=out)
    with output.open("a") as f:
        for batch in _progress(list(_chunks(todo, args.batch_size)), len(todo), out):
            scored = client.score([rows[i][args.field] for i in batch])
            for j, i in enumerate(batch):
                record = {
                    "row": i,
                    "p": scored.scores[j],
                    "uncertainty": scored.uncertainty[j] if scored.uncertainty else None,
                    "prior": scored.prior[j] if scored.prior else None,
                }
                done[i] = record
                f.write(json.dumps(record) + "\n")
            f.flush()
    p = [done[i]["p"] for i in range(len(rows))]
    truth = None
    if args.truth_field:
        truth = [float(r[args.truth_field]) for r in rows]
    report(p, args.tau, args.band, truth, out)
    print(f"scores: {output}", file=out)
    if args.plot:
        _plot_histogram(p, args.tau, args.band, args.plot)
        print(f"plot:   {args.plot}", file=out)
    return 0


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _progress(batches: list[list[int]], total: int, out: TextIO) -> Iterator[list[int]]:
    """tqdm's bar where it is installed, else a line per tenth of the work."""
    try:
        from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        tqdm = None
    if tqdm is not None:
        with tqdm(total=total, unit="prompt", desc="scoring", file=sys.stderr) as bar:
            for batch in batches:
                yield batch
                bar.update(len(batch))
        return
    seen, mark = 0, 0
    for batch in batches:
        yield batch
        seen += len(batch)
        if seen * 10 // max(total, 1) > mark:
            mark = seen * 10 // max(total, 1)
            print(f"scored {seen}/{total}", file=out)


def histogram(values: list[float]) -> list[int]:
    counts = [0] * BINS
    for v in values:
        counts[min(BINS - 1, max(0, int(v * BINS)))] += 1
    return counts


def report(p: list[float], tau: float, band: float, truth: list[float] | None, out: TextIO) -> None:
    """The difficulty report: how p̂ spreads, how much sits near τ, how it ranks a truth."""
    counts = histogram(p)
    peak = max(counts) or 1
    within = sum(abs(v - tau) <= band for v in p)
    near = within / len(p) if p else 0.0
    print(f"{len(p)} prompts, mean p̂ {sum(p) / max(len(p), 1):.3f}", file=out)
    for i, c in enumerate(counts):
        bar = "█" * round(BAR * c / peak)
        print(f"  p̂ {i / BINS:.1f}–{(i + 1) / BINS:.1f} {c:>7}  {bar}", file=out)
    print(
        f"within ±{band:g} of τ={tau:g}: {100 * near:.1f} % ({within})",
        file=out,
    )
    if truth is not None:
        rho = spearman(p, truth)
        shown = "undefined (a constant side)" if rho is None else f"{rho:.3f}"
        print(f"Spearman of p̂ and the known pass rate: {shown}", file=out)


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise ValueError('--plot needs matplotlib: pip install "sweetspot-client[cli]"') from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_histogram(p: list[float], tau: float, band: float, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5), constrained_layout=True)
    ax.hist(p, bins=[i / BINS for i in range(BINS + 1)], color="tab:blue", edgecolor="white")
    ax.axvspan(tau - band, tau + band, color="tab:green", alpha=0.15, label=f"τ ± {band:g}")
    ax.set(xlabel="p̂ (predicted success rate)", ylabel="prompts", title="Dataset difficulty")
    ax.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# runs and calibration ---------------------------------------------------------------------


def _run_table(runs: Sequence[RunInfo], out: TextIO) -> None:
    print(f"{'run':<24} {'version':>8} {'checkpointed':>12} {'pending':>8}  error", file=out)
    for r in runs:
        print(
            f"{r.name:<24} {r.model_version:>8} {r.checkpointed_version:>12} "
            f"{r.pending_updates:>8}  {r.error or ''}",
            file=out,
        )


def _runs_list(client: SweetspotClient, args: argparse.Namespace, out: TextIO) -> int:
    _run_table(client.list_runs().runs, out)
    return 0


def _runs_show(client: SweetspotClient, args: argparse.Namespace, out: TextIO) -> int:
    _run_table([client.get_run(args.name)], out)
    return 0


def _runs_delete(client: SweetspotClient, args: argparse.Namespace, out: TextIO) -> int:
    client.delete_run(args.name)
    print(f"deleted run {args.name}", file=out)
    return 0


def _runs_fork(client: SweetspotClient, args: argparse.Namespace, out: TextIO) -> int:
    info = client.create_run(args.name, from_=args.source)
    print(f"created run {info.name} from {args.source} (version {info.model_version})", file=out)
    return 0


def _export(client: SweetspotClient, args: argparse.Namespace, out: TextIO) -> int:
    data = client.export_run(args.name)
    args.file.write_bytes(data)
    print(f"exported run {args.name} to {args.file} ({len(data):,} bytes)", file=out)
    return 0


def _import(client: SweetspotClient, args: argparse.Namespace, out: TextIO) -> int:
    info = client.import_run(args.name, args.file.read_bytes())
    print(f"created run {info.name} from {args.file} (version {info.model_version})", file=out)
    return 0


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _calibration(client: SweetspotClient, args: argparse.Namespace, out: TextIO) -> int:
    c = client.calibration(args.name)
    print(f"run {c.run}, model version {c.model_version}, window {c.window}", file=out)
    print(f"{'cohort':<11} {'prompts':>8} {'MAE':>7} {'mean sd':>8}", file=out)
    for cohort in ("all", "first_seen", "revisited"):
        e = getattr(c, cohort)
        print(
            f"{cohort:<11} {e.prompts:>8} {_fmt(e.mae):>7} {_fmt(e.mean_uncertainty):>8}",
            file=out,
        )
    print(f"Brier {_fmt(c.brier)}   Spearman {_fmt(c.spearman)}", file=out)
    print(f"{'p̂ bin':<10} {'prompts':>8} {'mean p̂':>7} {'mean r':>7}", file=out)
    for b in c.bins:
        print(
            f"{b.lower:.1f}–{b.upper:.1f}   {b.prompts:>8} {_fmt(b.mean_predicted):>7} "
            f"{_fmt(b.mean_observed):>7}",
            file=out,
        )
    if args.plot:
        _plot_reliability(c, args.plot)
        print(f"plot: {args.plot}", file=out)
    return 0


def _plot_reliability(c: CalibrationResponse, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5), constrained_layout=True)
    filled = [b for b in c.bins if b.prompts]
    ax.plot([0, 1], [0, 1], ":", color="gray", label="perfect")
    ax.plot(
        [b.mean_predicted for b in filled],
        [b.mean_observed for b in filled],
        marker="o",
        label=f"run {c.run}",
    )
    ax.set(xlabel="mean p̂", ylabel="mean observed reward", title="Reliability", xlim=(0, 1))
    ax.set_ylim(0, 1)
    ax.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
