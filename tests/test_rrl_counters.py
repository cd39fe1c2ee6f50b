"""Response rate limiting: the hot path's per-prefix counters.

The limiter's verdicts with the counters (the replies of hot-view keys, for
up to ``FAST_PREFIXES`` prefixes) must be exactly the token bucket's of each
(prefix, response) account. A plain model of the bucket (written from the
rules in `mesosdns.dns.rrl`'s docstring, sharing no code with it) is run
side by side with the limiter over random sequences of replies, seconds,
swaps of the hot view and recompiled keys; every verdict must agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from mesosdns.dns import rrl as rrl_module
from mesosdns.dns.answers import HOT_PREFIX, Entry
from mesosdns.dns.hotview import HotView
from mesosdns.dns.rrl import DROP, OK, SLIP, RateLimiter
from mesosdns.dns.settings import RRLSettings

# 10.0.0.1 and .2: one /24; then two more prefixes (with FAST_PREFIXES 2,
# the third prefix seen in a second has no counters)
HOSTS = ("10.0.0.1", "10.0.0.2", "10.0.1.1", "10.0.2.1")
# response keys (see rrl.response_key): plain questions, the first four in
# the hot view; and an NXDOMAIN account
KEYS = (*(HOT_PREFIX + b"\x02k%d\x00\x00\x01\x00\x01" % i for i in range(5)), b"N\x00")
HOT_KEYS = KEYS[:4]


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


class FixedEntry(Entry):
    """An entry whose reply tail is given (the counters never read it)."""

    __slots__ = ("fixed",)

    def tails(self) -> tuple[bytes, ...]:
        return self.fixed


def entry(key: bytes) -> Entry:
    e = FixedEntry(1, key, (b"rr",))
    e.fixed = (b"tail-" + key,)
    e.trunc = False
    return e


def view(keys: tuple[bytes, ...]) -> HotView:
    hot = HotView(slotted=True)
    for k in keys:
        hot.fill(k, entry(k))
    return hot


@dataclass
class Model:
    """The token bucket of each (prefix, response) account."""

    rate: int
    slip: int
    window: int
    accounts: dict[tuple[str, bytes], tuple[int, int, int]] = field(default_factory=dict)

    def reply(self, prefix: str, key: bytes, now: int) -> int:
        got = self.accounts.get((prefix, key))
        if got is None:
            balance, slips, last = self.rate, 0, now
        else:
            balance, slips, last = got
            balance = min(self.rate, balance + (now - last) * self.rate)
        if balance >= 1:
            self.accounts[prefix, key] = (balance - 1, slips, now)
            return OK
        balance = max(-self.window * self.rate, balance - 1)
        verdict = DROP
        if self.slip:
            slips += 1
            if slips >= self.slip:
                slips, verdict = 0, SLIP
        self.accounts[prefix, key] = (balance, slips, now)
        return verdict


def hot_loop_reply(rl: RateLimiter, host: str, key: bytes, now: int) -> int:
    """One reply as `DNSServer._on_udp_rrl` makes it: the counter inline,
    else ``take``."""
    rl.second(now)
    v = rl.hot.get(key)
    counts = rl.arrays.get(host)
    if v is not None and counts is not None:
        c = counts[v[1]]
        if c < rl.limit:
            counts[v[1]] = c + 1
            return OK
    return rl.take((host, 53), key, now)


STEP = st.one_of(
    st.tuples(st.just("reply"), st.integers(0, len(HOSTS) - 1), st.integers(0, len(KEYS) - 1),
              st.integers(1, 40), st.booleans()),
    st.tuples(st.just("tick"), st.integers(1, 4)),
    st.tuples(st.just("swap"), st.randoms(use_true_random=False)),
    st.tuples(st.just("recompile"), st.integers(0, len(HOT_KEYS) - 1)),
)


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rate=st.sampled_from([1, 2, 5, 30, 300]),
    slip=st.integers(0, 3),
    window=st.integers(1, 3),
    steps=st.lists(STEP, min_size=1, max_size=40),
)
def test_counters_give_the_token_buckets_verdicts(
    rate: int, slip: int, window: int, steps: list[tuple[object, ...]]
) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rrl_module, "FAST_PREFIXES", 2)
        clock = Clock()
        rl = RateLimiter(RRLSettings(responses_per_second=rate, slip=slip, window=window),
                         clock=clock)
        rl.set_hot(view(HOT_KEYS))
        model = Model(rate, slip, window)
        for step in steps:
            now = int(clock.now)
            if step[0] == "reply":
                _, h, k, n, inline = step
                assert isinstance(h, int) and isinstance(k, int) and isinstance(n, int)
                host, key = HOSTS[h], KEYS[k]
                prefix = host.rpartition(".")[0]
                for _ in range(n):
                    want = model.reply(prefix, key, now)
                    got = (hot_loop_reply(rl, host, key, now) if inline
                           else (rl.second(now), rl.take((host, 53), key, now))[1])
                    assert got == want, (host, key, now)
            elif step[0] == "tick":
                assert isinstance(step[1], int)
                clock.now += step[1]
            elif step[0] == "swap":  # a full update: a new view, other slots
                order = list(HOT_KEYS)
                step[1].shuffle(order)  # type: ignore[attr-defined]
                rl.set_hot(view(tuple(order)))
            else:  # a key recompiled in place: dropped and put back
                assert isinstance(step[1], int)
                key = HOT_KEYS[step[1]]
                rl.hot.drop(key)
                rl.hot.fill(key, entry(key))


def test_counters_answer_inline_below_the_limit_and_hand_over_at_it() -> None:
    clock = Clock()
    rl = RateLimiter(RRLSettings(responses_per_second=300, slip=0, window=1), clock=clock)
    rl.set_hot(view(HOT_KEYS))
    now = int(clock.now)
    assert rl.limit == 254  # a count is one byte: 255 marks "the dict decides"
    assert hot_loop_reply(rl, HOSTS[0], HOT_KEYS[0], now) == OK  # makes the counters
    counts = rl.arrays[HOSTS[0]]
    assert rl.arrays.get(HOSTS[1]) is None  # cached per host, made per prefix
    assert hot_loop_reply(rl, HOSTS[1], HOT_KEYS[0], now) == OK
    assert rl.arrays[HOSTS[1]] is counts
    slot = rl.hot[HOT_KEYS[0]][1]
    assert counts[slot] == 2 and not rl.local
    for _ in range(252):
        assert hot_loop_reply(rl, HOSTS[0], HOT_KEYS[0], now) == OK
    assert counts[slot] == 254 and not rl.local
    # at the limit the count becomes the account's state word: 300 - 254 left
    got = [hot_loop_reply(rl, HOSTS[0], HOT_KEYS[0], now) for _ in range(47)]
    assert got == [OK] * 46 + [DROP]
    assert counts[slot] == 255
    assert (rl.local[rl.prefix((HOSTS[0], 53))][HOT_KEYS[0]] >> 32) == -1
    clock.now += 1
    # a new second: fresh arrays; the account in debt is marked in them
    assert hot_loop_reply(rl, HOSTS[0], HOT_KEYS[0], now + 1) == OK
    fresh = rl.arrays[HOSTS[0]]
    assert fresh is not counts and fresh[slot] == 255
    assert fresh[rl.hot[HOT_KEYS[1]][1]] == 0


def test_an_unslotted_view_has_no_counters() -> None:
    rl = RateLimiter(RRLSettings(responses_per_second=3))
    hot = HotView()
    for k in HOT_KEYS:
        hot.fill(k, entry(k))
    assert {v[1] for v in hot.values()} == {0}
    rl.set_hot(hot)
    now = rl.now()
    rl.second(now)
    assert [rl.take((HOSTS[0], 53), HOT_KEYS[0], now) for _ in range(4)] == [OK, OK, OK, DROP]
    assert [rl.take((HOSTS[0], 53), HOT_KEYS[1], now) for _ in range(1)] == [OK]
    assert not rl.counters and not rl.arrays


def test_workers_counters_spend_the_reservation_as_the_dict_would(tmp_path: object) -> None:
    """With several workers a counter holds the credit reserved from the
    shared table: the same verdicts as reserving for a key off the hot view."""
    def run(key: bytes) -> list[int]:
        clock = Clock()
        table = rrl_module.RRLTable(1024)
        a, b = (RateLimiter(RRLSettings(responses_per_second=20, slip=0, workers=2), table,
                            clock) for _ in range(2))
        for w in (a, b):
            w.set_hot(view(HOT_KEYS))
        out = []
        for second in range(3):
            now = int(clock.now)
            for i in range(30):
                w = (a, b)[(i * 7 + second) % 3 % 2]
                out.append(hot_loop_reply(w, HOSTS[0], key, now))
            clock.now += 1
        return out

    counted, plain = run(HOT_KEYS[0]), run(KEYS[-1])
    assert counted == plain
    assert counted[:30].count(OK) == 20 and counted[30:60].count(OK) <= 20


def test_slots_are_kept_by_a_recompiled_key_and_reused_only_after_recycle() -> None:
    hot = view(HOT_KEYS)
    slots = {k: hot[k][1] for k in HOT_KEYS}
    assert sorted(slots.values()) == list(range(len(HOT_KEYS)))
    hot.drop(HOT_KEYS[0])
    hot.fill(HOT_KEYS[0], entry(HOT_KEYS[0]))
    assert hot[HOT_KEYS[0]][1] == slots[HOT_KEYS[0]]
    hot.fill(HOT_KEYS[1], entry(HOT_KEYS[1]))  # replaced in place
    assert hot[HOT_KEYS[1]][1] == slots[HOT_KEYS[1]]
    hot.drop(HOT_KEYS[2])
    new, newer = KEYS[4], HOT_PREFIX + b"\x05newer\x00\x00\x01\x00\x01"
    hot.fill(new, entry(new))  # not the dropped key's slot: a new one
    assert hot[new][1] == len(HOT_KEYS)
    hot.recycle()
    hot.fill(newer, entry(newer))
    assert hot[newer][1] == slots[HOT_KEYS[2]]
    assert hot.capacity == len(HOT_KEYS) + 1
    assert hot.replies()[new] == (hot.flags[0], b"tail-" + new)


def test_a_new_view_takes_over_the_counts_of_this_second() -> None:
    clock = Clock()
    rl = RateLimiter(RRLSettings(responses_per_second=5, slip=0), clock=clock)
    rl.set_hot(view(HOT_KEYS))
    now = int(clock.now)
    assert [hot_loop_reply(rl, HOSTS[0], HOT_KEYS[0], now) for _ in range(3)] == [OK] * 3
    assert not rl.local  # counted only
    rl.set_hot(view(HOT_KEYS[::-1]))  # a full update: other slots
    assert [hot_loop_reply(rl, HOSTS[0], HOT_KEYS[0], now) for _ in range(3)] == [OK, OK, DROP]
    clock.now += 1  # the counts were of the second before: full credit
    assert [hot_loop_reply(rl, HOSTS[0], HOT_KEYS[1], now + 1) for _ in range(3)] == [OK] * 3
    rl.set_hot(view(HOT_KEYS))
    clock.now += 1
    assert [hot_loop_reply(rl, HOSTS[0], HOT_KEYS[1], now + 2) for _ in range(6)] == (
        [OK] * 5 + [DROP]
    )


def test_a_counted_account_keeps_its_slip_count() -> None:
    """Slips count limited replies across seconds, counted ones included."""
    clock = Clock()
    rl = RateLimiter(RRLSettings(responses_per_second=1, slip=2, window=1), clock=clock)
    rl.set_hot(view(HOT_KEYS))
    now = int(clock.now)
    assert [hot_loop_reply(rl, HOSTS[0], HOT_KEYS[0], now) for _ in range(2)] == [OK, DROP]
    clock.now += 2  # debt paid: the account is counted again
    assert [hot_loop_reply(rl, HOSTS[0], HOT_KEYS[0], now + 2) for _ in range(2)] == [OK, SLIP]
