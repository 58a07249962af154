"""``AsyncSweetspotClient`` and the async curriculum path against a real ``sweetspot-serve``,
with several requests in flight from one event loop."""

from __future__ import annotations

import asyncio

import pytest

from sweetspot_client import AsyncSweetspotClient, NotFoundError, PromptCurriculum

EASY = [f"What is {a} + {b}?" for a in range(1, 5) for b in range(1, 4)]
HARD = [f"Prove that {a}^{b} + 1 has no nontrivial factor." for a in range(2, 6) for b in (3, 5)]
RUN = "async-client"


def test_score_select_update_stats_concurrently(service_url: str) -> None:
    prompts = EASY[:4] + HARD[:4]

    async def main() -> None:
        async with AsyncSweetspotClient(base_url=service_url, timeout=30, run=RUN) as client:
            assert (await client.wait_ready(timeout=60)).ready
            assert (await client.create_run(RUN)).model_version == 0
            try:
                together = await client.score(prompts)
                alone = await asyncio.gather(*(client.score([p]) for p in prompts))
                assert [a.scores[0] for a in alone] == pytest.approx(together.scores, abs=1e-5)

                selects = await asyncio.gather(
                    *(client.select(prompts, m=3, tau=0.3, seed=5) for _ in range(3))
                )
                assert len({tuple(s.indices) for s in selects}) == 1
                distance = [abs(s - 0.3) for s in together.scores]
                kept = selects[0].indices
                rest = [d for i, d in enumerate(distance) if i not in kept]
                assert max(distance[i] for i in kept) <= min(rest) + 1e-5

                updates = await asyncio.gather(
                    *(
                        client.update([p], [[1.0, 0.0, 1.0]], idempotency_key=f"{RUN}-{i}")
                        for i, p in enumerate(prompts[:4])
                    )
                )
                assert sorted(u.model_version for u in updates) == [1, 2, 3, 4]
                again = await client.update(
                    [prompts[0]], [[1.0, 0.0, 1.0]], idempotency_key=f"{RUN}-0"
                )
                assert again == updates[0]  # the stored answer; nothing applied twice
                assert (await client.get_run(RUN)).model_version == 4

                stats = (await client.stats(prompts[:5])).stats
                assert [s.count for s in stats] == [3, 3, 3, 3, 0]
                assert stats[0].mean_reward == pytest.approx(2 / 3)
                assert stats[4].mean_reward is None
                assert RUN in {r.name for r in (await client.list_runs()).runs}
            finally:
                await client.delete_run(RUN)
            with pytest.raises(NotFoundError):
                await client.get_run(RUN)

    asyncio.run(main())


def test_curriculum_prefetches_the_next_selection(service_url: str) -> None:
    """The loop of the README: the next selection runs while this step's report is sent."""

    async def main() -> list[int]:
        async with AsyncSweetspotClient(base_url=service_url, timeout=30) as client:
            curriculum = PromptCurriculum(client, EASY + HARD, m=2, k=3, seed=3)
            versions = []
            upcoming = asyncio.create_task(curriculum.anext_batch())
            for _ in range(3):
                batch = await upcoming
                upcoming = asyncio.create_task(curriculum.anext_batch())
                answer = await curriculum.areport(batch, [[1.0, 0.0]] * 2)
                assert batch.fallback is None and answer.num_prompts == 2
                versions.append(answer.model_version)
            last = await upcoming
            assert last.step == 3 and last.fallback is None
            return versions

    versions = asyncio.run(main())
    assert versions == sorted(versions) and len(set(versions)) == 3
