"""The ``sweetspot`` CLI as a user runs it: a subprocess against a real sweetspot-serve."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sweetspot_client import SweetspotClient
from sweetspot_service.testing import ServiceProcess, wait_until

CLI = str(Path(sys.executable).parent / "sweetspot")
MAX_CHARS = 200


@pytest.fixture(scope="module")
def service(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    log = tmp_path_factory.mktemp("cli") / "service.log"
    args = ["--backbone", str(tiny_llama), "--max-prompt-chars", str(MAX_CHARS)]
    process = ServiceProcess(args, log).start()
    with SweetspotClient(base_url=process.url) as client:  # a model that is not 0.5 everywhere
        prompts = [f"What is {i} + {i}?" for i in range(12)]
        client.update(prompts, [[float(i % 3 == 0), 1.0] for i in range(12)])
    yield process
    process.kill()


def sweetspot(service: ServiceProcess | None, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a subprocess; ``service=None``: no SWEETSPOT_URL (pass ``--url``)."""
    env = {k: v for k, v in os.environ.items() if k != "SWEETSPOT_URL"}
    if service is not None:
        env["SWEETSPOT_URL"] = service.url
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )


def dataset(path: Path, rows: int) -> Path:
    with path.open("w") as f:
        for i in range(rows):
            f.write(json.dumps({"question": f"What is {i} * {i % 7}?", "pass_rate": i / rows}))
            f.write("\n")
    return path


def scored_rows(output: Path) -> list[int]:
    return [json.loads(line)["row"] for line in output.read_text().splitlines()]


def test_score_writes_every_row_and_a_difficulty_report(
    service: ServiceProcess, tmp_path: Path
) -> None:
    data = dataset(tmp_path / "data.jsonl", 50)
    out, plot = tmp_path / "scores.jsonl", tmp_path / "difficulty.png"
    result = sweetspot(
        service, "score", str(data), "--field", "question", "-o", str(out),
        "--truth-field", "pass_rate", "--plot", str(plot), "--batch-size", "16",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sorted(scored_rows(out)) == list(range(50))
    assert all(0.0 <= json.loads(line)["p"] <= 1.0 for line in out.read_text().splitlines())
    assert "50 prompts, mean p̂" in result.stdout and "within ±0.2 of τ=0.5" in result.stdout
    assert "Spearman of p̂ and the known pass rate" in result.stdout
    assert plot.stat().st_size > 5_000


def test_a_killed_score_resumes_without_rescoring(service: ServiceProcess, tmp_path: Path) -> None:
    data = dataset(tmp_path / "data.jsonl", 3000)
    out = tmp_path / "scores.jsonl"
    env = {**os.environ, "SWEETSPOT_URL": service.url}
    args = [CLI, "score", str(data), "--field", "question", "-o", str(out), "--batch-size", "8"]
    first = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: out.exists() and out.stat().st_size > 0, "first batch written", timeout=120)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    with out.open("a") as f:
        f.write('{"row": 999999, "p": 0.')  # what a kill mid-write leaves
    before = scored_rows_tolerant(out)
    again = sweetspot(service, "score", str(data), "--field", "question", "-o", str(out))
    assert again.returncode == 0, again.stderr
    rows = scored_rows(out)
    assert sorted(rows) == list(range(3000))  # each row exactly once, the cut line gone
    if len(before) < 3000:  # killed before the end (almost always): it said so and resumed
        assert f"resuming: {len(before)} of 3000 rows" in again.stdout


def scored_rows_tolerant(output: Path) -> list[int]:
    rows = []
    for line in output.read_text().splitlines():
        try:
            rows.append(json.loads(line)["row"])
        except ValueError:
            break
    return rows


def test_a_missing_field_is_named(service: ServiceProcess, tmp_path: Path) -> None:
    data = dataset(tmp_path / "data.jsonl", 3)
    result = sweetspot(service, "score", str(data))
    assert result.returncode == 2
    assert "no text in field 'prompt'" in result.stderr and "--field" in result.stderr


def test_runs_and_calibration(service: ServiceProcess, tmp_path: Path) -> None:
    listed = sweetspot(service, "runs", "list")
    assert listed.returncode == 0 and "default" in listed.stdout
    forked = sweetspot(service, "runs", "fork", "default", "copy")
    assert forked.returncode == 0 and "created run copy from default" in forked.stdout
    shown = sweetspot(service, "runs", "show", "copy")
    assert shown.returncode == 0 and shown.stdout.splitlines()[1].split()[:2] == ["copy", "0"]
    plot = tmp_path / "reliability.png"
    calibration = sweetspot(service, "calibration", "default", "--plot", str(plot))
    assert calibration.returncode == 0, calibration.stderr
    assert "first_seen" in calibration.stdout and "Spearman" in calibration.stdout
    assert plot.stat().st_size > 5_000
    deleted = sweetspot(service, "runs", "delete", "copy")
    assert deleted.returncode == 0
    missing = sweetspot(service, "runs", "show", "copy")
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_export_and_import_round_trip(service: ServiceProcess, tmp_path: Path) -> None:
    model = tmp_path / "default.safetensors"
    exported = sweetspot(service, "export", "default", str(model))
    assert exported.returncode == 0, exported.stderr
    imported = sweetspot(service, "import", str(model), "restored")
    assert imported.returncode == 0, imported.stderr
    assert "created run restored" in imported.stdout and "(version 0)" in imported.stdout
    prompts = [f"What is {i} + {i}?" for i in range(12)] + ["Name a colour."]
    with SweetspotClient(base_url=service.url) as original:
        expected = original.score(prompts).scores
    with SweetspotClient(base_url=service.url, run="restored") as restored:
        assert restored.score(prompts).scores == pytest.approx(expected, abs=1e-6)
    again = sweetspot(service, "import", str(model), "restored")
    assert again.returncode == 1 and "already exists" in again.stderr
    (tmp_path / "junk").write_bytes(b"not a model")
    junk = sweetspot(service, "import", str(tmp_path / "junk"), "junk")
    assert junk.returncode == 1 and "not a Sweetspot value-model file" in junk.stderr
    sweetspot(service, "runs", "delete", "restored")


def test_a_file_from_another_backbone_is_refused(
    service: ServiceProcess, tiny_bert: Path, tmp_path: Path
) -> None:
    model = tmp_path / "llama.safetensors"
    assert sweetspot(service, "export", "default", str(model)).returncode == 0
    other = ServiceProcess(["--backbone", str(tiny_bert)], tmp_path / "bert.log").start()
    try:
        refused = sweetspot(other, "import", str(model), "x")
        assert refused.returncode == 1
        assert "made with backbone" in refused.stderr and "same --backbone" in refused.stderr
        assert "x" not in [r.name for r in SweetspotClient(base_url=other.url).list_runs().runs]
    finally:
        other.kill()


def test_a_file_it_did_not_write_is_never_overwritten(
    service: ServiceProcess, tmp_path: Path
) -> None:
    data = dataset(tmp_path / "data.jsonl", 5)
    csv, binary = tmp_path / "results.csv", tmp_path / "model.bin"
    csv.write_text("a,b\n1,2\n")
    binary.write_bytes(bytes(range(256)))
    for existing in (csv, binary, data):  # data.jsonl: a JSONL of other records
        before = existing.read_bytes()
        result = sweetspot(service, "score", str(data), "--field", "question", "-o", str(existing))
        assert result.returncode == 2, result.stderr
        assert "was not written by sweetspot score" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        assert existing.read_bytes() == before


def test_an_output_of_another_input_or_run_is_not_resumed(
    service: ServiceProcess, tmp_path: Path
) -> None:
    small, large = dataset(tmp_path / "small.jsonl", 40), dataset(tmp_path / "large.jsonl", 100)
    out = tmp_path / "scores.jsonl"
    first = sweetspot(service, "score", str(small), "--field", "question", "-o", str(out))
    assert first.returncode == 0, first.stderr
    written = out.read_bytes()

    other_input = sweetspot(service, "score", str(large), "--field", "question", "-o", str(out))
    assert other_input.returncode == 2
    assert "small.jsonl" in other_input.stderr and "large.jsonl" in other_input.stderr
    assert "resuming" not in other_input.stdout and out.read_bytes() == written

    SweetspotClient(base_url=service.url).create_run("cli-b")
    args = ["score", str(small), "--field", "question", "-o", str(out), "--run", "cli-b"]
    other_run = sweetspot(service, *args)
    assert other_run.returncode == 2 and "run 'default'" in other_run.stderr
    assert "cli-b" in other_run.stderr and "-o" in other_run.stderr
    assert "prompts, mean p̂" not in other_run.stdout and out.read_bytes() == written

    # The same run name, but another model: re-created since its rows were scored.
    with SweetspotClient(base_url=service.url, run="cli-b") as client:
        client.update(["What is 1 * 1?"], [[1.0]])
        client.update(["What is 2 * 2?"], [[0.0]])
        wait_until(lambda: client.get_run("cli-b").model_version == 2, "applied", timeout=120)
    out_b = tmp_path / "scores_b.jsonl"
    assert sweetspot(service, *args[:5], str(out_b), *args[6:]).returncode == 0
    sweetspot(service, "runs", "delete", "cli-b")
    SweetspotClient(base_url=service.url).create_run("cli-b")
    recreated = sweetspot(service, *args[:5], str(out_b), *args[6:])
    assert recreated.returncode == 2 and "version 0" in recreated.stderr, recreated.stderr
    assert "version 2" in recreated.stderr
    sweetspot(service, "runs", "delete", "cli-b")


def test_an_over_long_row_is_named_and_truncate_scores_it(
    service: ServiceProcess, tmp_path: Path
) -> None:
    data = tmp_path / "data.jsonl"
    rows = [{"question": f"What is {i} * 3?"} for i in range(10)]
    rows[6]["question"] = "x" * (MAX_CHARS + 1)
    lines = [json.dumps(r) for r in rows]
    data.write_text("\n".join([*lines[:3], "", *lines[3:]]) + "\n")  # row 6 is on line 8
    out = tmp_path / "scores.jsonl"
    args = ["score", str(data), "--field", "question", "-o", str(out), "--batch-size", "4"]
    refused = sweetspot(service, *args)
    assert refused.returncode == 2
    assert "data.jsonl line 8" in refused.stderr and "--truncate" in refused.stderr
    assert '"truncate"' not in refused.stderr and "Traceback" not in refused.stderr
    truncated = sweetspot(service, *args, "--truncate")
    assert truncated.returncode == 0, truncated.stderr
    assert sorted(scored_rows(out)) == list(range(10))


def test_bad_arguments_are_refused_before_anything_runs(
    service: ServiceProcess, tmp_path: Path
) -> None:
    data = dataset(tmp_path / "data.jsonl", 3)
    for flag, value in (("--batch-size", "-1"), ("--batch-size", "0"), ("--tau", "1.5")):
        result = sweetspot(service, "score", str(data), "--field", "question", flag, value)
        assert result.returncode == 2 and flag in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "data.scores.jsonl").exists()


def test_global_options_go_anywhere(service: ServiceProcess, tmp_path: Path) -> None:
    data = dataset(tmp_path / "data.jsonl", 3)
    after = sweetspot(None, "score", str(data), "--field", "question", "--url", service.url)
    assert after.returncode == 0, after.stderr
    listed = sweetspot(None, "runs", "list", "--url", service.url, "--api-key", "unused")
    assert listed.returncode == 0 and "default" in listed.stdout, listed.stderr
    before = sweetspot(None, "--url", service.url, "runs", "show", "default")
    assert before.returncode == 0, before.stderr
