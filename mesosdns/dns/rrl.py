"""Response rate limiting (``rrl``): BIND's ``rate-limit`` for UDP replies.

A DNS server answering UDP can be made to send its answers to a spoofed
address (reflection). Rate limiting counts, per client prefix, how often the
*same response* is sent, and stops sending it above a rate; a real client
still gets through, because every ``slip``-th limited response becomes a
small truncated reply that makes it retry over TCP, which is never limited.

What we follow from BIND 9's ``rate-limit`` (where the issue is silent):

- **An account** is a (client prefix, response) pair. The client prefix is
  the source address cut to ``ipv4PrefixLength`` (24) or
  ``ipv6PrefixLength`` (56) bits; an IPv4-mapped IPv6 source counts as IPv4.
  The response is identified as BIND does:

  * an answer or NODATA (NOERROR): the question's name (case-insensitive),
    type and class;
  * NXDOMAIN: the owner of the SOA in the authority section, i.e. the zone,
    so that a flood of random names below one zone shares one account (the
    question name when the reply carries no SOA);
  * any other RCODE (REFUSED, SERVFAIL, FORMERR, NOTIMP): one error account
    per prefix, whatever the name.

  NXDOMAIN and error accounts earn ``responsesPerSecond`` like the others
  (BIND's ``nxdomains-per-second`` and ``errors-per-second`` default to it;
  we have no separate keys).
- **Credit and debt** (a token bucket): a new account starts with
  ``responsesPerSecond`` credits and earns that many every second, never
  holding more. Each response costs one. A response that would leave the
  account negative is limited, and still debited, down to
  ``-window * responsesPerSecond``: a client that stops flooding is
  answered again at most ``window`` seconds later. Time counts in whole
  seconds (the clock is read once per batch of datagrams), as BIND's.
- **slip**: of the limited responses of one account, every ``slip``-th is
  *slipped*, the others dropped. 0 drops them all, 1 slips them all, 2 (the
  default) every second one. A slipped reply is the response's header (ID,
  opcode, AA, RD, RA, RCODE: NXDOMAIN stays NXDOMAIN) with TC set and the
  question only: no answer, authority or OPT record, so it is never larger
  than the query. An error response (REFUSED, SERVFAIL, ...) is not
  truncated but sent as it is at the slip rate ("leaked", as BIND does).
- **What is limited**: every UDP reply the server makes itself: the hot path
  (prepacked answers), the negative fast path, the general path, operator
  zones' own answers and REFUSED to clients outside ``allowRecursion``.
  **Not limited**: TCP (a TCP client cannot spoof its address), and replies
  relayed from an upstream (``resolvers``, ``zoneResolvers``, an operator
  zone's forwarders). Those are recursion: BIND's RRL applies to the
  responses it makes from its zones (and cache); a forwarded reply goes
  only to ``allowRecursion`` clients, strangers get REFUSED (limited as an
  error), and the forwarder's in-flight cap bounds them.

One table for all serving processes (``workers`` > 1): the accounts live
in a fixed table of ``TABLE_SLOTS`` buckets in a shared ``mmap`` (`RRLTable`): the supervisor
makes the file in the run directory before it forks the workers, and every
worker (replacements too) maps the same file, so the limit holds per server,
not per worker, however SO_REUSEPORT spreads a client's source ports. A
bucket is found by hashing (prefix, response) with Python's ``hash``, which
is the same in every process forked from one interpreter. The table is
direct-mapped: two accounts that hash to one bucket share it; the newer
takes it over with full credit (so under a flood of more than about
``TABLE_SLOTS`` distinct accounts, some are forgotten early, which only
errs on the side of answering). Updates are not atomic across processes:
two workers debiting one bucket at the same instant can lose a debit, so
the limit is approximate under races.

With one worker there is no shared table: the worker keeps the accounts in
a dict of its own (`RateLimiter.local`, prefix -> key -> the same state
word).

**Counters for the hot path.** Most replies are the hot path's (prepacked
answers, `mesosdns.dns.hotview`), and most accounts never come near their
rate. For up to ``FAST_PREFIXES`` client prefixes at a time, the accounts
of hot-path replies are a byte each in a dense array per prefix
(`RateLimiter.counters`), indexed by the reply's slot in the hot view: how
many replies the account had in this second. The arrays start again at each
second. With one worker, an account that starts a second *clean* (full
credit: no debt left) can have up to ``min(rate, 254)`` replies in it
without its state word being read: its count is all that is needed. When
the count reaches that, it is turned into the state word (``rate`` less the
count) and the counter marked 255: from then on in this second the dict
decides, as for an account that was not clean (those are marked 255 when
the prefix's array is made). So the verdicts are exactly the token bucket's.
With several workers, a counter is the reservation taken from the shared
table (below), spent without touching it. A key dropped from the hot view
gives its slot to another only at a new second; a name that leaves the
table and comes back starts again clean on the hot path (forgotten early).

With several, a reply does not touch the shared table each time either: the
first reply of an account in a second takes a reservation of
``rate / (2 * workers)`` credits (at least one) from its bucket at once, and
the worker spends it from its own dict (emptied at each new second) until it
runs out. Credit one worker reserved and did not spend is not available to
another in the same second: an account whose replies SO_REUSEPORT spreads
over N workers can be limited up to ``(N - 1) / (2 * N)`` of the rate
early, never late.

Either dict holds at most ``LOCAL_ACCOUNTS`` accounts; past that it is
emptied (under a flood of many distinct accounts, some are forgotten early:
again only errs on the side of answering).
"""

from __future__ import annotations

import mmap
import os
import socket
import time
from collections.abc import Callable
from typing import Any, Final

from mesosdns.dns import wire
from mesosdns.dns.hotview import HotView
from mesosdns.dns.settings import RRLSettings

# verdicts of `RateLimiter.check`
OK: Final = 0
DROP: Final = 1
SLIP: Final = 2

TABLE_SLOTS: Final = 1 << 18  # buckets: 4 MiB of shared memory (16 bytes each)
# A bucket is two int64 words: the account's tag (its hash), and its state:
# bits 0-23 the second it was last debited (modulo 2**24), bits 24-31 the
# limited responses since the last slip, bits 32-63 the balance (signed).
# One word for the state keeps the common case (credit left in the same
# second) to two reads and one write.
_WORDS: Final = 2
SECOND_MASK: Final = 0xFFFFFF
ONE: Final = 1 << 32  # one credit in the state word
_MAX_DEBT: Final = (1 << 30) - 1  # the balance's floor fits its 32 bits
TABLE_FILE: Final = "rrl.table"  # in the run directory
# a worker's own accounts (one worker) or reservations (several) at most; past
# it they are all forgotten (and start again with full credit)
LOCAL_ACCOUNTS: Final = 1 << 16
# the key of the per-prefix error account (every other key is longer)
ERROR_KEY: Final = b"E"
_NX: Final = b"N"  # NXDOMAIN keys: this, then the zone's wire name
_PLAIN_COUNTS: Final = b"\x00\x01\x00\x00\x00\x00\x00\x00"
_MAX_CACHED_PREFIXES: Final = 4096
# client prefixes whose hot-path accounts are counters at a time (each an
# array of one byte per slot of the hot view)
FAST_PREFIXES: Final = 64
_MARKED: Final = 255  # a counter whose account is the dict's in this second
_COUNTED: Final = 254  # a counter's highest count


class RRLTable:
    """The buckets: ``slots`` x 4 int64 words in one shared mapping.

    With ``path`` the mapping is that file's (created or grown to size), so
    that every process that maps it shares the buckets; without, it is an
    anonymous shared mapping (shared with children forked after it).
    """

    def __init__(self, slots: int = TABLE_SLOTS, path: str | None = None) -> None:
        if slots <= 0 or slots & (slots - 1):
            raise ValueError("slots must be a power of two")
        size = slots * _WORDS * 8
        if path is None:
            self._mm = mmap.mmap(-1, size)
        else:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                if os.fstat(fd).st_size < size:
                    os.ftruncate(fd, size)
                self._mm = mmap.mmap(fd, size)
            finally:
                os.close(fd)
        self.slots = slots
        self.words = memoryview(self._mm).cast("q")

    @classmethod
    def create(cls, path: str, slots: int = TABLE_SLOTS) -> None:
        """Make the table file (zeroed: every bucket empty) at ``path``."""
        with open(path, "wb") as f:
            f.truncate(slots * _WORDS * 8)

    def close(self) -> None:
        self.words.release()
        self._mm.close()


class RateLimiter:
    """The accounts of one server (see the module docstring).

    ``clock`` gives seconds (monotonic; tests inject their own), read by
    the caller once per batch of datagrams, which calls `second` with it and
    then `take` per reply. ``local`` (prefix -> key -> state word) holds,
    with one worker (``solo``), the accounts themselves; with several, the
    credit reserved from the shared table in this second, as a state word
    of that balance. The caller may do take's common cases itself
    (`mesosdns.dns.protocol`'s hot loop): a word of this second with a
    balance of at least one (``ONE``): subtract ``ONE``; solo, a word of an
    earlier second without debt: ``refill`` plus its slip count plus this
    second. `check` debits the shared table alone, one reply.
    """

    def __init__(
        self,
        settings: RRLSettings,
        table: RRLTable | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.rate = min(max(1, settings.responses_per_second), _MAX_DEBT)
        self.floor = -min(settings.window * self.rate, _MAX_DEBT)
        self.slip = settings.slip
        self.v4_shift = 32 - settings.ipv4_prefix_length
        self.v6_shift = 128 - settings.ipv6_prefix_length
        self.solo = settings.workers <= 1
        # solo, the table is only `check`'s (its pages are never touched)
        self.table = table if table is not None else RRLTable()
        self.words = self.table.words
        self.mask = self.table.slots - 1
        self.clock = clock
        self.prefixes: dict[object, int] = {}
        # with several workers, a reservation is a share of the rate
        self.want = max(1, self.rate // (2 * max(1, settings.workers)))
        # the state word of an account refilled in a later second, less one
        self.refill = (self.rate - 1) * ONE
        self.local: dict[object, dict[bytes, int]] = {}
        self.local_second = -1
        self.local_entries = 0
        # hot-path counters, this second: prefix -> array, host -> the same
        self.hot = HotView()
        self.counters: dict[int, bytearray] = {}
        self.arrays: dict[object, bytearray] = {}
        self.size = 0  # the arrays' length
        # a count below this is answered from the counter alone
        self.limit = min(self.rate, _COUNTED) if self.solo else _COUNTED

    def second(self, now: int) -> None:
        """Start second ``now`` (with several workers, the reservations of
        an earlier one lapse), before a batch of replies."""
        if now != self.local_second:
            self.local_second = now
            if not self.solo and self.local:
                self._forget()
            # an account counted in the second that ended is clean again
            self.counters.clear()
            self.arrays.clear()
            self.hot.recycle()
        if self.hot.capacity > self.size:
            self._grow()

    def set_hot(self, hot: HotView) -> None:
        """Serve ``hot`` from now on: the counts held for the old view's
        slots go to the accounts' state words first (as of the second they
        were counted in)."""
        if hot is self.hot:
            return
        old, self.hot = self.hot, hot
        if self.solo and self.counters:
            sec = self.local_second
            byslot: dict[int, bytes] | None = None
            for pfx, counts in self.counters.items():
                if counts.count(0) + counts.count(_MARKED) == len(counts):
                    continue
                if byslot is None:
                    byslot = {v[1]: k for k, v in old.items()}
                for slot, c in enumerate(counts):
                    if 0 < c < _MARKED and slot in byslot:
                        self._handover(pfx, byslot[slot], c, sec)
        self.counters.clear()
        self.arrays.clear()
        self.size = 0
        self._grow()

    def _grow(self) -> None:
        cap = self.hot.capacity
        size = cap + cap // 4 + 1024
        fill = b"\x00" if self.solo else bytes((_MARKED,))
        for counts in self.counters.values():
            counts.extend(fill * (size - len(counts)))
        self.size = size

    def _handover(self, pfx: int, key: bytes, count: int, now: int) -> None:
        """Make a clean account's state word from its count in second
        ``now`` (the slips since the last slipped reply carried over)."""
        mine = self._mine(pfx, key)
        old = mine.get(key)
        slips = 0 if old is None else old & 0xFF000000
        mine[key] = (self.rate - count) * ONE + slips + (now & SECOND_MASK)

    def _mine(self, pfx: int, key: bytes) -> dict[bytes, int]:
        """The dict of ``pfx``'s own accounts, about to hold ``key``'s."""
        mine = self.local.get(pfx)
        if mine is None or key not in mine:
            if self.local_entries >= LOCAL_ACCOUNTS:
                self._forget()  # forgotten accounts start again with full credit
                mine = None
            if mine is None:
                mine = self.local[pfx] = {}
            self.local_entries += 1
        return mine

    def _counted(self, host: object, pfx: int, key: bytes, slot: int, now: int) -> int | None:
        """A hot-path reply through ``pfx``'s counters: OK, DROP or SLIP, or
        None when the account's state word decides (no counters for the
        prefix, or it was marked in this second)."""
        counts = self.counters.get(pfx)
        if counts is None:
            if len(self.counters) >= FAST_PREFIXES or not self.hot.slotted:
                return None
            counts = self._counters_for(pfx, now)
        if len(self.arrays) < _MAX_CACHED_PREFIXES:
            self.arrays[host] = counts
        c = counts[slot]
        if c < self.limit:
            counts[slot] = c + 1
            return OK
        if self.solo:
            if c != _MARKED:  # the count becomes the state word
                self._handover(pfx, key, c, now)
                counts[slot] = _MARKED
            return None
        got = self.reserve(pfx, key, now, min(self.want, _COUNTED))
        if got <= 0:
            return DROP if got == 0 else SLIP
        counts[slot] = _MARKED - got  # got - 1 left to spend
        return OK

    def _counters_for(self, pfx: int, now: int) -> bytearray:
        """A new array of counters for ``pfx`` in this second: one worker,
        zero, but 255 for the accounts in the dict that are not clean."""
        if not self.solo:
            counts = bytearray(bytes((_MARKED,)) * self.size)
        else:
            counts = bytearray(self.size)
            mine = self.local.get(pfx)
            if mine:
                hot, rate, sec = self.hot, self.rate, now & SECOND_MASK
                for key, state in mine.items():
                    v = hot.get(key)
                    if v is not None:
                        elapsed = (sec - state) & SECOND_MASK
                        if not elapsed or (state >> 32) + elapsed * rate < rate:
                            counts[v[1]] = _MARKED
        self.counters[pfx] = counts
        return counts

    def _forget(self) -> None:
        # in place: the protocol's loop holds a reference for its batch
        self.local.clear()
        self.local_entries = 0

    def take(self, addr: Any, key: bytes, now: int) -> int:
        """One reply to ``addr`` from account ``key`` at second ``now``
        (`second` already called for it): OK, DROP or SLIP."""
        host = addr[0] if isinstance(addr, tuple) and addr else None
        pfx = self.prefixes.get(host)
        if pfx is None:
            pfx = self.prefix(addr)
        if key[0] == 0:  # a question's key (see response_key): maybe counted
            v = self.hot.get(key)
            if v is not None:
                verdict = self._counted(host, pfx, key, v[1], now)
                if verdict is not None:
                    return verdict
        mine = self.local.get(pfx)
        state = None if mine is None else mine.get(key)
        sec = now & SECOND_MASK
        if state is None:
            mine = self._mine(pfx, key)
        elif state & SECOND_MASK == sec:
            if state >= ONE:  # credit left in this second
                mine[key] = state - ONE  # type: ignore[index]
                return OK
        elif self.solo and state >= 0:  # a later second, no debt: full credit
            mine[key] = self.refill + (state & 0xFF000000) + sec  # type: ignore[index]
            return OK
        assert mine is not None
        if self.solo:
            state, verdict = self._debit(state, sec, 1)
            mine[key] = state
            return OK if verdict > 0 else DROP if verdict == 0 else SLIP
        got = self.reserve(pfx, key, now, self.want)
        if got <= 0:
            return DROP if got == 0 else SLIP
        mine[key] = (got - 1) * ONE + sec
        return OK

    def now(self) -> int:
        return int(self.clock())

    # -- the client --------------------------------------------------------

    def prefix(self, addr: Any) -> int:
        """The client prefix of a socket address, as the int its accounts'
        tags are made with (``prefix ^ hash(key)``; cached per host)."""
        host = addr[0] if isinstance(addr, tuple) and addr else None
        pfx = self.prefixes.get(host)
        if pfx is None:
            # a hash of the prefix: spreads neighbouring prefixes over the
            # table, and is the same in every forked worker
            pfx = hash((self._prefix(host), 0x5252))
            if len(self.prefixes) >= _MAX_CACHED_PREFIXES:
                self.prefixes.clear()
            self.prefixes[host] = pfx
        return pfx

    def _prefix(self, host: object) -> int:
        """IPv4 prefixes are >= 0, IPv6 ones < 0; -1 for what is not an IP."""
        if not isinstance(host, str):
            return -1
        text = host.partition("%")[0]
        try:
            if ":" in text:
                value = int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
                if value >> 32 == 0xFFFF:  # IPv4-mapped
                    return (value & 0xFFFFFFFF) >> self.v4_shift
                return -2 - (value >> self.v6_shift)
            return int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big") >> self.v4_shift
        except (OSError, ValueError):
            return -1

    # -- the accounts ------------------------------------------------------

    def check(self, pfx: int, key: bytes, now: int) -> int:
        """Debit the account (``pfx``, ``key``) one reply at second ``now``
        in the shared table: OK, DROP or SLIP."""
        got = self.reserve(pfx, key, now, 1)
        return OK if got > 0 else DROP if got == 0 else SLIP

    def reserve(self, pfx: int, key: bytes, now: int, want: int) -> int:
        """Take up to ``want`` (>= 1) replies' credit from the account
        (``pfx``, ``key``) at second ``now``: how many were granted (>= 1),
        or, the account being out of credit and debited one, 0 (drop) or -1
        (slip)."""
        h = pfx ^ hash(key)
        words = self.words
        i = (h & self.mask) << 1
        # another account's bucket is taken over as a new account's
        state = words[i + 1] if words[i] == h else None
        words[i + 1], got = self._debit(state, now & SECOND_MASK, want)
        words[i] = h
        return got

    def _debit(self, state: int | None, now: int, want: int) -> tuple[int, int]:
        """An account's state word (None: a new account, full credit) at
        second ``now`` (masked) less up to ``want`` replies: the new word,
        and how many were granted (>= 1), or 0 (drop) or -1 (slip) when the
        account is out of credit (debited one, down to the floor)."""
        rate = self.rate
        if state is None:
            got = min(want, rate)
            return (rate - got) * ONE + now, got
        balance = state >> 32
        slips = (state >> 24) & 0xFF
        elapsed = (now - state) & SECOND_MASK
        if elapsed:
            balance = min(rate, balance + elapsed * rate)
        if balance >= 1:
            got = min(want, balance)
            return (balance - got) * ONE + (slips << 24) + now, got
        balance = max(self.floor, balance - 1)
        verdict = 0
        slip = self.slip
        if slip:
            slips += 1
            if slips >= slip:
                slips = 0
                verdict = -1
        return balance * ONE + (slips << 24) + now, verdict


# -- responses ------------------------------------------------------------


def _question_end(reply: bytes) -> int:
    """The offset after the (uncompressed) question's name, or -1."""
    size = wire.walk_name(reply[wire.HEADER_LEN :])
    return -1 if size < 0 else wire.HEADER_LEN + size


def response_key(reply: bytes, zone_of: Callable[[bytes], bytes | None] | None = None) -> bytes:
    """The account key of a reply the server made (see the module docstring).

    NOERROR: the counts of a plain query, the question's name lower-cased,
    its type and class: the same bytes the hot path's table keys are, so that
    a name answered on either path debits one account. NXDOMAIN: the zone,
    ``zone_of(name)`` when it knows the name's zone (the cluster domain and
    its aliases, whose NXDOMAIN carries the SOA under the question's name, as
    the original's does), else the owner of the SOA in the authority section.
    """
    if len(reply) < wire.HEADER_LEN:
        return ERROR_KEY
    rcode = reply[3] & 0x0F
    if (rcode != wire.RCODE_NOERROR and rcode != wire.RCODE_NXDOMAIN) or reply[4:6] != b"\x00\x01":
        return ERROR_KEY
    end = _question_end(reply)
    if end < 0 or end + 4 > len(reply):
        return ERROR_KEY
    name = reply[wire.HEADER_LEN : end].lower()
    if rcode == wire.RCODE_NOERROR:
        return _PLAIN_COUNTS + name + reply[end : end + 4]
    zone = zone_of(name) if zone_of is not None else None
    if zone is not None:
        return _NX + zone
    if reply[6:8] == b"\x00\x00" and reply[8:10] != b"\x00\x00":
        try:
            owner, _ = wire.read_name(reply, end + 4)
        except ValueError:
            owner = name
        return _NX + owner.lower()
    return _NX + name


def slipped(reply: bytes) -> bytes:
    """The truncated form of a reply: its header with TC, the question only."""
    end = _question_end(reply)
    if end < 0 or end + 4 > len(reply) or reply[4:6] != b"\x00\x01":
        return reply[:2] + bytes((reply[2] | 0x02, reply[3])) + b"\x00" * 8
    return (
        reply[:2] + bytes((reply[2] | 0x02, reply[3])) + _PLAIN_COUNTS + reply[12 : end + 4]
    )


def zone_key(zone_wire: bytes) -> bytes:
    """The NXDOMAIN account key of a zone (its lower-case wire name)."""
    return _NX + zone_wire


__all__ = [
    "DROP",
    "ERROR_KEY",
    "OK",
    "SLIP",
    "TABLE_FILE",
    "RRLTable",
    "RateLimiter",
    "response_key",
    "slipped",
    "zone_key",
]
