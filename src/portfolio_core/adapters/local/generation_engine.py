"""The local continuous-batching engine: a block pool, prefix caching, preemption.

Scheduling follows the shape of vLLM's V1 scheduler: every request has a count of tokens
whose keys and values are computed; each step gives every running request the tokens it
still needs (one for a decoding request, a chunk for a prefilling one) within a token
budget, then admits waiting requests while blocks allow, then runs **one** batched
``forward`` over all of them. See docs/decisions for the block pool, preemption and
prefix-hashing decisions.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from portfolio_core.adapters.local._block_pool import BlockPool, chain_hash
from portfolio_core.adapters.local._numpy_ops import check_cache, common_prefix, sample
from portfolio_core.ports.errors import (
    InvalidInputError,
    NotFoundError,
    PoolExhaustedError,
    UnavailableError,
)
from portfolio_core.ports.generation_engine import CompletedGeneration, FinishReason, Sampling
from portfolio_core.ports.model_backend import AgentBlocks, ForwardSequence, PagedModelBackend
from portfolio_core.ports.shrinkable import ReleaseOrder
from portfolio_core.ports.tokenizer import Tokenizer

__all__ = [
    "EngineStats",
    "LocalGenerationEngine",
    "LocalGenerationEngineConfig",
    "PoolSnapshot",
]


class LocalGenerationEngineConfig(BaseModel):
    """Sizing and scheduling knobs of `LocalGenerationEngine`."""

    model_config = ConfigDict(extra="forbid")

    block_size: int = Field(16, ge=1)
    #: number of KV blocks; when unset, ``kv_cache_bytes // spec.bytes_per_block(block_size)``
    num_blocks: int | None = Field(None, ge=1)
    kv_cache_bytes: int = Field(32 * 1024 * 1024, ge=1)
    max_num_seqs: int = Field(64, ge=1)
    #: tokens fed to the model per step (prefill chunks and decodes together)
    max_num_batched_tokens: int = Field(512, ge=1)
    enable_prefix_caching: bool = True
    #: read the K/V of each finished request into ``CompletedGeneration.blocks``
    return_blocks: bool = True
    seed: int = 0


@dataclass(frozen=True, slots=True)
class PoolSnapshot:
    """The pool's bookkeeping at one instant (for invariants and diagnostics)."""

    num_blocks: int
    free_blocks: tuple[int, ...]
    ref_counts: tuple[int, ...]
    block_tables: dict[str, tuple[int, ...]]
    cached_blocks: int


@dataclass(frozen=True, slots=True)
class EngineStats:
    running: int
    waiting: int
    free_blocks: int
    cached_blocks: int
    preemptions: int
    prefix_hit_tokens: int
    computed_tokens: int
    steps: int


@dataclass(eq=False, slots=True)
class _Request:
    uid: str
    agent_id: str
    prompt_len: int
    tokens: list[int]  # prompt + output
    max_tokens: int
    sampling: Sampling
    rng: np.random.Generator
    cache: AgentBlocks | None
    stop_ids: frozenset[int]
    output: list[int] = field(default_factory=list)
    blocks: list[int] = field(default_factory=list)
    num_computed: int = 0
    num_registered: int = 0  # leading full blocks registered in the prefix cache
    hashes: list[bytes] = field(default_factory=list)


class LocalGenerationEngine:
    """A GenerationEngine over a [PagedModelBackend][portfolio_core.ports.PagedModelBackend].

    ``LocalGenerationEngine(backend, tokenizer, num_blocks=256)``. Single threaded: call
    ``submit``/``step``/``abort`` from one thread. Guarantees beyond the port:

    * blocks: ``free + used == num_blocks`` after every call; a block's reference count is
      the number of requests whose block table holds it; every count is back to zero when
      nothing is unfinished;
    * admission reserves blocks for a request's whole prompt; a decode that needs a block
      when none is free preempts the newest running request (its blocks are released, it
      goes to the front of the queue and is recomputed later, keeping its output so far);
    * prefix caching shares only full blocks, identified by a hash chained through the
      parent block; a hit never covers a prompt's last token, which is always recomputed;
    * it is [Shrinkable][portfolio_core.ports.Shrinkable] (first in the release order):
      `release` may be called from any thread; it drops the least recently freed blocks
      from the prefix cache and hands their memory back, never a block a request holds.
    """

    config_model: ClassVar[type[BaseModel]] = LocalGenerationEngineConfig
    release_order: ClassVar[int] = ReleaseOrder.PREFIX_CACHE

    def __init__(
        self,
        backend: PagedModelBackend,
        tokenizer: Tokenizer,
        config: LocalGenerationEngineConfig | None = None,
        **overrides: object,
    ) -> None:
        if config is None:
            config = LocalGenerationEngineConfig.model_validate(overrides)
        elif overrides:
            config = LocalGenerationEngineConfig.model_validate(
                {**config.model_dump(), **overrides}
            )
        if not isinstance(backend, PagedModelBackend):
            raise InvalidInputError(
                f"{type(backend).__name__} is not a PagedModelBackend", field="backend"
            )
        self.config = config
        self._backend = backend
        self._tokenizer = tokenizer
        self._spec = backend.extract_model_spec()
        if tokenizer.vocab_size > self._spec.vocab_size:
            raise InvalidInputError(
                f"tokenizer vocabulary ({tokenizer.vocab_size}) exceeds the model's "
                f"({self._spec.vocab_size})",
                field="tokenizer",
            )
        bs = config.block_size
        num_blocks = config.num_blocks or max(
            1, config.kv_cache_bytes // self._spec.bytes_per_block(bs)
        )
        self._bs = bs
        self._pool = BlockPool(num_blocks)
        self._kv = backend.allocate_kv_cache(num_blocks, bs)
        self._root = self._spec.spec_hash.encode()
        self._eos = frozenset(tokenizer.eos_token_ids)
        self._waiting: deque[_Request] = deque()
        self._running: list[_Request] = []
        self._requests: dict[str, _Request] = {}
        self._pending: list[CompletedGeneration] = []
        self._ids = itertools.count(1)
        self._preemptions = 0
        self._prefix_hit_tokens = 0
        self._computed_tokens = 0
        self._steps = 0
        self._closed = False
        #: held by step, abort, close and release: release is the one call made from
        #: another thread (a memory budget's)
        self._lock = threading.Lock()
        self._block_bytes = self._spec.bytes_per_block(bs)

    @classmethod
    def from_config(
        cls,
        config: LocalGenerationEngineConfig,
        *,
        backend: PagedModelBackend,
        tokenizer: Tokenizer,
    ) -> Self:
        return cls(backend, tokenizer, config)

    def __repr__(self) -> str:
        return (
            f"LocalGenerationEngine(blocks={self._pool.num_blocks}x{self._bs}, "
            f"running={len(self._running)}, waiting={len(self._waiting)})"
        )

    @property
    def num_blocks(self) -> int:
        return self._pool.num_blocks

    def close(self) -> None:
        """Drop every queued and running request and the KV storage (idempotent).

        Nothing is returned for the dropped requests; ``submit`` and ``step`` raise
        UnavailableError afterwards.
        """
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for req in self._running:
            self._pool.release(req.blocks)
            req.blocks = []
        self._running.clear()
        self._waiting.clear()
        self._requests.clear()
        self._pending.clear()
        self._kv = None

    def _check_open(self) -> None:
        if self._closed:
            raise UnavailableError("the engine is closed", port="GenerationEngine")

    # -- the port -----------------------------------------------------------------------

    def submit(
        self,
        agent_id: str,
        prompt: str | Sequence[int],
        cache: AgentBlocks | None = None,
        max_tokens: int = 256,
        *,
        sampling: Sampling | None = None,
        temperature: float | None = None,
        stop_token_ids: Sequence[int] = (),
    ) -> str:
        """Queue a request (a string is encoded without special tokens); returns its uid.

        ``sampling`` chooses tokens (default greedy); ``temperature`` alone is a shorthand
        for ``Sampling(temperature=...)``. Without a seed, draws come from the engine's
        ``seed`` and the request's number.

        ``cache`` (an earlier ``CompletedGeneration.blocks`` of this model) skips prefill
        of the prefix it shares with the prompt. Raises InvalidInputError (empty prompt,
        ids outside the vocabulary, ``max_tokens < 1``, a prompt of ``max_seq_len`` tokens
        or more, a cache of another model) or PoolExhaustedError (cannot fit even alone).
        """
        self._check_open()
        tokens = (
            self._tokenizer.encode(prompt) if isinstance(prompt, str) else [int(t) for t in prompt]
        )
        spec = self._spec
        if not tokens:
            raise InvalidInputError("the prompt is empty", field="prompt")
        if any(not 0 <= t < spec.vocab_size for t in tokens):
            raise InvalidInputError("prompt has ids outside the vocabulary", field="prompt")
        if max_tokens < 1:
            raise InvalidInputError("max_tokens must be at least 1", field="max_tokens")
        if sampling is None:
            sampling = Sampling(temperature=0.0 if temperature is None else float(temperature))
        elif temperature is not None:
            raise InvalidInputError(
                "pass the temperature inside sampling, not beside it", field="temperature"
            )
        sampling.check()
        if len(tokens) >= spec.max_seq_len:
            raise InvalidInputError(
                f"prompt of {len(tokens)} tokens leaves no room (max_seq_len {spec.max_seq_len})",
                field="prompt",
            )
        check_cache(cache, spec)
        longest = min(len(tokens) + max_tokens, spec.max_seq_len) - 1  # last token never fed
        needed = -(-max(longest, len(tokens)) // self._bs)
        if needed > self._pool.num_blocks:
            raise PoolExhaustedError(
                f"request needs up to {needed} blocks of {self._bs} tokens; the pool has "
                f"{self._pool.num_blocks}",
                needed=needed,
                total=self._pool.num_blocks,
                port="GenerationEngine",
            )
        n = next(self._ids)
        uid = f"gen-{n}"
        req = _Request(
            uid=uid,
            agent_id=agent_id,
            prompt_len=len(tokens),
            tokens=tokens,
            max_tokens=max_tokens,
            sampling=sampling,
            rng=np.random.default_rng(
                [self.config.seed, n] if sampling.seed is None else sampling.seed
            ),
            cache=cache,
            stop_ids=self._eos | frozenset(int(t) for t in stop_token_ids),
        )
        self._requests[uid] = req
        self._waiting.append(req)
        return uid

    def step(self) -> list[CompletedGeneration]:
        """Schedule, run one batched forward, sample; return what finished (aborts too)."""
        with self._lock:
            return self._step()

    def _step(self) -> list[CompletedGeneration]:
        self._check_open()
        self._steps += 1
        finished, self._pending = self._pending, []
        scheduled = self._schedule()
        if not scheduled:
            return finished
        batch = [
            ForwardSequence(
                tuple(req.tokens[req.num_computed : req.num_computed + n]),
                req.num_computed,
                tuple(req.blocks),
            )
            for req, n in scheduled
        ]
        logits = self._backend.forward(self._kv, batch)
        greedy = np.argmax(logits, axis=-1).tolist()
        max_len = self._spec.max_seq_len
        caching = self.config.enable_prefix_caching
        bs = self._bs
        for i, (req, n) in enumerate(scheduled):
            req.num_computed += n
            self._computed_tokens += n
            if caching and req.num_computed // bs > req.num_registered:
                self._register_full_blocks(req)
            if req.num_computed < len(req.tokens):
                continue  # a prefill chunk: nothing to sample yet
            sampling = req.sampling
            if sampling.greedy:
                token = greedy[i]
            else:
                token = sample(
                    np.asarray(logits[i]),
                    sampling.temperature,
                    req.rng,
                    top_p=sampling.top_p,
                    top_k=sampling.top_k,
                )
            req.output.append(token)
            req.tokens.append(token)
            if token in req.stop_ids:
                finished.append(self._finish(req, FinishReason.STOP))
            elif len(req.output) >= req.max_tokens or len(req.tokens) >= max_len:
                finished.append(self._finish(req, FinishReason.LENGTH))
        return finished

    def abort(self, uid: str) -> bool:
        with self._lock:
            return self._abort(uid)

    def _abort(self, uid: str) -> bool:
        req = self._requests.pop(uid, None)
        if req is None:
            return False
        if req in self._running:
            self._running.remove(req)
            self._pool.release(req.blocks)
            req.blocks = []
        else:
            self._waiting.remove(req)
        self._pending.append(
            CompletedGeneration(
                uid=uid,
                text=self._tokenizer.decode(req.output),
                blocks=None,
                finish_reason=FinishReason.ABORT,
                token_count=len(req.output),
                tokens=tuple(req.output),
            )
        )
        return True

    def has_unfinished(self) -> bool:
        return bool(self._requests) or bool(self._pending)

    # -- memory ----------------------------------------------------------------------------

    def resident_bytes(self) -> int:
        """Bytes of the free blocks that still hold data (the prefix cache and blocks not yet
        handed back): what `release` can give back. Blocks requests hold are not counted;
        0 once closed (the storage is dropped)."""
        with self._lock:
            if self._closed:
                return 0
            pool = self._pool
            held = sum(1 for b in pool.dirty if pool.ref_cnt[b] == 0)
            return held * self._block_bytes

    def release(self, nbytes: int) -> int:
        """Drop free blocks from the prefix cache, least recently freed first, until their
        bytes reach ``nbytes``, and hand their memory back to the operating system through
        the backend's ``discard_kv`` hook (a backend without one frees nothing: the blocks
        only leave the prefix cache). Returns the bytes handed back. A later prompt sharing
        a dropped prefix recomputes it; no request is touched."""
        with self._lock:
            if self._closed or nbytes <= 0:
                return 0
            pool = self._pool
            victims: list[int] = []
            for block in pool.free_order():
                if len(victims) * self._block_bytes >= nbytes:
                    break
                if block in pool.dirty:
                    victims.append(block)
            if not victims:
                return 0
            pool.forget(victims)
            discard = getattr(self._backend, "discard_kv", None)
            return int(discard(self._kv, victims)) if callable(discard) else 0

    # -- introspection -------------------------------------------------------------------

    def output_tokens(self, uid: str) -> tuple[int, ...]:
        """Tokens generated so far by an unfinished request (for streaming: feed the new
        ones to a `StreamingDetokenizer`
        after each ``step``). NotFoundError once the request has finished or is unknown."""
        req = self._requests.get(uid)
        if req is None:
            raise NotFoundError(f"no unfinished request {uid!r}", key=uid, port="GenerationEngine")
        return tuple(req.output)

    def snapshot(self) -> PoolSnapshot:
        pool = self._pool
        return PoolSnapshot(
            num_blocks=pool.num_blocks,
            free_blocks=tuple(pool.free_order()),
            ref_counts=tuple(pool.ref_cnt),
            block_tables={r.uid: tuple(r.blocks) for r in self._requests.values()},
            cached_blocks=pool.num_cached,
        )

    def stats(self) -> EngineStats:
        return EngineStats(
            running=len(self._running),
            waiting=len(self._waiting),
            free_blocks=self._pool.num_free,
            cached_blocks=self._pool.num_cached,
            preemptions=self._preemptions,
            prefix_hit_tokens=self._prefix_hit_tokens,
            computed_tokens=self._computed_tokens,
            steps=self._steps,
        )

    # -- scheduling ----------------------------------------------------------------------

    def _blocks_for(self, num_tokens: int) -> int:
        return -(-num_tokens // self._bs)

    def _schedule(self) -> list[tuple[_Request, int]]:
        budget = self.config.max_num_batched_tokens
        scheduled: list[tuple[_Request, int]] = []
        pool = self._pool
        preempted = False
        bs = self._bs
        running = self._running
        i = 0
        while i < len(running) and budget > 0:  # the hot loop of a decode step
            req = running[i]
            computed = req.num_computed
            n = len(req.tokens) - computed
            if n > budget:
                n = budget
            need = -(-(computed + n) // bs) - len(req.blocks)
            if need > 0:
                while need > pool.num_free:
                    victim = running[-1]
                    self._preempt(victim)
                    preempted = True
                    if victim is req:
                        break
                if not req.blocks:
                    break  # req itself was preempted, and so was every request after it
                req.blocks.extend(pool.allocate(need))
            scheduled.append((req, n))
            budget -= n
            i += 1
        if preempted:
            return scheduled
        while self._waiting and budget > 0 and len(self._running) < self.config.max_num_seqs:
            req = self._waiting[0]
            hits = self._match_prefix(req) if self.config.enable_prefix_caching else []
            fresh = self._blocks_for(len(req.tokens)) - len(hits)
            taken_from_free = sum(1 for b in hits if pool.ref_cnt[b] == 0)
            if fresh + taken_from_free > pool.num_free:
                break
            self._waiting.popleft()
            pool.touch(hits)
            req.blocks = [*hits, *pool.allocate(fresh)]
            req.num_computed = len(hits) * self._bs
            req.num_registered = len(hits)
            self._prefix_hit_tokens += req.num_computed
            if req.cache is not None:
                self._load_agent_cache(req, req.cache)
            self._running.append(req)
            n = min(len(req.tokens) - req.num_computed, budget)
            scheduled.append((req, n))
            budget -= n
        return scheduled

    def _preempt(self, req: _Request) -> None:
        self._running.remove(req)
        self._pool.release(req.blocks)
        req.blocks = []
        req.num_computed = 0
        req.num_registered = 0
        self._waiting.appendleft(req)
        self._preemptions += 1

    def _hash(self, req: _Request, index: int) -> bytes:
        bs = self._bs
        while len(req.hashes) <= index:
            j = len(req.hashes)
            parent = req.hashes[-1] if req.hashes else self._root
            req.hashes.append(chain_hash(parent, req.tokens[j * bs : (j + 1) * bs]))
        return req.hashes[index]

    def _match_prefix(self, req: _Request) -> list[int]:
        hits: list[int] = []
        for index in range((len(req.tokens) - 1) // self._bs):  # never the last token
            block = self._pool.lookup(self._hash(req, index))
            if block is None:
                break
            hits.append(block)
        return hits

    def _register_full_blocks(self, req: _Request) -> None:
        full = req.num_computed // self._bs
        while req.num_registered < full:
            index = req.num_registered
            self._pool.cache(req.blocks[index], self._hash(req, index))
            req.num_registered += 1

    def _load_agent_cache(self, req: _Request, cache: AgentBlocks) -> None:
        matched = min(common_prefix(cache.tokens, req.tokens), len(req.tokens) - 1)
        start = req.num_computed
        if matched <= start:
            return
        self._backend.write_kv(
            self._kv,
            req.blocks,
            start,
            [np.asarray(k)[:, start:matched] for k in cache.keys],
            [np.asarray(v)[:, start:matched] for v in cache.values],
        )
        self._prefix_hit_tokens += matched - start
        req.num_computed = matched
        if self.config.enable_prefix_caching:
            self._register_full_blocks(req)

    def _finish(self, req: _Request, reason: FinishReason) -> CompletedGeneration:
        blocks = None
        if self.config.return_blocks:
            keys, values = self._backend.read_kv(self._kv, req.blocks, req.num_computed)
            blocks = AgentBlocks(
                agent_id=req.agent_id,
                tokens=tuple(req.tokens[: req.num_computed]),
                keys=tuple(keys),
                values=tuple(values),
                spec_hash=self._spec.spec_hash,
            )
        self._running.remove(req)
        self._pool.release(req.blocks)
        req.blocks = []
        del self._requests[req.uid]
        return CompletedGeneration(
            uid=req.uid,
            text=self._tokenizer.decode(req.output),
            blocks=blocks,
            finish_reason=reason,
            token_count=len(req.output),
            tokens=tuple(req.output),
        )
