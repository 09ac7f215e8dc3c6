"""A conversation lock shared by several Rasa servers, correct under races (Rasa issue #9213).

Why not Rasa's RedisLockStore: it issues and returns tickets by reading the whole lock from Redis,
changing it in Python and writing it back. Two servers that take a message of the same conversation at
the same moment both read "no ticket", both write ticket 0 and both go ahead: the two turns run at once,
and the SQL tracker store, which appends "the events it has not stored yet" by counting them, then drops
one turn's events. Releasing races the same way (a released lock can delete a ticket just issued by the
other server, whose message then fails with LockError).

Here every step is one Lua script, run atomically by Redis:
- issue: INCR a per-conversation counter and add the ticket to a sorted set (score = ticket number), so
  tickets are served first come, first served across all servers;
- poll: a ticket is served when it is the lowest live one; it renews its own lease while it waits;
- release: remove the ticket; the last one out deletes the keys.
A ticket carries a short lease (LEASE_S) that its holder renews while it works, so a server killed in the
middle of a turn holds the conversation for seconds, not for Rasa's 60 s lock lifetime. Time is Redis's own
clock (TIME), so servers' clocks do not matter.

When Redis cannot be reached, a server falls back to its own in-process lock (turns of one conversation on
the same server stay in order) and says so in its log: patients keep getting answers while Redis is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from rasa.core.lock import TicketLock
from rasa.core.lock_store import InMemoryLockStore, LockError, RedisLockStore

logger = logging.getLogger(__name__)

LEASE_S = 5.0  # a ticket not renewed for this long (its server died) stops holding the conversation
RENEW_EVERY_S = 1.0  # how often the holder renews its lease (well inside LEASE_S)
POLL_S = 0.02  # how often a waiting message looks again (Rasa polls once a second)
MAX_WAIT_S = 120.0  # a message waits at most this long for the turns before it (then LockError, as Rasa)
SOCKET_TIMEOUT_S = 2.0  # a hung Redis fails fast, and the in-process fallback takes over

# KEYS: queue (zset ticket -> ticket), leases (hash ticket -> expiry ms), counter. ARGV: lease ms.
_PRUNE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local leases = redis.call('HGETALL', KEYS[2])
for i = 1, #leases, 2 do
  if tonumber(leases[i + 1]) < now then
    redis.call('ZREM', KEYS[1], leases[i])
    redis.call('HDEL', KEYS[2], leases[i])
  end
end
"""
_ISSUE = _PRUNE + """
local ticket = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[1], ticket, ticket)
redis.call('HSET', KEYS[2], ticket, now + tonumber(ARGV[1]))
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], 2 * tonumber(ARGV[1]) + 60000) end
return ticket
"""
# ARGV: lease ms, ticket. Returns 1 when the ticket is served now, 0 when it waits, -1 when it is gone.
_POLL = _PRUNE + """
if not redis.call('HGET', KEYS[2], ARGV[2]) then return -1 end
redis.call('HSET', KEYS[2], ARGV[2], now + tonumber(ARGV[1]))
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], 2 * tonumber(ARGV[1]) + 60000) end
local first = redis.call('ZRANGE', KEYS[1], 0, 0)
if first[1] == ARGV[2] then return 1 end
return 0
"""
# ARGV: ticket.
_RELEASE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('DEL', KEYS[1], KEYS[2], KEYS[3]) end
return 1
"""


class AtomicRedisLockStore(RedisLockStore):
    """First come, first served conversation locks in Redis, safe with several Rasa servers."""

    def __init__(self, host: str = "localhost", port: int = 6379, db: int = 0, password: str | None = None,
                 use_ssl: bool = False, key_prefix: str = "spineclinic") -> None:
        import redis

        super().__init__(host=host, port=port, db=db, password=password, use_ssl=use_ssl, key_prefix=key_prefix,
                         socket_timeout=SOCKET_TIMEOUT_S)
        self.key_prefix = f"{key_prefix}:convlock:"
        self._issue = self.red.register_script(_ISSUE)
        self._poll = self.red.register_script(_POLL)
        self._release = self.red.register_script(_RELEASE)
        self.fallback = InMemoryLockStore()
        self._redis_errors: tuple[type[BaseException], ...] = (redis.exceptions.ConnectionError,
                                                                 redis.exceptions.TimeoutError)

    def _keys(self, conversation_id: str) -> list[str]:
        base = self.key_prefix + conversation_id
        return [base + ":queue", base + ":leases", base + ":counter"]

    # --- the locking used by Rasa's Agent.handle_message --------------------------------------------
    @contextlib.asynccontextmanager
    async def lock(self, conversation_id: str, lock_lifetime: float = 0,
                   wait_time_in_seconds: float = POLL_S) -> AsyncIterator[Any]:
        """Hold the conversation until the block ends; messages queue in arrival order across servers."""
        keys = self._keys(conversation_id)
        lease_ms = int(LEASE_S * 1000)
        async with contextlib.AsyncExitStack() as stack:
            try:
                ticket: int | None = int(self._issue(keys=keys, args=[lease_ms]))
            except self._redis_errors as error:
                logger.warning("Redis lock store unreachable (%s); using this server's own lock.", error)
                ticket = None
            if ticket is not None:
                stack.callback(self._release_quietly, keys, ticket)
            if ticket is None or not await self._wait_for_turn(conversation_id, keys, ticket, lease_ms):
                await stack.enter_async_context(self.fallback.lock(conversation_id, wait_time_in_seconds=POLL_S))
            else:
                stack.callback(asyncio.ensure_future(self._renew(keys, ticket, lease_ms)).cancel)
            yield ticket

    def _release_quietly(self, keys: list[str], ticket: int) -> None:
        try:
            self._release(keys=keys, args=[ticket])
        except self._redis_errors as error:  # the lease runs out by itself
            logger.warning("Could not release the Redis lock of a conversation (%s).", error)

    async def _wait_for_turn(self, conversation_id: str, keys: list[str], ticket: int, lease_ms: int) -> bool:
        """True once it is this ticket's turn; False when Redis became unreachable (use the local lock)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + MAX_WAIT_S
        while True:
            try:
                state = int(self._poll(keys=keys, args=[lease_ms, ticket]))
            except self._redis_errors as error:
                logger.warning("Redis lock store unreachable while waiting (%s); using this server's own lock.", error)
                return False
            if state == 1:
                return True
            if state == -1 or loop.time() > deadline:
                raise LockError(f"Could not acquire lock for conversation_id '{conversation_id}'.")
            await asyncio.sleep(POLL_S)

    async def _renew(self, keys: list[str], ticket: int, lease_ms: int) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY_S)
            try:
                self._poll(keys=keys, args=[lease_ms, ticket])
            except self._redis_errors:
                pass

    # --- the LockStore interface (inspection; Rasa's own ticket methods are not used) ----------------
    def get_lock(self, conversation_id: str) -> TicketLock | None:
        queue, _leases, _counter = self._keys(conversation_id)
        tickets = self.red.zrange(queue, 0, -1)
        if not tickets:
            return None
        lock = TicketLock(conversation_id)
        for number in tickets:
            lock.issue_ticket(LEASE_S)
            lock.tickets[-1].number = int(number)
        return lock

    def delete_lock(self, conversation_id: str) -> None:
        self.red.delete(*self._keys(conversation_id))

    def save_lock(self, lock: TicketLock) -> None:  # tickets are only ever changed by the scripts above
        raise NotImplementedError("AtomicRedisLockStore changes tickets only atomically, through lock()")
