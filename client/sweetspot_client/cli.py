"""``sweetspot``: the service from a terminal. ``sweetspot --help`` lists the commands.

    sweetspot score data.jsonl --field question -o scores.jsonl --plot difficulty.png
    sweetspot runs list | show RUN | delete RUN | fork SRC DST
    sweetspot calibration RUN --plot reliability.png
    sweetspot export RUN model.safetensors && sweetspot import model.safetensors NEW_RUN

``SWEETSPOT_URL`` and ``SWEETSPOT_API_KEY`` (or ``--url`` / ``--api-key``) say where the service
is. Only the client's own dependencies are needed (httpx, pydantic); ``--plot`` needs
matplotlib and Parquet input needs pyarrow (``pip install "sweetspot-client[cli]"``).

``score`` writes one JSON line per input row (``{"row", "p", "uncertainty", "prior",
"model_version"}``) as each batch comes back, so a run that stops (killed, the service down)
continues where it stopped when run again with the same output file: rows already written
are not scored again, and a line cut off by the kill is rewritten. What the file belongs to
(input, field, run, service) is recorded beside it (``scores.jsonl.meta.json``): a file it
did not write is never overwritten, and one written for another input or run, or by a run
since re-created, is not resumed (``_cli_files``). Global options go before or after the
command.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from sweetspot_client._cli_files import (
    Provenance,
    Table,
    claim,
    done_rows,
    read_table,
)
from sweetspot_client._cli_report import plot_histogram, plot_reliability, report
from sweetspot_client._client import SweetspotClient
from sweetspot_client._exceptions import BadRequestError, SweetspotError
from sweetspot_client.schema import RunInfo


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


def _where(defaults: bool) -> argparse.ArgumentParser:
    """``--url`` and ``--api-key``, accepted before the command and after it: the top
    parser holds the defaults, each subcommand the same options with none (``SUPPRESS``),
    so a value given after the command is not overwritten by a default."""
    parser = argparse.ArgumentParser(add_help=False)
    url = os.environ.get("SWEETSPOT_URL", "http://127.0.0.1:8000")
    key = os.environ.get("SWEETSPOT_API_KEY")
    parser.add_argument(
        "--url",
        default=url if defaults else argparse.SUPPRESS,
        help="the service (default: $SWEETSPOT_URL, else http://127.0.0.1:8000)",
    )
    parser.add_argument(
        "--api-key",
        default=key if defaults else argparse.SUPPRESS,
        help="its API key (default: $SWEETSPOT_API_KEY)",
    )
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _fraction(low_open: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        inside = (value > 0.0 if low_open else value >= 0.0) and value <= 1.0
        if not inside:
            interval = "(0, 1]" if low_open else "[0, 1]"
            raise argparse.ArgumentTypeError(f"must be in {interval}, got {text}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sweetspot", description=__doc__.splitlines()[0], parents=[_where(True)]
    )
    commands = parser.add_subparsers(required=True, metavar="command")

    def command(
        group: argparse._SubParsersAction[argparse.ArgumentParser], name: str, **kwargs: Any
    ) -> argparse.ArgumentParser:
        return group.add_parser(name, parents=[_where(False)], **kwargs)

    score = command(commands, "score", help="score a dataset; print its difficulty report")
    score.add_argument("file", type=Path, help=".jsonl, .csv or .parquet, one prompt per row")
    score.add_argument("--field", default="prompt", help="the column holding the prompt text")
    score.add_argument("--run", default="default", help="whose value model scores")
    score.add_argument(
        "-o", "--output", type=Path, help="JSONL of scores (default: FILE.scores.jsonl)"
    )
    score.add_argument("--batch-size", type=_positive_int, default=64)
    score.add_argument(
        "--truncate",
        action="store_true",
        help="cut prompts longer than the service's limit instead of stopping at them",
    )
    score.add_argument("--tau", type=_fraction(low_open=False), default=0.5)
    score.add_argument(
        "--band",
        type=_fraction(low_open=True),
        default=0.2,
        help="report the share within ±band of τ",
    )
    score.add_argument(
        "--truth-field", help="a column with a known pass rate: report the rank correlation"
    )
    score.add_argument("--plot", type=Path, help="write the p̂ histogram here (needs matplotlib)")
    score.set_defaults(command=_score)

    runs = command(commands, "runs", help="list, show, delete or fork runs")
    verbs = runs.add_subparsers(required=True, metavar="verb")
    command(verbs, "list").set_defaults(command=_runs_list)
    show = command(verbs, "show")
    show.add_argument("name")
    show.set_defaults(command=_runs_show)
    delete = command(verbs, "delete")
    delete.add_argument("name")
    delete.set_defaults(command=_runs_delete)
    fork = command(verbs, "fork", help="a new run whose value model starts as SRC's")
    fork.add_argument("source")
    fork.add_argument("name")
    fork.set_defaults(command=_runs_fork)

    export = command(commands, "export", help="save a run's value model to one file")
    export.add_argument("name")
    export.add_argument("file", type=Path)
    export.set_defaults(command=_export)
    load = command(commands, "import", help="a new run from an exported value model")
    load.add_argument("file", type=Path)
    load.add_argument("name")
    load.set_defaults(command=_import)

    calibration = command(commands, "calibration", help="a run's online error and bins")
    calibration.add_argument("name")
    calibration.add_argument("--plot", type=Path, help="write a reliability diagram here")
    calibration.set_defaults(command=_calibration)
    return parser


# score -----------------------------------------------------------------------------------


def _score(client: SweetspotClient, args: argparse.Namespace, out: TextIO) -> int:
    table = read_table(args.file)
    rows = table.rows
    missing = [i for i, r in enumerate(rows) if not isinstance(r.get(args.field), str)]
    if missing:
        raise ValueError(
            f"{len(missing)} rows have no text in field {args.field!r} (first: "
            f"{table.at(missing[0])}); name the prompt column with --field"
        )
    truth = _truth(table, args.truth_field) if args.truth_field else None
    output = args.output or args.file.with_suffix(".scores.jsonl")
    claim(output, Provenance.of(table, args.field, args.run, args.url))
    done = done_rows(output, rows=len(rows))
    if done:
        _check_model(client, args.run, output, done, out)
    todo = [i for i in range(len(rows)) if i not in done]
    if done:
        print(f"resuming: {len(done)} of {len(rows)} rows already in {output}", file=out)
    with output.open("a") as f:
        for batch in _progress(list(_chunks(todo, args.batch_size)), len(todo), out):
            try:
                texts = [rows[i][args.field] for i in batch]
                scored = client.score(texts, truncate=args.truncate)
            except BadRequestError as exc:
                raise ValueError(_name_the_row(str(exc), batch, table)) from exc
            for j, i in enumerate(batch):
                record = {
                    "row": i,
                    "p": scored.scores[j],
                    "uncertainty": scored.uncertainty[j] if scored.uncertainty else None,
                    "prior": scored.prior[j] if scored.prior else None,
                    "model_version": scored.model_version,
                }
                done[i] = record
                f.write(json.dumps(record) + "\n")
            f.flush()
    p = [done[i]["p"] for i in range(len(rows))]
    report(p, args.tau, args.band, truth, out)
    print(f"scores: {output}", file=out)
    if args.plot:
        plot_histogram(p, args.tau, args.band, args.plot)
        print(f"plot:   {args.plot}", file=out)
    return 0


def _truth(table: Table, field: str) -> list[float]:
    truth = []
    for i, row in enumerate(table.rows):
        try:
            truth.append(float(row[field]))
        except (KeyError, TypeError, ValueError):
            raise ValueError(
                f"{table.at(i)}: --truth-field {field!r} is {row.get(field)!r}, not a number"
            ) from None
    return truth


def _check_model(
    client: SweetspotClient, run: str, output: Path, done: dict[int, dict[str, Any]], out: TextIO
) -> None:
    """The rows in ``output`` came from this run's model: refuse if the run is now at an
    earlier version than one they were scored at (re-created or restored since); say so
    when it has trained on since, as a resumed report then mixes versions."""
    versions = [
        r["model_version"] for r in done.values() if isinstance(r.get("model_version"), int)
    ]
    if not versions:
        return
    now = client.get_run(run).model_version
    low, high = min(versions), max(versions)
    if now < high:
        raise ValueError(
            f"{output} holds scores of run {run!r} at version {high}, but the run is now at "
            f"version {now}: it was re-created or restored since, so its model is another; "
            f"choose another -o, or remove {output} to score anew"
        )
    if now > high:
        span = f"version {low}" if low == high else f"versions {low}–{high}"
        print(
            f"note: {len(done)} rows in {output} were scored at {span}; run {run!r} is now at "
            f"version {now}, which scores the rest",
            file=out,
        )


def _name_the_row(message: str, batch: list[int], table: Table) -> str:
    """The service's refusal of a batch, said of the input row it names (``prompts[i]``)
    and with the CLI's flag where the service names its request field."""
    message = message.replace('send "truncate": true', "pass --truncate")
    found = re.search(r"prompts\[(\d+)\]", message)
    if found and int(found.group(1)) < len(batch):
        row = batch[int(found.group(1))]
        detail = message[found.end() :].strip()
        return f"{table.at(row)} (row {row}): the prompt {detail}"
    return f"{table.at(batch[0])} to {table.where[batch[-1]]} (one batch): {message}"


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
        plot_reliability(c, args.plot)
        print(f"plot: {args.plot}", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
