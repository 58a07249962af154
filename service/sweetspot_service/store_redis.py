"""``RedisStore``: shared, durable state in a real Redis (``SWEETSPOT_REDIS_URL``).

Keys (``<p>`` is the configured prefix; ``<i>:`` is the run's incarnation followed by a
colon, and empty for the ``LEGACY`` incarnation, whose keys are those of earlier releases;
every key of a run carries the hash tag ``{run}``):

| key | type | holds |
|---|---|---|
| ``<p>:incarnations`` | hash | run name → current incarnation |
| ``<p>:runs`` | set | runs listed by earlier releases (incarnation ``LEGACY``) |
| ``<p>:tombstones`` | set | ``<run>/<incarnation>`` deleted, state not yet collected |
| ``<p>:feature_widths`` | hash | ``<run>/<incarnation>`` → a feature run's width |
| ``<p>:{run}:<i>wal`` | stream | the update log: fields ``seq``, ``key``, ``body``, ``fresh`` |
| ``<p>:{run}:<i>seq`` | string | last sequence number handed out |
| ``<p>:{run}:<i>idem:<key>`` | hash | ``digest``, ``id``, ``seq``, ``response``; expires |
| ``<p>:{run}:<i>prompt:<hash>`` | hash | ``count``, ``sum``, ``last_seq``; expires |
| ``<p>:{run}:<i>scores:<version>`` | hash | prompt hash → p̂; expires |
| ``<p>:{run}:<i>applied`` | hash | replica id → ``<applied log id> <unix time>`` |

The scripts that create, delete and append check the run's current incarnation in the same
atomic step (``_CURRENT``), so they touch the run list and the run's keys together: the
store is one Redis (or a primary with replicas), not a Redis Cluster.

Durability comes from Redis itself: run it with ``appendonly yes`` and ``appendfsync
always`` so a reply means the entry is on disk (Debian's Redis 7.0 has no ``WAITAOF``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, cast

import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.backoff import NoBackoff
from redis.retry import Retry

from sweetspot_client.schema import DEFAULT_RUN
from sweetspot_service.store import (
    LEGACY,
    AppendResult,
    LogEntry,
    PromptStats,
    RunLimitError,
    RunRef,
    StatsDelta,
    StoreUnavailableError,
    entry_key,
)

_CHUNK = 1000
"""Prompt-stats keys written per pipeline when a run starts with stats (a fork)."""

# The current incarnation of run ARGV[1] (false: none), given KEYS[1] = incarnations, KEYS[2] =
# the legacy run set; ``default`` always exists.
_CURRENT = """
local function current(name)
  local inc = redis.call('HGET', KEYS[1], name)
  if inc then return inc end
  if name == '$default' or redis.call('SISMEMBER', KEYS[2], name) == 1 then return '' end
  return false
end
""".replace("$default", DEFAULT_RUN)

# Create run ARGV[1] as incarnation ARGV[2] unless the name has a current incarnation (0)
# or the run list (as ``list_runs`` counts it) holds ARGV[4] runs already (-1; empty: no
# limit); a feature run's width ARGV[3] (empty: a text run) goes in KEYS[3] in the same step.
_CREATE = (
    _CURRENT
    + """
if current(ARGV[1]) then return 0 end
if ARGV[4] ~= '' then
  local n = redis.call('HLEN', KEYS[1])
  for _, name in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    if redis.call('HEXISTS', KEYS[1], name) == 0 then n = n + 1 end
  end
  if redis.call('HEXISTS', KEYS[1], '$default') == 0
    and redis.call('SISMEMBER', KEYS[2], '$default') == 0 then n = n + 1 end
  if n >= tonumber(ARGV[4]) then return -1 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[3], ARGV[1] .. '/' .. ARGV[2], ARGV[3]) end
return 1
""".replace("$default", DEFAULT_RUN)
)

# Delete incarnation ARGV[2] of run ARGV[1] if current, tombstone it (KEYS[3]) and drop its
# feature width (KEYS[4]).
_DELETE = (
    _CURRENT
    + """
if ARGV[1] == '$default' or current(ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[2] == '' then redis.call('SREM', KEYS[2], ARGV[1])
else redis.call('HDEL', KEYS[1], ARGV[1]) end
redis.call('SADD', KEYS[3], ARGV[1] .. '/' .. ARGV[2])
redis.call('HDEL', KEYS[4], ARGV[1] .. '/' .. ARGV[2])
return 1
""".replace("$default", DEFAULT_RUN)
)

# Atomic: incarnation check, idempotency check, sequence number, prompt stats, log append
# (with ``fresh``: per stats key, 1 when its count was 0 before), idempotency record.
# KEYS: incarnations, legacy runs, idem, seq, wal, stats keys...  ARGV: run, incarnation,
# digest, body, idem ttl, key, stats ttl, then (count, sum) per stats key.
_APPEND = (
    _CURRENT
    + """
if current(ARGV[1]) ~= ARGV[2] then return {'gone', '', '0', ''} end
local rec = redis.call('HMGET', KEYS[3], 'digest', 'id', 'seq', 'response')
if rec[1] then
  local status = 'duplicate'
  if rec[1] ~= ARGV[3] then status = 'conflict' end
  return {status, rec[2], rec[3], rec[4] or ''}
end
local seq = redis.call('INCR', KEYS[4])
local fresh = {}
for i = 6, #KEYS do
  local a = 8 + (i - 6) * 2
  local count = redis.call('HINCRBY', KEYS[i], 'count', ARGV[a])
  if count == tonumber(ARGV[a]) then fresh[#fresh + 1] = '1' else fresh[#fresh + 1] = '0' end
  redis.call('HINCRBYFLOAT', KEYS[i], 'sum', ARGV[a + 1])
  redis.call('HSET', KEYS[i], 'last_seq', seq)
  redis.call('EXPIRE', KEYS[i], ARGV[7])
end
local id = redis.call('XADD', KEYS[5], '*', 'seq', seq, 'key', ARGV[6], 'body', ARGV[4],
  'fresh', table.concat(fresh))
redis.call('HSET', KEYS[3], 'digest', ARGV[3], 'id', id, 'seq', seq)
redis.call('EXPIRE', KEYS[3], ARGV[5])
return {'new', id, tostring(seq), ''}
"""
)

# A replica's applied position (KEYS[3], field ARGV[3] = ARGV[4]), only while current: a
# deleted incarnation's keys are never written again once collected.
_REPORT = (
    _CURRENT
    + """
if current(ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
return 1
"""
)

# Lease up to ARGV[1] of KEYS (prompt lease keys in preference order) for ARGV[2] ms:
# the 1-based positions leased. One script, so two selects never lease one prompt.
_LEASE = """
local want, got = tonumber(ARGV[1]), {}
for i, key in ipairs(KEYS) do
  if #got >= want then break end
  if redis.call('SET', key, '1', 'NX', 'PX', ARGV[2]) then got[#got + 1] = i end
end
return got
"""

# Record the response of an applied update, once, if its idempotency record still exists.
_COMPLETE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('HSETNX', KEYS[1], 'response', ARGV[1])
end
return 0
"""


class RedisStore:
    kind = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "sweetspot",
        timeout_s: float = 2.0,
        idempotency_ttl_s: int = 86_400,
        stats_ttl_s: int = 30 * 86_400,
        score_ttl_s: int = 600,
    ) -> None:
        self._redis: aioredis.Redis = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            # One attempt: the caller decides (503 to the client, or the applier retries).
            retry=Retry(NoBackoff(), 0),
            health_check_interval=10,
        )
        self._p = prefix
        self._idem_ttl = idempotency_ttl_s
        self._stats_ttl = stats_ttl_s
        self._score_ttl = score_ttl_s
        self._append = self._redis.register_script(_APPEND)
        self._complete = self._redis.register_script(_COMPLETE)
        self._create = self._redis.register_script(_CREATE)
        self._delete = self._redis.register_script(_DELETE)
        self._report = self._redis.register_script(_REPORT)
        self._lease = self._redis.register_script(_LEASE)
        self._registry = [f"{prefix}:incarnations", f"{prefix}:runs"]
        self._tombstones = f"{prefix}:tombstones"
        self._widths = f"{prefix}:feature_widths"

    def _k(self, run: RunRef, *parts: str) -> str:
        incarnation = [run.incarnation] if run.incarnation != LEGACY else []
        return ":".join((self._p, "{" + run.name + "}", *incarnation, *parts))

    @asynccontextmanager
    async def _guard(self, *, sent: bool = False) -> AsyncIterator[None]:
        """Map 'Redis cannot serve this now' to ``StoreUnavailableError``; let bugs through.

        ``sent``: the command may have reached Redis, so a lost connection or a timeout
        leaves its outcome unknown. A reply that refuses it (read-only, out of memory,
        MISCONF, still loading) means it was not applied, whatever ``sent`` says.
        """
        try:
            yield
        except (rexc.ConnectionError, rexc.TimeoutError) as exc:
            unknown = sent and not isinstance(exc, rexc.BusyLoadingError)
            raise StoreUnavailableError(
                f"Redis unavailable: {exc}", outcome_unknown=unknown
            ) from exc
        except (rexc.ReadOnlyError, rexc.OutOfMemoryError) as exc:
            raise StoreUnavailableError(f"Redis refuses writes: {exc}") from exc
        except rexc.ResponseError as exc:
            if str(exc).startswith("MISCONF"):  # cannot persist: refusing writes
                raise StoreUnavailableError(f"Redis cannot persist: {exc}") from exc
            raise

    async def ping(self) -> None:
        async with self._guard():
            await self._redis.ping()

    async def durability_warning(self) -> str | None:
        try:
            async with self._guard():
                config = cast(dict[str, str], await self._redis.config_get("append*"))
        except rexc.ResponseError:  # CONFIG disabled (managed Redis): cannot tell
            return None
        if config.get("appendonly") != "yes" or config.get("appendfsync") != "always":
            return (
                f"Redis runs with appendonly={config.get('appendonly')} "
                f"appendfsync={config.get('appendfsync')}: acknowledged updates may be lost "
                "if Redis crashes; run it with --appendonly yes --appendfsync always"
            )
        return None

    async def append_update(
        self, run: RunRef, key: str, digest: str, body: str, stats: list[StatsDelta]
    ) -> AppendResult:
        keys = [*self._registry, self._k(run, "idem", key), self._k(run, "seq")]
        keys += [self._k(run, "wal")] + [self._k(run, "prompt", d.prompt_hash) for d in stats]
        args: list[str | int | float] = [run.name, run.incarnation, digest, body]
        args += [self._idem_ttl, key, self._stats_ttl]
        for d in stats:
            args += [d.count, repr(d.reward_sum)]
        # Connect first, on a connection of our own: a failure to connect means the append
        # was never sent (not accepted); a failure after sending leaves its outcome unknown.
        connection = self._redis.client()
        try:
            async with self._guard():
                await connection.initialize()
            async with self._guard(sent=True):
                reply = await self._append(keys=keys, args=args, client=connection)
        finally:
            await connection.aclose()
        status, entry_id, seq, response = reply
        return AppendResult(status, entry_id, int(seq), response or None)

    async def acquire_leases(
        self, run: RunRef, hashes: list[str], want: int, ttl_s: float
    ) -> list[int]:
        keys = [self._k(run, "lease", h) for h in hashes]
        async with self._guard(sent=True):
            taken = await self._lease(keys=keys, args=[want, max(1, round(ttl_s * 1000))])
        return [int(i) - 1 for i in cast(list[Any], taken)]

    async def release_leases(self, run: RunRef, hashes: list[str]) -> None:
        if hashes:
            async with self._guard(sent=True):
                await self._redis.unlink(*[self._k(run, "lease", h) for h in hashes])

    async def read_updates(self, run: RunRef, after: str, count: int) -> list[LogEntry]:
        async with self._guard():
            rows = cast(
                list[tuple[str, dict[str, str]]],
                await self._redis.xrange(self._k(run, "wal"), min=f"({after}", count=count),
            )
        return [LogEntry(i, int(f["seq"]), f["key"], f["body"], f.get("fresh")) for i, f in rows]

    async def resume_log(self, run: RunRef, version: int, applied_id: str) -> str:
        return applied_id  # the stream outlives the process

    async def log_length(self, run: RunRef) -> int:
        async with self._guard():
            return int(await self._redis.xlen(self._k(run, "wal")))

    async def complete_update(self, run: RunRef, key: str, response: str) -> None:
        async with self._guard():
            await self._complete(keys=[self._k(run, "idem", key)], args=[response])

    async def lookup_update(self, run: RunRef, key: str) -> AppendResult | None:
        async with self._guard():
            row = cast(
                list[str | None],
                await self._redis.hmget(
                    self._k(run, "idem", key), ["digest", "id", "seq", "response"]
                ),
            )
        digest, entry_id, seq, response = row
        if digest is None or entry_id is None or seq is None:
            return None
        return AppendResult("duplicate", entry_id, int(seq), response)

    async def trim_updates(self, run: RunRef, before: str) -> None:
        async with self._guard():
            await self._redis.xtrim(self._k(run, "wal"), minid=before, approximate=False)

    async def report_applied(self, run: RunRef, replica: str, applied_id: str) -> None:
        keys = [*self._registry, self._k(run, "applied")]
        args = [run.name, run.incarnation, replica, f"{applied_id} {time.time()}"]
        async with self._guard():
            await self._report(keys=keys, args=args)

    async def applied_floor(self, run: RunRef, max_age_s: float) -> str | None:
        async with self._guard():
            rows = cast(dict[str, str], await self._redis.hgetall(self._k(run, "applied")))
            now = time.time()
            live: list[str] = []
            gone: list[str] = []
            for replica, value in rows.items():
                applied_id, _, seen = value.partition(" ")
                if now - float(seen or 0) <= max_age_s:
                    live.append(applied_id)
                else:
                    gone.append(replica)
            if gone:
                await self._redis.hdel(self._k(run, "applied"), *gone)
        return min(live, key=entry_key) if live else None

    async def prompt_stats(self, run: RunRef, hashes: list[str]) -> list[PromptStats | None]:
        async with self._guard():
            pipe = self._redis.pipeline(transaction=False)
            for h in hashes:
                pipe.hmget(self._k(run, "prompt", h), ["count", "sum", "last_seq"])
            rows = cast(list[list[Any]], await pipe.execute())
        return [
            PromptStats(int(c), float(s), int(last)) if c is not None else None
            for c, s, last in rows
        ]

    async def cached_scores(
        self, run: RunRef, version: int, hashes: list[str]
    ) -> list[float | None]:
        async with self._guard():
            values = await self._redis.hmget(self._k(run, "scores", str(version)), hashes)
        return [float(v) if v is not None else None for v in values]

    async def cache_scores(
        self, run: RunRef, version: int, hashes: list[str], scores: list[float]
    ) -> None:
        key = self._k(run, "scores", str(version))
        async with self._guard():
            pipe = self._redis.pipeline(transaction=False)
            pipe.hset(key, mapping={h: repr(s) for h, s in zip(hashes, scores, strict=True)})
            pipe.expire(key, self._score_ttl)
            await pipe.execute()

    async def create_run(
        self,
        run: RunRef,
        feature_width: int | None = None,
        stats: Mapping[str, PromptStats] | None = None,
        *,
        max_runs: int | None = None,
    ) -> bool:
        """``stats`` are written under the new incarnation's keys first: nothing else can
        write there before ``_CREATE`` lists it (an append checks the incarnation), and
        they are removed again if the name turns out taken."""
        width = "" if feature_width is None else str(feature_width)
        seeded = [(self._k(run, "prompt", h), s) for h, s in (stats or {}).items()]
        async with self._guard():
            for start in range(0, len(seeded), _CHUNK):
                pipe = self._redis.pipeline(transaction=False)
                for key, s in seeded[start : start + _CHUNK]:
                    pipe.hset(
                        key,
                        mapping={
                            "count": s.count,
                            "sum": repr(s.reward_sum),
                            "last_seq": s.last_seq,
                        },
                    )
                    pipe.expire(key, self._stats_ttl)
                await pipe.execute()
            keys = [*self._registry, self._widths]
            limit = "" if max_runs is None else str(max_runs)
            answer = int(await self._create(keys=keys, args=[*run, width, limit]))
            created = answer == 1
            if not created:
                for start in range(0, len(seeded), _CHUNK):
                    await self._redis.delete(*(key for key, _ in seeded[start : start + _CHUNK]))
            if answer == -1:
                assert max_runs is not None
                raise RunLimitError(max_runs)
            return created

    async def feature_width(self, run: RunRef) -> int | None:
        async with self._guard():
            width = await self._redis.hget(self._widths, f"{run.name}/{run.incarnation}")
        return None if width is None else int(width)

    async def delete_run(self, run: RunRef) -> bool:
        async with self._guard():
            keys = [*self._registry, self._tombstones, self._widths]
            return bool(await self._delete(keys=keys, args=list(run)))

    async def tombstones(self) -> list[RunRef]:
        async with self._guard():
            members = cast(set[str], await self._redis.smembers(self._tombstones))
        return sorted(RunRef(*m.partition("/")[::2]) for m in members)

    async def collect(self, run: RunRef) -> None:
        async with self._guard():
            await self._unlink_state(run)
            await self._redis.srem(self._tombstones, f"{run.name}/{run.incarnation}")

    async def _unlink_state(self, run: RunRef) -> None:
        """Every key of one incarnation (only its own: a legacy run's patterns do not match
        a later incarnation's keys, whose incarnation part comes first)."""
        exact = [self._k(run, part) for part in ("wal", "seq", "applied")]
        await self._redis.unlink(*exact)
        for family in ("idem", "prompt", "scores", "lease"):
            batch: list[str] = []
            async for key in self._redis.scan_iter(match=self._k(run, family, "*"), count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    await self._redis.unlink(*batch)
                    batch = []
            if batch:
                await self._redis.unlink(*batch)

    async def list_runs(self) -> dict[str, str]:
        async with self._guard():
            pipe = self._redis.pipeline(transaction=True)
            pipe.hgetall(self._registry[0])
            pipe.smembers(self._registry[1])
            current, legacy = cast(tuple[dict[str, str], set[str]], await pipe.execute())
        runs = {name: LEGACY for name in {*legacy, DEFAULT_RUN}} | current
        return dict(sorted(runs.items()))

    async def current_incarnation(self, name: str) -> str | None:
        async with self._guard():
            pipe = self._redis.pipeline(transaction=True)
            pipe.hget(self._registry[0], name)
            pipe.sismember(self._registry[1], name)
            current, legacy = cast(tuple[str | None, int], await pipe.execute())
        if current is not None:  # as in list_runs, the registry wins over the legacy set
            return current
        return LEGACY if legacy or name == DEFAULT_RUN else None

    async def close(self) -> None:
        await self._redis.aclose()
