"""The UDP hot path's view of an answer table.

A dict, key -> ``(flag table, slot, reply tail, reply tail, ...)``: the
question bytes of a plain query (`mesosdns.dns.answers.HOT_PREFIX` and the
question) to what the hot loop sends, one object fewer per look-up than
going through the `Entry`.

The view holds the names that are asked: a key is filled from its entry
(`fill`) on the first plain query that misses it, and dropped when its
entry changes or goes. The reply tails are most of the answers' bytes (an
SRV name of a large app has eight copies of up to 512 bytes), and most names
of a large cluster are never asked between two of their changes: made on
demand, they cost the serving process only for the names in use, and
nothing for a full version until it is queried.

``slot`` is for response rate limiting (`mesosdns.dns.rrl`): with slots on,
each key holds a small integer of its own, kept while the key stays in the
view (a recompiled key keeps it), which indexes the rate limiter's
per-prefix counters, so that the hot loop reaches a reply's account with one
index into a dense array instead of a second dict look-up. A slot given up
by a dropped key is not handed to another until `recycle` (the limiter
calls it at each new second, when its counters start again), so that a
counter never passes from one key's account to another's within a second.
With slots off (no ``rrl``) every key's slot is 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from mesosdns.dns import wire

if TYPE_CHECKING:
    from mesosdns.dns.answers import Entry

# dropped keys' slots kept back at most, when nothing recycles them (a view
# no rate limiter reads): past it they are recycled at once
_MAX_RELEASED: Final = 1 << 16

# the default flag tables: an authoritative NOERROR, RA clear, TC when truncated
_FLAGS: Final = (
    wire.flag_table(True, False, False, wire.RCODE_NOERROR),
    wire.flag_table(True, True, False, wire.RCODE_NOERROR),
)


class HotView(dict[bytes, tuple[Any, ...]]):
    """key -> (flag table, slot, reply tails...); see the module docstring."""

    __slots__ = ("_free", "_next", "_released", "flags", "slotted")

    def __init__(
        self, slotted: bool = False, flags: tuple[tuple[bytes, ...], tuple[bytes, ...]] = _FLAGS
    ) -> None:
        super().__init__()
        self.slotted = slotted
        # the header flag tables of a reply that fits in 512 bytes and of a
        # truncated one, indexed by the entry's ``trunc``
        self.flags = flags
        self._next = 0  # slots handed out so far (the counters' size)
        self._free: list[int] = []
        self._released: dict[bytes, int] = {}

    @property
    def capacity(self) -> int:
        """One more than the highest slot a key may hold."""
        return self._next

    def fill(self, key: bytes, e: Entry) -> tuple[Any, ...] | None:
        """Set ``key``'s replies from its entry and return them (a key already
        in keeps its slot); None, and nothing set, for an entry the hot path
        does not answer."""
        tails = e.tails()
        if not tails:
            return None
        fl = self.flags[1 if e.trunc else 0]
        v = self[key] = (fl, self._slot(key) if self.slotted else 0, *tails)
        return v

    def drop(self, key: bytes) -> None:
        """Remove ``key``; its slot is kept back for it until `recycle`."""
        old = self.pop(key, None)
        if old is not None and self.slotted:
            self._released[key] = old[1]
            if len(self._released) > _MAX_RELEASED:
                self.recycle()

    def recycle(self) -> None:
        """Hand the slots of the keys dropped so far to the keys to come."""
        if self._released:
            self._free.extend(self._released.values())
            self._released.clear()

    def _slot(self, key: bytes) -> int:
        old = self.get(key)
        if old is not None:
            return int(old[1])
        slot = self._released.pop(key, None)
        if slot is not None:
            return slot
        if self._free:
            return self._free.pop()
        slot = self._next
        self._next = slot + 1
        return slot

    def replies(self) -> dict[bytes, tuple[Any, ...]]:
        """key -> (flag table, reply tails...): the view without its slots."""
        return {k: (v[0], *v[2:]) for k, v in self.items()}

