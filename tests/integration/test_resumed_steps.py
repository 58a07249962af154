"""Issue 19.12 against a real service: a step redone after a resume is applied when it
observed something else, and applied once when it resends the same observations."""

from __future__ import annotations

from sweetspot_client import PromptCurriculum, SweetspotClient

POOL = [f"What is {a} times {a + 1}?" for a in range(12)]


def test_a_redone_step_with_other_rewards_is_applied_and_a_resend_is_not(
    service_url: str,
) -> None:
    with SweetspotClient(base_url=service_url, run="resumed-steps", timeout=30) as client:
        client.create_run("resumed-steps")
        first = PromptCurriculum(client, POOL, m=2, seed=0)
        saved = first.state_dict()  # the checkpoint the trainer resumes from
        batch = first.next_batch()
        assert first.report(batch, [[1.0, 1.0], [0.0, 1.0]]).model_version == 1

        resumed = PromptCurriculum(client, POOL, m=2, seed=0)
        resumed.load_state_dict(saved)
        redone = resumed.next_batch()
        assert redone.step == batch.step
        # The redone step observed other rewards: applied (it was a 409, and lost, before).
        assert resumed.report(redone, [[0.0, 0.0], [0.0, 0.0]]).model_version == 2
        # Both observations sent again (a restart resending its queue): nothing new applied.
        assert first.report(batch, [[1.0, 1.0], [0.0, 1.0]]).model_version == 1
        assert resumed.report(redone, [[0.0, 0.0], [0.0, 0.0]]).model_version == 2
        assert client.get_run("resumed-steps").model_version == 2
        counts = client.stats(sorted(set(redone.prompts) | set(batch.prompts))).stats
        assert sum(s.count for s in counts) == 8  # two reports of 2 prompts x 2 rewards
