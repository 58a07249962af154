"""Feature runs over real HTTP: a run created with ``feature_width`` scores, selects and learns
from the vectors its requests carry, and refuses what does not fit it with a message that
says what to fix. The clients and ``PromptCurriculum`` send the vectors."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import torch

from sweetspot_client import (
    AsyncSweetspotClient,
    BadRequestError,
    ConflictError,
    PromptCurriculum,
    SweetspotClient,
)
from sweetspot_service.testing import ServiceProcess

WIDTH = 8
MAX_VALUES = 512  # --max-feature-values: 64 prompts (the prompt limit) × 8 fit, × 16 do not


def vector(signal: float, rng: random.Random) -> list[float]:
    """A vector whose first number carries ``signal`` in [-1, 1]; the rest is noise."""
    return [2.0 * signal, *(rng.gauss(0.0, 0.3) for _ in range(WIDTH - 1))]


def problems(count: int, seed: int) -> list[tuple[str, list[float], float]]:
    """(prompt, vector, pass rate): solved exactly when the vector's first number is > 0."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        signal = rng.uniform(-1.0, 1.0)
        rows.append((f"problem {seed}-{i}", vector(signal, rng), float(signal > 0)))
    return rows


def columns(rows: list[tuple[str, list[float], float]]) -> tuple[list[str], list[list[float]]]:
    """The prompts and the vectors of ``problems`` rows."""
    return [p for p, _, _ in rows], [v for _, v, _ in rows]


def teach(client: SweetspotClient, updates: int = 6, per_update: int = 16) -> None:
    for u in range(updates):
        rows = problems(per_update, seed=100 + u)
        prompts, vectors = columns(rows)
        client.update(prompts, [[rate] * 4 for _, _, rate in rows], features=vectors)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    args = ["--backbone", "minilm", "--max-prompts-per-request", "64"]
    args += ["--max-body-bytes", "65536", "--max-feature-values", str(MAX_VALUES)]
    log = tmp_path_factory.mktemp("features") / "service.log"
    process = ServiceProcess(args, log).start()
    yield process
    process.kill()


@pytest.fixture(scope="module")
def url(service: ServiceProcess) -> str:
    return service.url


@pytest.fixture(scope="module")
def strict_run(url: str) -> str:
    with feature_run(url, "strict"):
        return "strict"


def feature_run(url: str, name: str, width: int = WIDTH) -> SweetspotClient:
    client = SweetspotClient(base_url=url, timeout=30, run=name)
    info = client.create_run(name, feature_width=width)
    assert (info.name, info.feature_width, info.model_version) == (name, width, 0)
    return client


def post(url: str, route: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{url}/v1/{route}", json=body, timeout=30)


def detail(answer: httpx.Response) -> str:
    assert answer.status_code == 422, answer.text
    said = answer.json()["detail"]
    return said if isinstance(said, str) else json.dumps(said, ensure_ascii=False)


def test_a_feature_run_shows_its_width_and_default_stays_a_text_run(url: str) -> None:
    with feature_run(url, "shown") as client:
        assert client.get_run("shown").feature_width == WIDTH
        listed = {r.name: r.feature_width for r in client.list_runs().runs}
        assert listed["shown"] == WIDTH and listed["default"] is None
        assert httpx.get(f"{url}/v1/runs/default").json()["feature_width"] is None


@pytest.mark.parametrize("width", [0, 8193, "8", True, 2.0])
def test_a_width_out_of_range_or_not_an_integer_is_refused(url: str, width: object) -> None:
    answer = httpx.post(f"{url}/v1/runs", json={"name": "bad-width", "feature_width": width})
    assert "feature_width" in detail(answer)
    assert httpx.get(f"{url}/v1/runs/bad-width").status_code == 404


def test_vectors_of_another_width_are_refused_naming_both_widths(url: str) -> None:
    with feature_run(url, "w576", width=576):
        pass
    prompts = ["a", "b"]
    features = [[0.5] * 512, [0.25] * 512]
    bodies = {
        "score": {"prompts": prompts, "features": features},
        "select": {"prompts": prompts, "features": features, "m": 1},
        "update": {"prompts": prompts, "features": features, "rewards": [[1.0], [0.0]]},
    }
    for route, body in bodies.items():
        said = detail(post(url, route, {**body, "run": "w576"}))
        assert "run 'w576' was created with feature_width 576; got vectors of width 512" in said
    assert httpx.get(f"{url}/v1/runs/w576").json()["model_version"] == 0


def test_text_and_features_cannot_be_mixed_in_one_run(url: str) -> None:
    with feature_run(url, "mixed"):
        pass
    features = [[1.0] * WIDTH]
    for route, extra in [("score", {}), ("select", {"m": 1}), ("update", {"rewards": [[1.0]]})]:
        to_text = post(url, route, {"prompts": ["a"], "features": features, **extra})
        assert "run 'default' is a text run: create it with feature_width" in detail(to_text)
        bare = post(url, route, {"prompts": ["a"], "run": "mixed", **extra})
        assert f"run 'mixed' was created with feature_width {WIDTH}: send features" in detail(bare)


@pytest.mark.parametrize(
    ("features", "said"),
    [
        ("[[NaN, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0]]", "finite number"),
        ("[[Infinity, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0]]", "finite number"),
        ('[["1", 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0]]', "valid number"),
        ("[[0, 0, 0, 0, 0, 0, 0, 0]]", "features has 1 vectors but prompts has 2"),
        ("[[0, 0, 0, 0, 0, 0, 0, 0], [0, 0]]", "features[1] has 2 numbers but features[0] has 8"),
        ("[[], []]", "at least 1 item"),
    ],
)
def test_bad_features_are_refused_with_what_to_fix(
    url: str, strict_run: str, features: str, said: str
) -> None:
    for route, extra in [("score", ""), ("update", ', "rewards": [[1.0], [0.0]]')]:
        body = f'{{"prompts": ["a", "b"], "run": "{strict_run}", "features": {features}{extra}}}'
        answer = httpx.post(
            f"{url}/v1/{route}", content=body, headers={"Content-Type": "application/json"}
        )
        assert said in detail(answer)
    assert httpx.get(f"{url}/v1/runs/{strict_run}").json()["model_version"] == 0


def test_more_numbers_than_the_service_takes_in_one_request_are_refused(url: str) -> None:
    with feature_run(url, "wide", width=16):
        pass
    prompts = [f"p{i}" for i in range(MAX_VALUES // 16 + 1)]
    body = {"prompts": prompts, "run": "wide", "features": [[0.0] * 16 for _ in prompts]}
    said = detail(post(url, "score", body))
    assert "33 prompts × feature_width 16 = 528 numbers exceeds this service's " in said
    assert f"max_feature_values ({MAX_VALUES})" in said
    fits = {**body, "prompts": prompts[:-1], "features": [[0.0] * 16 for _ in prompts[:-1]]}
    assert post(url, "score", fits).status_code == 200


def test_a_feature_run_learns_from_its_vectors(url: str) -> None:
    with feature_run(url, "learns") as client:
        teach(client)
        rng = random.Random(7)
        low, high = vector(-0.9, rng), vector(0.9, rng)
        scores = client.score(["unseen low", "unseen high"], features=[low, high]).scores
        assert scores[1] > scores[0] + 0.5
        # The prompt text does not decide the score, its vector does: no cache keyed by text.
        swapped = client.score(["unseen high", "unseen low"], features=[low, high]).scores
        assert swapped == pytest.approx(scores, abs=1e-9)
        rows = problems(40, seed=999)
        prompts, vectors = columns(rows)
        held_out = client.score(prompts, features=vectors)
        assert ranking_auc(held_out.scores, [r for _, _, r in rows]) > 0.9
        chosen = client.select(prompts, m=4, tau=1.0, features=vectors)
        assert all(rows[i][2] == 1.0 for i in chosen.indices)
        stats = client.stats(["problem 100-0", "never reported"]).stats
        assert stats[0].count == 4 and stats[0].posterior is None and stats[1].count == 0


def ranking_auc(scores: list[float], solved: list[float]) -> float:
    """Share of (solved, unsolved) pairs that ``scores`` put in the right order."""
    hit = [s for s, a in zip(scores, solved, strict=True) if a]
    miss = [s for s, a in zip(scores, solved, strict=True) if not a]
    return sum(h > m for h in hit for m in miss) / (len(hit) * len(miss))


def test_the_idempotency_key_covers_the_vectors(url: str) -> None:
    with feature_run(url, "keyed") as client:
        one = [[1.0] + [0.0] * (WIDTH - 1)]
        first = client.update(["p"], [[1.0]], features=one, idempotency_key="k")
        again = client.update(["p"], [[1.0]], features=one, idempotency_key="k")
        assert again == first and first.model_version == 1
        other = [[-1.0] + [0.0] * (WIDTH - 1)]
        with pytest.raises(ConflictError, match="different update body"):
            client.update(["p"], [[1.0]], features=other, idempotency_key="k")


def test_a_fork_or_an_import_keeps_the_width_and_another_width_is_refused(url: str) -> None:
    prompts, features = columns(problems(6, seed=5))
    with feature_run(url, "source") as client:
        teach(client, updates=2)
        expected = client.score(prompts, features=features).scores
        fork = client.create_run("forked", from_="source")
        assert (fork.feature_width, fork.model_version) == (WIDTH, 0)
        with SweetspotClient(base_url=url, run="forked") as forked:
            assert forked.score(prompts, features=features).scores == pytest.approx(expected)
        client.create_run("same-width", from_="source", feature_width=WIDTH)
        with pytest.raises(BadRequestError, match="a feature run of width 8, so a run started"):
            client.create_run("other-width", from_="source", feature_width=16)
        with pytest.raises(BadRequestError, match="run 'default' is a text run, so a run"):
            client.create_run("text-fork", from_="default", feature_width=WIDTH)
        imported = client.import_run("imported", client.export_run("source"))
        assert imported.feature_width == WIDTH
        with SweetspotClient(base_url=url, run="imported") as copy:
            assert copy.score(prompts, features=features).scores == pytest.approx(expected)
        names = [r.name for r in client.list_runs().runs]
        assert "other-width" not in names and "text-fork" not in names


def test_both_clients_send_lists_arrays_and_tensors(url: str) -> None:
    prompts, features = columns(problems(6, seed=11))
    with feature_run(url, "clients") as client:
        teach(client, updates=2)
        as_lists = client.score(prompts, features=features).scores
        array = np.array(features, dtype=np.float64)
        assert client.score(prompts, features=array).scores == as_lists
        assert client.score(prompts, features=torch.tensor(array)).scores == as_lists
        chosen = client.select(prompts, m=2, tau=0.5, seed=1, features=array)

        async def main() -> None:
            async with AsyncSweetspotClient(base_url=url, timeout=30, run="clients") as aclient:
                assert (await aclient.score(prompts, features=array)).scores == as_lists
                again = await aclient.select(prompts, m=2, tau=0.5, seed=1, features=features)
                assert again.indices == chosen.indices
                update = await aclient.update(prompts[:1], [[1.0]], features=array[:1])
                assert update.model_version == 3
                info = await aclient.create_run("async-made", feature_width=4)
                assert info.feature_width == 4

        asyncio.run(main())


def test_prompt_curriculum_reports_the_vectors_its_selection_used(url: str) -> None:
    pool = [{"prompt": p, "vector": v} for p, v, _ in problems(48, seed=21)]
    calls: list[list[str]] = []

    def features(records: list[dict[str, object]]) -> list[object]:
        calls.append([str(r["prompt"]) for r in records])
        return [r["vector"] for r in records]

    with feature_run(url, "curriculum") as client:
        curriculum = PromptCurriculum(client, pool, m=4, k=3, seed=0, features=features)
        for step in range(3):
            batch = curriculum.next_batch()
            assert calls[-1] == [str(pool[i]["prompt"]) for i in batch.candidates or []]
            assert batch.features == [pool[i]["vector"] for i in batch.pool_indices]
            rates = [float(v[0] > 0) for v in batch.features or []]
            if step < 2:
                answer = curriculum.report(batch, [[r, r] for r in rates])
                assert answer.model_version == step + 1
            else:
                curriculum.report(batch, [[r, r] for r in rates], background=True)
                assert curriculum.flush(30)
        state = curriculum.state_dict()
        assert client.get_run("curriculum").model_version == 3

    async def main() -> None:
        async with AsyncSweetspotClient(base_url=url, timeout=30, run="curriculum") as aclient:
            async_curriculum = PromptCurriculum(aclient, pool, m=4, seed=0, features=features)
            async_curriculum.load_state_dict(state)
            batch = await async_curriculum.anext_batch()
            assert batch.features == [pool[i]["vector"] for i in batch.pool_indices]
            answer = await async_curriculum.areport(batch, [[1.0]] * 4)
            assert answer.model_version == 4

    asyncio.run(main())
