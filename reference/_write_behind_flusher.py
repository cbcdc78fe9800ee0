"""The flusher of write-behind: moves queued writes from the Redis stream into the store.

Private to the package. ``WriteBehindCache.start``/``flush``/``stop`` and the flusher
command (``python -m templategen.reference.write_behind``) run it; the guarantees, the
failure modes and the wire format are in ``write_behind``'s docstring.

One flush, in order: claim entries that a crashed flusher left pending for
``claim_idle`` (XAUTOCLAIM), read this consumer's own pending entries (the ones a
failed or cut-short flush left behind), then new ones (XREADGROUP), up to
``read_limit`` entries: the flush's *window*. Decode them and keep the highest version
of each row. Then write the rows in batches of ``batch_size`` rows
(``store.upsert_many``), and after each batch's commit acknowledge and delete the
entries of its rows, their older writes included (and start the cached values' TTL).

Window and batch are two bounds. Coalescing merges only the writes a flusher holds at
once: a backlog of 10,000 writes over 100 rows, read 100 entries at a time, is 100
batches of 100 distinct rows, 10,000 row writes; read as one window it is 100 rows, one
batch. ``read_limit`` bounds the memory of a flush (that many entries, decoded);
``batch_size`` bounds one store transaction. Each entry is acknowledged with the batch
that commits its row, never before: a crash between two batches leaves the rest of
the window pending, every write of each row not yet committed included, and another
flusher claims it; a batch committed but not acknowledged is written again, a no-op.
Between batches a flush stops early when it is stopping, at its deadline, or once it
has spent ``claim_idle / 2`` on its window: the rest stays pending on this consumer,
and the next flush reads it again first (XREADGROUP from 0, which restarts the
entries' idle time), so no other flusher claims entries this one is working through.

Poison or outage. A batch the store keeps refusing (``max_retries`` retries) is written
row by row. A row refused alone is either poison (it can never be written) or met an
outage, and the two look the same from the row. What tells them apart is the store
taking some other write right after: then it is up, and the refusal was the row's own.
So a row goes to the dead-letter stream only when it was refused alone twice and, each
time, the store then took a write: a row written later in the same pass, or a *probe*.
Without that proof its entries stay pending and are retried, with backoff: an outage
never dead-letters a row, however long it lasts.

A refused row whose version counter is past the write refused (a newer write of it is
queued, in a later window: a window may hold part of a row's writes only) is not
dead-lettered: its entries are acknowledged, and the newer write decides. So the queued
writes of a poison row are dead-lettered once, as its latest write, even when they
fall into several windows.

The probe replays the last row this flusher committed, kept in memory. The store
already has that row at that version, so under the Store contract the replay writes
nothing: it succeeds exactly when the store takes writes. A batch of refused rows alone
(distinct poison rows, or one hot row whose writes coalesce into one) is therefore
settled at once by a flusher that has written anything since it started.

A flusher that has written nothing yet has no probe. Its refused batch stays pending,
and because pending entries are read first and a window's rows are written in order,
the next flush would meet the same rows first and stall the queue behind them for
good. So it remembers them as *suspects*, and a window's suspect rows are written after
its other rows. A window of suspects alone (their pending entries filled it: a hot row
written ``read_limit`` times, or that many refused rows) *reads past* them: new
entries, until one is of a row that is no suspect, or none are left, at most
``read_limit`` more. A healthy row written that way proves the store up (and becomes
the probe), and the suspects are settled by the probe at their next attempt. During an
outage such a flusher tries one batch per flush, of rows not tried yet while there are
any; entries it read past stay pending, claimable by other flushers once idle for
``claim_idle``. Suspects are kept only for the rows of the current window, and
forgotten at the first commit.

Why not another probe: replaying the refused row's own store version (read by
``get``) carries the same id, so a refusal tied to the row (a constraint or trigger on
it, a lock on its key, a poisoned id) fails the probe too, and is taken for an outage:
the stall again. An empty ``upsert_many([])`` is a no-op a store may answer without
asking its database, which would take an outage for a working store and dead-letter
healthy rows. Writing a probe row of our own would put rows in the user's table. A
store that refuses even the replay of a row it holds is treated as down.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from ._support import REDIS_OUTAGE_ERRORS, logger
from .errors import FlushTimeoutError, SerializationError
from .serializers import Serializer
from .store import Row, Store

__all__ = [
    "ACK_FLUSHED_LUA",
    "DEAD_LETTER_LUA",
    "RETIRE_CONSUMER_LUA",
    "Counters",
    "Flusher",
    "Layout",
    "Policy",
]

# KEYS[1] = stream; KEYS[2i], KEYS[2i+1] = data key and version key of flushed row i.
# ARGV[1] = group, ARGV[2] = ttl in ms, ARGV[3] = number of flushed rows n,
# ARGV[4 .. 3+n] = the version committed for each row, ARGV[4+n ..] = entry IDs.
# Runs only after the store committed. A value's TTL starts only if the cache still holds
# the version just committed: a write queued meanwhile stays dirty, without a TTL.
# The entries are acknowledged and deleted (XDEL bounds the stream). Returns n.
ACK_FLUSHED_LUA = """
local n = tonumber(ARGV[3])
for i = 1, n do
  if redis.call('GET', KEYS[2 * i + 1]) == ARGV[3 + i] then
    redis.call('PEXPIRE', KEYS[2 * i], ARGV[2])
  end
end
for i = 4 + n, #ARGV do
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  redis.call('XDEL', KEYS[1], ARGV[i])
end
return n
"""

# KEYS[1] = stream, KEYS[2] = dead-letter stream; ARGV[1] = group, ARGV[2] = entry ID,
# ARGV[3] = error text. Copies the entry's fields, after 'entry' and 'error', into the
# dead-letter stream, then acknowledges and deletes it: one step, so an entry is never
# in both streams nor in neither. An entry already gone (another flusher dead-lettered
# it) is not copied twice. Returns 1 if moved, 0 if it was gone.
DEAD_LETTER_LUA = """
local found = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if #found == 1 then
  redis.call('XADD', KEYS[2], '*', 'entry', ARGV[2], 'error', ARGV[3], unpack(found[1][2]))
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return #found
"""

# KEYS[1] = stream; ARGV[1] = group, ARGV[2] = consumer. Removes a stopped flusher's
# consumer from the group, but only while it holds no pending entries: DELCONSUMER
# drops a consumer's pending entries, and nothing would ever deliver them again.
RETIRE_CONSUMER_LUA = """
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) == 0 then
  return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return -1
"""

_MAX_BACKOFF = 30.0
# While draining, the entries left may be pending on another live flusher; poll for them.
_DRAIN_POLL = 0.05

Entry = tuple[bytes, dict[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Layout:
    """Where write-behind keeps things in Redis (the wire format in ``write_behind``)."""

    prefix: str
    stream: str
    group: str

    @property
    def dead_letters(self) -> str:
        return f"{self.stream}:dead"

    def data_key(self, doc_id: str) -> str:
        return f"{self.prefix}:data:{doc_id}"

    def version_key(self, doc_id: str) -> str:
        return f"{self.prefix}:version:{doc_id}"


@dataclass(frozen=True, slots=True)
class Policy:
    """How the flusher batches, waits and retries."""

    ttl_ms: int
    batch_size: int  # rows per store write
    read_limit: int  # entries per window
    flush_interval: float
    claim_idle_ms: int
    max_retries: int
    backoff: float

    def delay(self, failures: int) -> float:
        """Exponential backoff after the ``failures``-th failure in a row, capped."""
        return min(self.backoff * 2.0 ** min(failures - 1, 20), max(self.backoff, _MAX_BACKOFF))


class Counters:
    """Event counts of one cache; ``set`` callers and the flusher thread add to them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.queued = self.flushed = self.retried = self.dead_lettered = 0

    def add(self, *, queued: int = 0, flushed: int = 0, retried: int = 0, dead: int = 0) -> None:
        with self._lock:
            self.queued += queued
            self.flushed += flushed
            self.retried += retried
            self.dead_lettered += dead


class StoreUnavailable(Exception):
    """The store refused a whole batch and no write proved it up; entries stay pending."""


_RETRYABLE: tuple[type[BaseException], ...] = (StoreUnavailable, *REDIS_OUTAGE_ERRORS)


@dataclass
class _Window:
    """The entries one flush read, coalesced: the highest version of each row wins."""

    read: int = 0  # entries read, whatever became of them
    winners: dict[str, tuple[Row, bytes]] = field(default_factory=dict)
    superseded: defaultdict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    gone: list[bytes] = field(default_factory=list)  # deleted while pending: acknowledge only
    undecodable: list[tuple[bytes, str]] = field(default_factory=list)

    def entry_ids(self, rows: list[Row]) -> list[bytes]:
        """Every entry of these rows: the winning write and the older ones it supersedes."""
        return [i for row in rows for i in (self.winners[row.id][1], *self.superseded[row.id])]


def _entries(reply: Any) -> list[Entry]:
    if isinstance(reply, dict):  # RESP3: {stream: [entries]}
        return [entry for value in reply.values() for entry in value[0]]
    return [entry for _, entries in reply for entry in entries]


class Flusher:
    """Reads windows through the consumer group and writes them to the store in batches."""

    def __init__(
        self,
        client: redis.Redis,
        store: Store,
        serializer: Serializer,
        layout: Layout,
        policy: Policy,
        counters: Counters,
    ) -> None:
        # Unique per flusher: two flushers under one name would each take the other's
        # in-flight entries for their own failed ones, and no crash could be told apart.
        self.consumer = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._client = client
        self._store = store
        self._serializer = serializer
        self._layout = layout
        self._policy = policy
        self._counters = counters
        self._ack = client.register_script(ACK_FLUSHED_LUA)
        self._dead_letter_script = client.register_script(DEAD_LETTER_LUA)
        self._retire = client.register_script(RETIRE_CONSUMER_LUA)
        self._claim_from: bytes | str = "0-0"
        # The background thread and flush() share the consumer name: one window at a time.
        self._window_lock = threading.Lock()
        # The last row this flusher committed: replayed as a no-op to probe the store.
        self._probe: Row | None = None
        # Rows refused with no probe to judge them: written after the others, and read
        # past when a window holds nothing else, or they would be all this flusher tries.
        self._suspects: set[str] = set()

    def ensure_group(self) -> None:
        """Create the stream and group; from ID 0, so writes queued before any flusher count."""
        try:
            self._client.xgroup_create(
                self._layout.stream, self._layout.group, id="0", mkstream=True
            )
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def retire(self) -> None:
        self._retire(keys=[self._layout.stream], args=[self._layout.group, self.consumer])

    def run(self, stopping: threading.Event) -> None:
        """The background loop: a window, then the rest of flush_interval unless there is more."""
        failures = 0
        while not stopping.is_set():
            started = time.monotonic()
            try:
                _, more = self.flush_window(abort=stopping)
            except StoreUnavailable as exc:
                failures += 1
                logger.warning("write-behind: store unavailable, writes stay queued: %s", exc)
            except REDIS_OUTAGE_ERRORS as exc:
                failures += 1
                if failures == 1:
                    logger.warning("write-behind: Redis unavailable, flusher waiting: %s", exc)
            except Exception:  # a bug or an odd reply must not end the thread in silence
                failures += 1
                logger.exception("write-behind: flusher error; retrying")
            else:
                if failures:
                    logger.warning("write-behind: flusher running again")
                failures = 0
                if not more:
                    stopping.wait(self._policy.flush_interval - (time.monotonic() - started))
                continue
            stopping.wait(self._policy.delay(failures))

    def drain(self, deadline: float, timeout: float) -> None:
        """Flush until no entry queued before this call is left; FlushTimeoutError at deadline."""
        last_error: BaseException | None = None
        failures = 0
        mark: bytes | None = None
        while True:
            try:
                if mark is None:
                    newest = self._client.xrevrange(self._layout.stream, count=1)
                    if not newest:
                        return
                    mark = cast(bytes, newest[0][0])
                if not self._client.xrange(self._layout.stream, "-", mark, count=1):
                    return
                read, _ = self.flush_window(deadline=deadline)
                failures, pause = 0, (_DRAIN_POLL if read == 0 else 0.0)
            except _RETRYABLE as exc:
                last_error, failures = exc, failures + 1
                pause = self._policy.delay(failures)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FlushTimeoutError(
                    f"write-behind: queued writes not all flushed within {timeout:g}s (last "
                    f"error: {last_error or 'none'}); they stay in stream "
                    f"{self._layout.stream!r}, pending for the next flusher"
                )
            time.sleep(min(pause, remaining))

    def flush_window(
        self, *, abort: threading.Event | None = None, deadline: float | None = None
    ) -> tuple[int, bool]:
        """Flush one window: (entries read, whether more may be waiting right now).

        StoreUnavailable: the batch it was writing and the rest of the window stay pending.
        """
        with self._window_lock:
            read_at = time.monotonic()
            window = self._read_window()
            if not window.read:
                return 0, False
            for entry_id, error in window.undecodable:
                self._dead_letter(entry_id, error)
            if window.gone:
                self._ack(keys=[self._layout.stream], args=[self._layout.group, 0, 0, *window.gone])
            rows = [row for row, _ in window.winners.values()]
            if self._probe is None and self._suspects:
                rows.sort(key=lambda row: row.id in self._suspects)  # stable: others first
            size = self._policy.batch_size
            for start in range(0, len(rows), size):
                if start and self._cut_short(read_at, abort, deadline):
                    return window.read, True  # the rest stays pending, read first next time
                self._flush_batch(window, rows[start : start + size], abort, deadline)
            return window.read, window.read >= self._policy.read_limit

    def _cut_short(
        self, read_at: float, abort: threading.Event | None, deadline: float | None
    ) -> bool:
        """Stop between batches: stopping, at the deadline, or half-way to claim_idle.

        Past ``claim_idle`` another flusher may claim the entries not yet written; the
        next flush of this one reads them again instead, which restarts their idle time.
        """
        now = time.monotonic()
        return (
            (abort is not None and abort.is_set())
            or (deadline is not None and now >= deadline)
            or (now - read_at) * 1000 >= self._policy.claim_idle_ms / 2
        )

    def _flush_batch(
        self,
        window: _Window,
        rows: list[Row],
        abort: threading.Event | None,
        deadline: float | None,
    ) -> None:
        """Write one batch of rows, then settle the entries of the rows written or refused."""
        written, rejected = self._write(rows, abort, deadline)
        if written:
            ids = window.entry_ids(written)
            self._ack(
                keys=[self._layout.stream, *self._row_keys(written)],
                args=[
                    self._layout.group,
                    self._policy.ttl_ms,
                    len(written),
                    *(row.version for row in written),
                    *ids,
                ],
            )
            self._counters.add(flushed=len(ids))
        if not rejected:
            return
        layout = self._layout
        latest = self._client.mget([layout.version_key(row.id) for row, _ in rejected])
        for (row, error), version in zip(rejected, latest, strict=True):
            entry_id, superseded = window.winners[row.id][1], window.superseded[row.id]
            if version is not None and int(version) > row.version:
                # A newer write of the row is queued (a later window has it) or settled:
                # it decides, so this one is acknowledged, not dead-lettered as well.
                self._ack(keys=[layout.stream], args=[layout.group, 0, 0, entry_id, *superseded])
                continue
            # Older writes of a rejected row are superseded by it: settle them unwritten.
            if superseded:
                self._ack(keys=[layout.stream], args=[layout.group, 0, 0, *superseded])
            self._dead_letter(entry_id, error)

    def _row_keys(self, rows: list[Row]) -> list[str]:
        layout = self._layout
        return [
            key for row in rows for key in (layout.data_key(row.id), layout.version_key(row.id))
        ]

    def _read_window(self) -> _Window:
        layout, limit = self._layout, self._policy.read_limit
        window = _Window()
        try:
            # Entries idle on any consumer past claim_idle (a crashed flusher's) become ours;
            # the cursor walks the pending list across calls instead of rescanning its head.
            claimed = self._client.xautoclaim(
                layout.stream,
                layout.group,
                self.consumer,
                self._policy.claim_idle_ms,
                start_id=self._claim_from,
                count=limit,
            )
            self._claim_from = claimed[0]
            # Our pending entries first: a failed or cut-short flush left them, and
            # XAUTOCLAIM added some. Reading them again restarts their idle time.
            self._decode(
                window,
                _entries(
                    self._client.xreadgroup(
                        layout.group, self.consumer, {layout.stream: "0"}, limit
                    )
                ),
            )
            if window.read < limit:
                self._decode(window, self._read_new(limit - window.read))
            if (
                window.read >= limit
                and self._probe is None
                and window.winners
                and window.winners.keys() <= self._suspects
            ):
                self._read_past_suspects(window)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # A Redis that lost its data (restart without persistence) lost the group too.
            self.ensure_group()
            return _Window()
        self._suspects.intersection_update(window.winners)  # only this window's rows count
        return window

    def _read_new(self, count: int) -> list[Entry]:
        layout = self._layout
        return _entries(
            self._client.xreadgroup(layout.group, self.consumer, {layout.stream: ">"}, count)
        )

    def _read_past_suspects(self, window: _Window) -> None:
        """New entries until one is of a row that is no suspect, or none are left."""
        limit, read = self._policy.read_limit, 0
        while read < limit:
            chunk = self._read_new(min(self._policy.batch_size, limit - read))
            read += len(chunk)
            self._decode(window, chunk)
            if not chunk or not window.winners.keys() <= self._suspects:
                return

    def _decode(self, window: _Window, entries: list[Entry]) -> None:
        window.read += len(entries)
        for entry_id, fields in entries:
            if not fields:
                window.gone.append(entry_id)
                continue
            try:
                doc_id = fields[b"id"].decode("utf-8")
                version = int(fields[b"version"])
                data = self._serializer.loads(fields[b"payload"])
            except (KeyError, ValueError, SerializationError) as exc:
                window.undecodable.append((entry_id, f"undecodable entry: {exc!r}"))
                continue
            current = window.winners.get(doc_id)
            if current is None or version > current[0].version:
                if current is not None:
                    window.superseded[doc_id].append(current[1])
                window.winners[doc_id] = (Row(doc_id, data, version), entry_id)
            else:
                window.superseded[doc_id].append(entry_id)

    def _write(
        self, rows: list[Row], abort: threading.Event | None, deadline: float | None
    ) -> tuple[list[Row], list[tuple[Row, str]]]:
        """Write rows, retrying; returns (written, rejected with error text)."""
        last: BaseException | None = None
        for attempt in range(self._policy.max_retries + 1):
            if attempt and not self._pause(self._policy.delay(attempt), abort, deadline):
                raise StoreUnavailable(f"retries cut short: {last!r}") from last
            try:
                self._store.upsert_many(rows)
            except Exception as exc:  # the Store contract: any exception is a failed write
                last = exc
                self._counters.add(retried=1)
            else:
                self._committed(rows[-1])
                return rows, []
        return self._isolate(rows, last)

    def _committed(self, row: Row) -> None:
        """The store took a write: its row is the probe now, and suspects need none."""
        self._probe = row
        self._suspects.clear()

    def _isolate(
        self, rows: list[Row], last: BaseException | None
    ) -> tuple[list[Row], list[tuple[Row, str]]]:
        """Write rows one by one, to tell poison rows from a store that is down.

        A row is rejected only if it failed alone twice and, each time, the store took a
        write after it (a later row, or the probe). Rows without that proof stay pending;
        if no row was written either, StoreUnavailable: the whole batch stays pending.
        """
        written: list[Row] = []
        trying = rows
        errors: dict[str, BaseException] = {}
        for _ in range(2):  # a second chance: a store back mid-pass must not reject rows
            failed: list[Row] = []
            took_one_since = False  # has the store taken a write since the last refusal?
            for row in trying:
                try:
                    self._store.upsert_many([row])
                except Exception as exc:
                    errors[row.id] = exc
                    failed.append(row)
                    took_one_since = False
                    self._counters.add(retried=1)
                else:
                    written.append(row)
                    self._committed(row)
                    took_one_since = True
            if not failed:
                return written, []
            if not (took_one_since or self._store_takes_writes()):
                # Maybe an outage: nothing is rejected, the refused rows stay pending.
                if written:
                    return written, []
                if self._probe is None:  # nothing to judge them by: try other rows first
                    self._suspects.update(row.id for row in rows)
                raise StoreUnavailable(
                    f"no row of the batch could be written, and no write proved the store "
                    f"up: {last!r}"
                ) from last
            trying = failed
        return written, [
            (row, f"{type(errors[row.id]).__name__}: {errors[row.id]}") for row in trying
        ]

    def _store_takes_writes(self) -> bool:
        """Replay the row this flusher committed last: a no-op that works if the store is up.

        The store holds that row at that version already, so the Store contract makes the
        replay write nothing. False when it fails, or when there is no such row yet.
        """
        if self._probe is None:
            return False
        try:
            self._store.upsert_many([self._probe])
        except Exception:
            self._counters.add(retried=1)
            return False
        return True

    def _dead_letter(self, entry_id: bytes, error: str) -> None:
        layout = self._layout
        moved = self._dead_letter_script(
            keys=[layout.stream, layout.dead_letters], args=[layout.group, entry_id, error]
        )
        if moved:
            self._counters.add(dead=1)
            logger.warning(
                "write-behind: entry %s moved to dead-letter stream %r: %s",
                entry_id.decode(),
                layout.dead_letters,
                error,
            )

    @staticmethod
    def _pause(seconds: float, abort: threading.Event | None, deadline: float | None) -> bool:
        """Wait before a retry; False if stopping or the deadline is too near to retry."""
        if deadline is not None:
            seconds = min(seconds, deadline - time.monotonic())
            if seconds <= 0:
                return False
        if abort is not None:
            return not abort.wait(seconds)
        time.sleep(seconds)
        return True
