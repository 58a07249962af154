"""The store contract, run against both implementations (Redis: a real redis-server)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator

import pytest
import redis

from sweetspot_service.store import (
    DEFAULT_REF,
    RunLimitError,
    RunRef,
    StateStore,
    StatsDelta,
    StoreUnavailableError,
)
from sweetspot_service.store_memory import InMemoryStore
from sweetspot_service.store_redis import RedisStore
from sweetspot_service.testing import RedisServer


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[StateStore]:
    if request.param == "memory":
        yield InMemoryStore()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    yield RedisStore(server.url, prefix="t")


D = DEFAULT_REF


def store_url(store: RedisStore) -> str:
    kwargs = store._redis.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/0"


async def collect(store: StateStore) -> None:
    for tombstone in await store.tombstones():
        await store.collect(tombstone)


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_append_is_idempotent_per_key_and_conflicts_on_another_body(store: StateStore) -> None:
    async def scenario() -> None:
        first = await store.append_update(D, "k1", "d1", "body1", [])
        again = await store.append_update(D, "k1", "d1", "body1", [])
        other = await store.append_update(D, "k1", "d2", "body2", [])
        second = await store.append_update(D, "k2", "d2", "body2", [])
        assert (first.status, first.seq) == ("new", 1)
        assert (again.status, again.entry_id, again.seq) == ("duplicate", first.entry_id, 1)
        assert other.status == "conflict"
        assert (second.status, second.seq) == ("new", 2)
        entries = await store.read_updates(D, "0-0", 10)
        assert [(e.seq, e.key, e.body) for e in entries] == [(1, "k1", "body1"), (2, "k2", "body2")]
        later = await store.read_updates(D, first.entry_id, 10)
        assert [e.key for e in later] == ["k2"]
        await store.complete_update(D, "k1", '{"r": 1}')
        await store.complete_update(D, "k1", '{"r": 2}')  # first response wins
        done = await store.append_update(D, "k1", "d1", "body1", [])
        assert done.response == '{"r": 1}'
        assert (await store.lookup_update(D, "k1")).response == '{"r": 1}'  # type: ignore[union-attr]
        assert await store.lookup_update(D, "nope") is None
        await store.trim_updates(D, second.entry_id)
        assert [e.key for e in await store.read_updates(D, "0-0", 10)] == ["k2"]
        await store.close()

    run(scenario())


def test_prompt_stats_count_once_per_accepted_update(store: StateStore) -> None:
    async def scenario() -> None:
        deltas = [StatsDelta("h1", 4, 1.0), StatsDelta("h2", 2, 2.0)]
        await store.append_update(D, "k", "d", "b", deltas)
        await store.append_update(D, "k", "d", "b", deltas)  # retry: not counted
        await store.append_update(D, "k2", "d2", "b2", [StatsDelta("h1", 4, 3.0)])
        h1, h2, h3 = await store.prompt_stats(D, ["h1", "h2", "h3"])
        assert h1 is not None and (h1.count, h1.reward_sum, h1.last_seq) == (8, 4.0, 2)
        assert h2 is not None and (h2.count, h2.mean, h2.last_seq) == (2, 1.0, 1)
        assert h3 is None
        entries = await store.read_updates(D, "0-0", 10)
        assert [e.first_seen for e in entries] == ["11", "0"]  # the log says who was new
        await store.close()

    run(scenario())


def test_score_cache_is_keyed_by_model_version(store: StateStore) -> None:
    async def scenario() -> None:
        await store.cache_scores(D, 3, ["a", "b"], [0.25, 0.75])
        assert await store.cached_scores(D, 3, ["a", "b", "c"]) == [0.25, 0.75, None]
        assert await store.cached_scores(D, 4, ["a"]) == [None]
        await store.close()

    run(scenario())


def test_the_run_limit_is_decided_in_the_store(store: StateStore) -> None:
    """Issue 31.4: the limit counts the store's run list (``default`` included), in the
    create's own atomic step, so replicas sharing the store cannot pass it together."""

    async def scenario() -> None:
        a, b = RunRef("a", "00000000000000a1"), RunRef("b", "00000000000000b1")
        assert await store.create_run(a, max_runs=2) is True
        with pytest.raises(RunLimitError):
            await store.create_run(b, feature_width=8, max_runs=2)
        assert await store.current_incarnation("b") is None
        assert await store.feature_width(b) is None  # nothing of the refused create is kept
        assert await store.create_run(RunRef("a", "00000000000000a2"), max_runs=2) is False
        assert await store.delete_run(a)
        assert await store.create_run(b, max_runs=2) is True

    run(scenario())


def test_runs_are_separate_and_removable(store: StateStore) -> None:
    async def scenario() -> None:
        exp = RunRef("exp-1", "0123456789abcdef")
        assert await store.create_run(exp) is True
        assert await store.create_run(RunRef("exp-1", "fedcba9876543210")) is False
        assert await store.list_runs() == {"default": "", "exp-1": exp.incarnation}
        assert await store.current_incarnation("exp-1") == exp.incarnation
        assert await store.current_incarnation("default") == ""
        assert await store.current_incarnation("exp-2") is None
        await store.append_update(exp, "k", "d", "b", [StatsDelta("h", 1, 1.0)])
        assert await store.read_updates(D, "0-0", 10) == []
        assert await store.delete_run(RunRef("exp-1", "fedcba9876543210")) is False  # not it
        assert await store.delete_run(exp) is True
        assert await store.delete_run(exp) is False  # exactly one incarnation, once
        assert await store.delete_run(D) is False  # default stays
        await collect(store)
        assert await store.list_runs() == {"default": ""}
        assert await store.current_incarnation("exp-1") is None
        assert await store.read_updates(exp, "0-0", 10) == []
        assert await store.prompt_stats(exp, ["h"]) == [None]
        await store.close()

    run(scenario())


def test_a_feature_runs_width_is_kept_with_its_incarnation(store: StateStore) -> None:
    async def scenario() -> None:
        old, new = RunRef("f", "00000000000000aa"), RunRef("f", "00000000000000bb")
        assert await store.feature_width(D) is None
        assert await store.create_run(old, feature_width=576)
        assert await store.create_run(new, feature_width=64) is False  # the name exists
        assert await store.feature_width(old) == 576
        assert await store.feature_width(new) is None  # not current: nothing of the refused one
        assert await store.delete_run(old)
        assert await store.feature_width(old) is None  # gone with the delete, in its step
        await collect(store)
        assert await store.create_run(new)  # the name again, as a text run
        assert await store.feature_width(new) is None
        if isinstance(store, RedisStore):  # nothing of either is left in the width hash
            assert redis.Redis.from_url(store_url(store)).hgetall("t:feature_widths") == {}
        await store.close()

    run(scenario())


def test_a_deleted_incarnation_takes_no_writes_and_a_new_one_starts_empty(
    store: StateStore,
) -> None:
    """Issue 19.1/19.2: an append racing with a delete must not leave state behind that a
    run created again under the same name would see."""

    async def scenario() -> None:
        old, new = RunRef("x", "00000000000000aa"), RunRef("x", "00000000000000bb")
        assert await store.create_run(old)
        first = await store.append_update(old, "k1", "d1", "b1", [StatsDelta("h", 2, 1.0)])
        assert first.status == "new"
        await store.report_applied(old, "replica", first.entry_id)
        assert await store.delete_run(old)
        late = await store.append_update(old, "k2", "d2", "b2", [StatsDelta("h", 2, 2.0)])
        assert late.status == "gone"
        await store.report_applied(old, "replica", first.entry_id)  # a slow replica's heartbeat
        await collect(store)
        assert await store.create_run(new)
        assert (await store.append_update(old, "k3", "d3", "b3", [])).status == "gone"
        assert await store.read_updates(new, "0-0", 10) == []
        assert await store.prompt_stats(new, ["h"]) == [None]
        assert await store.lookup_update(new, "k1") is None
        assert await store.applied_floor(new, 60) is None
        again = await store.append_update(new, "k1", "d1", "b1", [StatsDelta("h", 1, 1.0)])
        assert (again.status, again.seq) == ("new", 1)
        if isinstance(store, RedisStore):  # nothing of the old incarnation is left
            keys = redis.Redis.from_url(store_url(store)).keys("t:{x}:00000000000000aa*")
            assert keys == []
        await store.close()

    run(scenario())


def test_a_restart_from_a_checkpoint_continues_the_log(
    store: StateStore, request: pytest.FixtureRequest
) -> None:
    """A restarted service restores a checkpoint at version 2 whose last entry was
    ``applied``; the next update must be entry 3, found after the resumed position. The
    in-memory log restarts empty, so it must not start over at 1 (nor read after ``applied``,
    an id of the old log: with Redis-shaped ids from an earlier Redis-backed service, say)."""

    async def scenario() -> None:
        await store.append_update(D, "k1", "d1", "b1", [])
        applied = (await store.append_update(D, "k2", "d2", "b2", [])).entry_id
        await store.close()
        if store.kind == "memory":
            restarted: StateStore = InMemoryStore()
        else:
            server: RedisServer = request.getfixturevalue("redis_server")
            restarted = RedisStore(server.url, prefix="t")
        position = await restarted.resume_log(D, 2, applied)
        assert (await restarted.append_update(D, "k3", "d3", "b3", [])).seq == 3
        entries = await restarted.read_updates(D, position, 10)
        assert [(e.seq, e.key) for e in entries] == [(3, "k3")]
        if isinstance(restarted, InMemoryStore):
            EXP = RunRef("exp", "00000000000000ee")
            assert await restarted.create_run(EXP)
            position = await restarted.resume_log(EXP, 7, "1700000000000-0")
            assert (await restarted.append_update(EXP, "k8", "d8", "b8", [])).seq == 8
            assert [e.seq for e in await restarted.read_updates(EXP, position, 10)] == [8]
        await restarted.close()

    run(scenario())


def test_redis_outage_raises_store_unavailable(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        store = RedisStore(redis_server.url, timeout_s=0.5)
        await store.ping()
        redis_server.kill()
        with pytest.raises(StoreUnavailableError):
            await store.append_update(D, "k", "d", "b", [])
        with pytest.raises(StoreUnavailableError):
            await store.cached_scores(D, 0, ["a"])
        redis_server.start()  # same port, same AOF: back within the next call
        await store.ping()
        await store.close()

    run(scenario())


def test_an_append_sent_to_a_frozen_redis_has_an_unknown_outcome(
    redis_server: RedisServer,
) -> None:
    """Issue 11.6: an append that timed out after it was sent may still be applied (here it
    is, once Redis resumes), so the error must not claim it was not taken."""

    async def scenario() -> None:
        store = RedisStore(redis_server.url, timeout_s=0.5)
        await store.append_update(D, "before", "d0", "b0", [])  # a pooled connection
        assert redis_server.process is not None
        redis_server.process.send_signal(signal.SIGSTOP)
        try:
            with pytest.raises(StoreUnavailableError) as frozen:
                await store.append_update(D, "frozen", "d1", "b1", [])
        finally:
            redis_server.process.send_signal(signal.SIGCONT)
        assert getattr(frozen.value, "outcome_unknown", False) is True
        taken = await store.lookup_update(D, "frozen")
        assert taken is not None and taken.seq == 2  # it was applied after all
        await store.close()
        redis_server.kill()  # a connection refused before anything is sent: certainly not taken
        fresh = RedisStore(redis_server.url, timeout_s=0.5)
        with pytest.raises(StoreUnavailableError) as refused:
            await fresh.append_update(D, "refused", "d2", "b2", [])
        assert getattr(refused.value, "outcome_unknown", True) is False
        await fresh.close()

    run(scenario())


def test_trim_floor_is_the_slowest_live_replica(store: StateStore) -> None:
    async def scenario() -> None:
        assert await store.applied_floor(D, 60) is None
        await store.report_applied(D, "fast", "5-0")
        await store.report_applied(D, "slow", "3-0")
        assert await store.applied_floor(D, 60) == "3-0"
        assert await store.applied_floor(D, 0) is None  # nobody heard from lately
        await store.close()

    run(scenario())


def test_redis_without_fsync_always_is_reported(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        store = RedisStore(redis_server.url)
        assert await store.durability_warning() is None  # the fixture runs it durably
        redis.Redis.from_url(redis_server.url).config_set("appendfsync", "everysec")
        warning = await store.durability_warning()
        assert warning is not None and "--appendfsync always" in warning
        await store.close()

    run(scenario())


def test_runs_of_earlier_releases_keep_their_keys_and_delete_cleanly(
    redis_server: RedisServer,
) -> None:
    """A Redis written before incarnations: the ``<p>:runs`` set and un-incarnated keys.
    Such a run is the legacy incarnation; deleting it removes its keys and nobody else's."""

    async def scenario() -> None:
        raw = redis.Redis.from_url(redis_server.url, decode_responses=True)
        raw.sadd("t:runs", "old")
        raw.set("t:{old}:seq", 4)
        raw.hset("t:{old}:prompt:h", mapping={"count": 2, "sum": 1.0, "last_seq": 4})
        store = RedisStore(redis_server.url, prefix="t")
        assert await store.list_runs() == {"default": "", "old": ""}
        assert await store.current_incarnation("old") == ""
        with pytest.raises(RunLimitError):  # the legacy run and default count: 2 of 2
            await store.create_run(RunRef("new", "00000000000000bb"), max_runs=2)
        old = RunRef("old")
        assert (await store.prompt_stats(old, ["h"]))[0] is not None
        assert (await store.append_update(old, "k", "d", "b", [])).seq == 5
        assert await store.create_run(RunRef("old", "00000000000000aa")) is False
        assert await store.delete_run(old) is True
        assert await store.current_incarnation("old") is None
        new = RunRef("old", "00000000000000aa")
        assert await store.create_run(new) is True
        assert await store.current_incarnation("old") == new.incarnation
        await store.append_update(new, "k", "d", "b", [StatsDelta("h", 1, 1.0)])
        await collect(store)
        assert sorted(raw.keys("t:{old}:*")) == [
            "t:{old}:00000000000000aa:idem:k",
            "t:{old}:00000000000000aa:prompt:h",
            "t:{old}:00000000000000aa:seq",
            "t:{old}:00000000000000aa:wal",
        ]
        assert raw.smembers("t:runs") == set()
        await store.close()

    run(scenario())
