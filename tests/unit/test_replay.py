"""The anti-replay window (RFC 4303 section 3.4.3, 64 counters).

"A forged frame does not move the window" needs the tag check, so it is a service-level property
(the inbound service moves the window only after SealedFrame.open succeeds; the service tests send
forged frames). Here: the window itself is an immutable value, so nothing but an explicit accept
of a verified counter can change what a device has seen.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.replay import WINDOW_SIZE, ReplayWindow, Verdict


def run(*counters: int) -> ReplayWindow:
    window = ReplayWindow()
    for c in counters:
        window = window.accept(c)
    return window


def test_window_size_is_64() -> None:
    assert WINDOW_SIZE == 64


def test_a_new_window_accepts_counter_one() -> None:
    window = ReplayWindow()
    assert (window.highest, window.bitmap) == (0, 0)
    assert window.check(1) is Verdict.FRESH
    assert run(1) == ReplayWindow(1, 1)


def test_in_order_counters_are_accepted() -> None:
    window = ReplayWindow()
    for c in range(1, 200):
        assert window.check(c) is Verdict.FRESH
        window = window.accept(c)
        assert window.highest == c
        assert window.check(c) is Verdict.DUPLICATE
    assert window.bitmap == (1 << 64) - 1


def test_out_of_order_within_the_window_is_accepted_once() -> None:
    window = run(1, 5, 3)
    assert window.highest == 5
    assert window.check(3) is Verdict.DUPLICATE
    assert window.check(4) is Verdict.FRESH
    assert window.check(2) is Verdict.FRESH
    window = window.accept(4).accept(2)
    for c in range(1, 6):
        assert window.check(c) is Verdict.DUPLICATE
    assert window.check(6) is Verdict.FRESH


def test_duplicate_is_rejected() -> None:
    window = run(7)
    assert window.check(7) is Verdict.DUPLICATE
    with pytest.raises(ValueError):
        window.accept(7)


def test_exactly_63_behind_is_accepted_and_64_behind_is_too_old() -> None:
    window = run(100)
    assert window.check(100 - 63) is Verdict.FRESH
    assert window.check(100 - 64) is Verdict.TOO_OLD
    accepted = window.accept(37)
    assert accepted.check(37) is Verdict.DUPLICATE
    assert accepted.bitmap == 1 | 1 << 63
    with pytest.raises(ValueError):
        window.accept(36)


def test_an_old_counter_falls_out_when_the_window_moves() -> None:
    window = run(1, 2)
    assert window.check(1) is Verdict.DUPLICATE
    window = window.accept(64)  # 1 is now 63 behind: still remembered
    assert window.check(1) is Verdict.DUPLICATE
    window = window.accept(65)  # 1 is now 64 behind: too old, never fresh again
    assert window.check(1) is Verdict.TOO_OLD
    assert window.check(2) is Verdict.DUPLICATE
    assert window.check(3) is Verdict.FRESH


@pytest.mark.parametrize("jump", [64, 65, 1000, 2**32])
def test_a_jump_of_64_or_more_clears_the_bitmap(jump: int) -> None:
    window = run(*range(1, 50))
    moved = window.accept(49 + jump)
    assert moved == ReplayWindow(49 + jump, 1)
    for c in range(max(1, 49 + jump - 63), 49 + jump):
        assert moved.check(c) is Verdict.FRESH


def test_a_jump_of_63_keeps_the_oldest_bit() -> None:
    moved = run(1).accept(64)
    assert moved == ReplayWindow(64, 1 | 1 << 63)


@pytest.mark.parametrize("counter", [0, -1, -(2**40)])
def test_counter_zero_or_negative_is_rejected(counter: int) -> None:
    for window in (ReplayWindow(), run(1, 2, 3)):
        assert window.check(counter) is Verdict.TOO_OLD
        with pytest.raises(ValueError):
            window.accept(counter)


def test_accepting_a_non_fresh_counter_raises_value_error() -> None:
    window = run(200, 150)
    with pytest.raises(ValueError):
        window.accept(150)  # duplicate
    with pytest.raises(ValueError):
        window.accept(200)  # duplicate of the highest
    with pytest.raises(ValueError):
        window.accept(100)  # too old


def test_the_window_is_an_immutable_value() -> None:
    window = run(1, 2, 3)
    before = (window.highest, window.bitmap)
    after = window.accept(10)
    assert after is not window
    assert (window.highest, window.bitmap) == before
    assert window.check(10) is Verdict.FRESH  # the old value still says 10 was never seen
    assert after.check(10) is Verdict.DUPLICATE
    window.check(5)
    assert (window.highest, window.bitmap) == before  # check never changes anything
    with pytest.raises(dataclasses.FrozenInstanceError):
        window.highest = 99  # type: ignore[misc]


def test_bitmap_never_exceeds_64_bits() -> None:
    window = ReplayWindow()
    for c in [1, 3, 70, 71, 140, 139, 200, 263, 264]:
        window = window.accept(c)
        assert 0 <= window.bitmap < 1 << 64
        assert window.bitmap & 1  # the highest is always marked seen


class Model:
    """The obvious reference: every counter ever accepted, and the highest."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.highest = 0

    def check(self, c: int) -> Verdict:
        if c <= 0 or c <= self.highest - WINDOW_SIZE:
            return Verdict.TOO_OLD
        return Verdict.DUPLICATE if c in self.seen else Verdict.FRESH

    def accept(self, c: int) -> None:
        self.seen.add(c)
        self.highest = max(self.highest, c)


counters = st.one_of(
    st.integers(-2, 300),  # dense: many duplicates and out-of-order arrivals
    st.integers(0, 2**32 - 1),  # sparse: big jumps
)


@settings(max_examples=400, deadline=None)
@given(st.lists(counters, max_size=120))
def test_window_agrees_with_the_reference_model(sequence: list[int]) -> None:
    window, model = ReplayWindow(), Model()
    for c in sequence:
        verdict = window.check(c)
        assert verdict is model.check(c), (c, window, model.highest)
        if verdict is Verdict.FRESH:
            window = window.accept(c)
            model.accept(c)
        else:
            with pytest.raises(ValueError):
                window.accept(c)
        assert window.highest == model.highest


@settings(max_examples=200, deadline=None)
@given(st.permutations(range(1, 65)))
def test_any_order_of_64_consecutive_counters_is_accepted_exactly_once(order: list[int]) -> None:
    window = ReplayWindow()
    for c in order:
        window = window.accept(c)
    assert window == ReplayWindow(64, (1 << 64) - 1)
    for c in order:
        assert window.check(c) is Verdict.DUPLICATE
