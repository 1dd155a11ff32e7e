"""The state machine: puts, gets, evicts, deletes and pins against a pure model."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

from portfolio_core.ports.cache_store import CacheStore, CacheTier
from portfolio_core.ports.capabilities import supports
from portfolio_core.ports.errors import ConflictError, NotFoundError
from portfolio_core.testing.contracts.cache_store._common import (
    PINNING,
    TIERS,
    covers,
    expected_match,
    kv_blocks,
    kv_tokens,
)
from portfolio_core.testing.loop import accepts_keyword
from portfolio_core.testing.machines import AdapterMachine
from portfolio_core.testing.suite import Factory

AGENTS = ("a", "b", "c", "d")
HOT_LIMIT = 2
BLOCK = 4


class CacheStoreMachine(AdapterMachine[CacheStore]):
    """Puts, gets, evicts, deletes, pins against a pure model of a 2-entry hot tier.

    The model: an ordered dict of hot agents (least recently used first), a set of agents in
    lower tiers (with TIERS; assumed large enough), the stored tokens/seed and bytes per
    agent, pin counts, hits by where they were found, promotions and the moves out of hot.
    """

    def __init__(self, factory: Factory, **kwargs: Any) -> None:
        def limited_factory(**kw: Any) -> Any:
            if accepts_keyword(factory, "block_size"):
                kw["block_size"] = BLOCK
            return factory(max_entries=HOT_LIMIT, **kw)

        super().__init__(limited_factory, **kwargs)
        self.bs = self.adapter.block_size
        self.tiers = supports(self.adapter, TIERS)
        self.pinning = supports(self.adapter, PINNING)
        self.hot: OrderedDict[str, None] = OrderedDict()
        self.lower: set[str] = set()
        self.entries: dict[str, tuple[tuple[int, ...], int]] = {}
        self.pins: dict[str, int] = {}
        self.nbytes: dict[str, int] = {}
        self.hits = 0
        self.misses = 0
        self.lower_hits = 0
        self.promotions = 0
        #: moves out of hot; evictions count them, and with tiers the moves below too
        self.moved_down = 0

    def _enforce(self) -> None:
        while len(self.hot) > HOT_LIMIT:
            victim = next((a for a in self.hot if not self.pins.get(a)), None)
            if victim is None:
                return
            del self.hot[victim]
            self.moved_down += 1
            if self.tiers:
                self.lower.add(victim)
            else:
                del self.entries[victim]

    def _to_hot(self, agent: str) -> None:
        self.lower.discard(agent)
        self.hot[agent] = None
        self.hot.move_to_end(agent)

    @rule(
        agent=st.sampled_from(AGENTS),
        seed=st.integers(1, 3),
        blocks=st.integers(1, 4),
        tail=st.integers(0, 3),
    )
    def put(self, agent: str, seed: int, blocks: int, tail: int) -> None:
        tokens = kv_tokens(seed, blocks * self.bs + tail)
        entry = kv_blocks(agent, tokens, seed)
        self.adapter.put(agent, entry)
        self.entries[agent] = (tokens, seed)
        self.nbytes[agent] = entry.nbytes
        self._to_hot(agent)
        self._enforce()

    @rule(
        agent=st.sampled_from(AGENTS),
        seed=st.integers(1, 3),
        length=st.integers(1, 20),
        change=st.one_of(st.none(), st.integers(0, 19)),
    )
    def get(self, agent: str, seed: int, length: int, change: int | None) -> None:
        query = list(kv_tokens(seed, length))
        if change is not None and change < length:
            query[change] = 777_777
        hit = self.adapter.get(agent, query)
        stored = self.entries.get(agent)
        want = expected_match(stored[0], query, self.bs) if stored else 0
        if want == 0:
            assert hit is None, (
                f"get({agent!r}) hit {hit and hit.matched_tokens} tokens, model: miss"
            )
            self.misses += 1
            return
        assert stored is not None
        assert hit is not None, f"get({agent!r}) missed; the model matches {want} tokens"
        assert hit.matched_tokens == want, f"matched {hit.matched_tokens}, model {want}"
        assert hit.exact is (want == len(query))
        assert covers(hit.blocks, kv_blocks(agent, stored[0], stored[1]), want)
        was_hot = agent in self.hot
        assert (hit.tier is CacheTier.HOT) is was_hot, (
            f"found {agent!r} in {hit.tier}; the model has it {'hot' if was_hot else 'lower'}"
        )
        self.hits += 1
        if not was_hot:
            self.lower_hits += 1
            self.promotions += 1
        self._to_hot(agent)
        self._enforce()

    @rule(data=st.data())
    def evict_hot(self, data: st.DataObject) -> None:
        if not self.hot:
            return
        agent = data.draw(st.sampled_from(sorted(self.hot)))
        if self.pins.get(agent):
            with pytest.raises(ConflictError):
                self.adapter.evict(agent)
            return
        assert self.adapter.evict(agent) is True
        del self.hot[agent]
        self.moved_down += 1
        if self.tiers:
            self.lower.add(agent)
        else:
            del self.entries[agent]

    @rule(agent=st.sampled_from(AGENTS))
    def delete(self, agent: str) -> None:
        assert self.adapter.delete(agent) is (agent in self.entries)
        self.entries.pop(agent, None)
        self.hot.pop(agent, None)
        self.lower.discard(agent)
        self.pins.pop(agent, None)

    @rule(agent=st.sampled_from(AGENTS))
    def pin(self, agent: str) -> None:
        if not self.pinning:
            return
        if agent not in self.entries:
            with pytest.raises(NotFoundError):
                self.adapter.pin(agent)
            return
        self.adapter.pin(agent)
        self.pins[agent] = self.pins.get(agent, 0) + 1
        if agent not in self.hot:
            self.promotions += 1
            self._to_hot(agent)
            self._enforce()

    @rule(agent=st.sampled_from(AGENTS))
    def unpin(self, agent: str) -> None:
        if not self.pinning:
            return
        held = self.pins.get(agent, 0)
        assert self.adapter.unpin(agent) is (held > 0)
        if held == 1:
            del self.pins[agent]
            self._enforce()
        elif held > 1:
            self.pins[agent] = held - 1

    @invariant()
    def counts(self) -> None:
        stats = self.adapter.stats()
        assert stats.entries.get(CacheTier.HOT, 0) == len(self.hot), (
            f"hot tier holds {stats.entries.get(CacheTier.HOT, 0)}, model {len(self.hot)}"
        )
        assert (stats.hits, stats.misses) == (self.hits, self.misses)
        hot_bytes = sum(self.nbytes[a] for a in self.hot)
        assert stats.bytes.get(CacheTier.HOT, 0) == hot_bytes, (
            f"hot tier counts {stats.bytes.get(CacheTier.HOT, 0)} bytes, model {hot_bytes}"
        )
        by_tier = dict(stats.hits_by_tier)
        hot_hits = by_tier.pop(CacheTier.HOT, 0)
        assert (hot_hits, sum(by_tier.values())) == (
            self.hits - self.lower_hits,
            self.lower_hits,
        ), (
            f"hits by tier {dict(stats.hits_by_tier)}; model: {self.hits - self.lower_hits} hot, "
            f"{self.lower_hits} lower"
        )
        assert stats.promotions == self.promotions, (
            f"{stats.promotions} promotions, model {self.promotions}"
        )
        # with tiers, a move out of hot may push entries further down: more evictions
        assert stats.evictions == self.moved_down or (
            self.tiers and stats.evictions > self.moved_down
        ), f"{stats.evictions} evictions, model {self.moved_down} moves out of hot"
        if self.tiers:
            total = sum(stats.entries.values())
            assert total == len(self.entries), (
                f"{total} entries in all tiers, model {len(self.entries)}"
            )
