"""How many requests one S3 endpoint gets at once: additive increase, multiplicative decrease.

A store that answers `503 SlowDown` (or another throttling error) is telling its clients to send
less. Retrying with backoff alone keeps the same number of requests in flight, so the store
keeps refusing a share of them; halving the number in flight on each throttle and growing it
back by one after a run of successes (AIMD, as TCP does with its congestion window) settles
just under what the store accepts.

This module is the arithmetic only, as plain values (no threads, no clock); the blocking
limiter that applies it to real requests is `federator.storage.throttle`.

Two details keep one burst from collapsing the limit:
- Decrease once per window: every decrease starts a new *epoch*, and a throttle answered to a
  request that was sent in an older epoch (under the old, higher limit) is not counted again.
- Increase after `limit` successes in a row (one "window" of requests) sent under the current
  limit, so growth slows as the limit rises; a throttle resets the run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class AimdPolicy:
    """Bounds and steps of the per-endpoint limit."""

    ceiling: int  # the most requests in flight; also where the limit starts
    floor: int = 1
    decrease_factor: float = 0.5  # multiply the limit by this on a throttle
    increase_step: int = 1  # add this after a window of successes

    def __post_init__(self) -> None:
        if not 1 <= self.floor <= self.ceiling:
            raise ValueError(f"need 1 <= floor <= ceiling, got {self.floor}, {self.ceiling}")
        if not 0.0 < self.decrease_factor < 1.0:
            raise ValueError(f"decrease_factor must be in (0, 1), got {self.decrease_factor}")
        if self.increase_step < 1:
            raise ValueError(f"increase_step must be >= 1, got {self.increase_step}")


@dataclass(frozen=True, slots=True)
class AimdState:
    """The current limit, the successes in a row since the last change, and the epoch."""

    limit: int
    streak: int = 0
    epoch: int = 0  # bumped by every decrease

    @classmethod
    def start(cls, policy: AimdPolicy) -> AimdState:
        return cls(limit=policy.ceiling)


@dataclass(frozen=True, slots=True)
class LimiterStats:
    """What one endpoint's limiter went through during a copy run, for its report."""

    endpoint: str
    ceiling: int
    limit: int  # at the end
    lowest: int
    throttles: int  # throttling answers seen (each may or may not have lowered the limit)
    decreases: int
    increases: int


def after_success(state: AimdState, policy: AimdPolicy, *, sent_in_epoch: int) -> AimdState:
    """A request sent in epoch `sent_in_epoch` succeeded: +`increase_step` once `limit` requests
    of the current epoch succeeded in a row. Successes of requests sent before the last decrease
    say nothing about the new limit and are not counted (else the burst that was in flight when
    the store throttled would regrow the limit at once)."""
    if sent_in_epoch < state.epoch:
        return state
    streak = state.streak + 1
    if streak < state.limit or state.limit >= policy.ceiling:
        return replace(state, streak=min(streak, state.limit))
    return replace(state, limit=min(policy.ceiling, state.limit + policy.increase_step), streak=0)


def after_throttle(state: AimdState, policy: AimdPolicy, *, sent_in_epoch: int) -> AimdState:
    """A request sent in epoch `sent_in_epoch` was throttled: halve, unless already halved since."""
    if sent_in_epoch < state.epoch:
        return replace(state, streak=0)
    lowered = max(policy.floor, int(state.limit * policy.decrease_factor))
    return AimdState(limit=lowered, streak=0, epoch=state.epoch + 1)
