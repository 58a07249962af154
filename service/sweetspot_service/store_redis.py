"""``RedisStore``: shared, durable state in a real Redis (``SWEETSPOT_REDIS_URL``).

Keys (``<p>`` is the configured prefix; every key of a run carries the hash tag ``{run}``,
so one run's keys live in one cluster slot):

| key | type | holds |
|---|---|---|
| ``<p>:runs`` | set | run names |
| ``<p>:{run}:wal`` | stream | the update log: fields ``seq``, ``key``, ``body``, ``fresh`` |
| ``<p>:{run}:seq`` | string | last sequence number handed out |
| ``<p>:{run}:idem:<key>`` | hash | ``digest``, ``id``, ``seq``, ``response``; expires |
| ``<p>:{run}:prompt:<hash>`` | hash | ``count``, ``sum``, ``last_seq``; expires |
| ``<p>:{run}:scores:<version>`` | hash | prompt hash → p̂; expires |
| ``<p>:{run}:applied`` | hash | replica id → ``<applied log id> <unix time>`` |

Durability comes from Redis itself: run it with ``appendonly yes`` and ``appendfsync
always`` so a reply means the entry is on disk (Debian's Redis 7.0 has no ``WAITAOF``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.backoff import NoBackoff
from redis.retry import Retry

from sweetspot_client.schema import DEFAULT_RUN
from sweetspot_service.store import (
    AppendResult,
    LogEntry,
    PromptStats,
    StatsDelta,
    StoreUnavailableError,
    entry_key,
)

# Atomic: idempotency check, sequence number, prompt stats, log append (with ``fresh``: per
# stats key, 1 when its count was 0 before), idempotency record.
# KEYS: idem, seq, wal, stats keys...  ARGV: digest, body, idem ttl, key, stats ttl,
# then (count, sum) per stats key.
_APPEND = """
local rec = redis.call('HMGET', KEYS[1], 'digest', 'id', 'seq', 'response')
if rec[1] then
  local status = 'duplicate'
  if rec[1] ~= ARGV[1] then status = 'conflict' end
  return {status, rec[2], rec[3], rec[4] or ''}
end
local seq = redis.call('INCR', KEYS[2])
local fresh = {}
for i = 4, #KEYS do
  local a = 6 + (i - 4) * 2
  local count = redis.call('HINCRBY', KEYS[i], 'count', ARGV[a])
  if count == tonumber(ARGV[a]) then fresh[#fresh + 1] = '1' else fresh[#fresh + 1] = '0' end
  redis.call('HINCRBYFLOAT', KEYS[i], 'sum', ARGV[a + 1])
  redis.call('HSET', KEYS[i], 'last_seq', seq)
  redis.call('EXPIRE', KEYS[i], ARGV[5])
end
local id = redis.call('XADD', KEYS[3], '*', 'seq', seq, 'key', ARGV[4], 'body', ARGV[2],
  'fresh', table.concat(fresh))
redis.call('HSET', KEYS[1], 'digest', ARGV[1], 'id', id, 'seq', seq)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {'new', id, tostring(seq), ''}
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

    def _k(self, run: str, *parts: str) -> str:
        return ":".join((self._p, "{" + run + "}", *parts))

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
        self, run: str, key: str, digest: str, body: str, stats: list[StatsDelta]
    ) -> AppendResult:
        keys = [self._k(run, "idem", key), self._k(run, "seq"), self._k(run, "wal")]
        keys += [self._k(run, "prompt", d.prompt_hash) for d in stats]
        args: list[str | int | float] = [digest, body, self._idem_ttl, key, self._stats_ttl]
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

    async def read_updates(self, run: str, after: str, count: int) -> list[LogEntry]:
        async with self._guard():
            rows = cast(
                list[tuple[str, dict[str, str]]],
                await self._redis.xrange(self._k(run, "wal"), min=f"({after}", count=count),
            )
        return [LogEntry(i, int(f["seq"]), f["key"], f["body"], f.get("fresh")) for i, f in rows]

    async def resume_log(self, run: str, version: int, applied_id: str) -> str:
        return applied_id  # the stream outlives the process

    async def log_length(self, run: str) -> int:
        async with self._guard():
            return int(await self._redis.xlen(self._k(run, "wal")))

    async def complete_update(self, run: str, key: str, response: str) -> None:
        async with self._guard():
            await self._complete(keys=[self._k(run, "idem", key)], args=[response])

    async def lookup_update(self, run: str, key: str) -> AppendResult | None:
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

    async def trim_updates(self, run: str, before: str) -> None:
        async with self._guard():
            await self._redis.xtrim(self._k(run, "wal"), minid=before, approximate=False)

    async def report_applied(self, run: str, replica: str, applied_id: str) -> None:
        async with self._guard():
            await self._redis.hset(self._k(run, "applied"), replica, f"{applied_id} {time.time()}")

    async def applied_floor(self, run: str, max_age_s: float) -> str | None:
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

    async def prompt_stats(self, run: str, hashes: list[str]) -> list[PromptStats | None]:
        async with self._guard():
            pipe = self._redis.pipeline(transaction=False)
            for h in hashes:
                pipe.hmget(self._k(run, "prompt", h), ["count", "sum", "last_seq"])
            rows = cast(list[list[Any]], await pipe.execute())
        return [
            PromptStats(int(c), float(s), int(last)) if c is not None else None
            for c, s, last in rows
        ]

    async def cached_scores(self, run: str, version: int, hashes: list[str]) -> list[float | None]:
        async with self._guard():
            values = await self._redis.hmget(self._k(run, "scores", str(version)), hashes)
        return [float(v) if v is not None else None for v in values]

    async def cache_scores(
        self, run: str, version: int, hashes: list[str], scores: list[float]
    ) -> None:
        key = self._k(run, "scores", str(version))
        async with self._guard():
            pipe = self._redis.pipeline(transaction=False)
            pipe.hset(key, mapping={h: repr(s) for h, s in zip(hashes, scores, strict=True)})
            pipe.expire(key, self._score_ttl)
            await pipe.execute()

    async def add_run(self, run: str) -> bool:
        async with self._guard():
            return bool(await self._redis.sadd(f"{self._p}:runs", run))

    async def remove_run(self, run: str) -> bool:
        async with self._guard():
            removed = bool(await self._redis.srem(f"{self._p}:runs", run))
            batch: list[str] = []
            async for key in self._redis.scan_iter(match=self._k(run, "*"), count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    await self._redis.unlink(*batch)
                    batch = []
            if batch:
                await self._redis.unlink(*batch)
        return removed

    async def list_runs(self) -> list[str]:
        async with self._guard():
            runs = cast(set[str], await self._redis.smembers(f"{self._p}:runs"))
        return sorted(set(runs) | {DEFAULT_RUN})

    async def close(self) -> None:
        await self._redis.aclose()
