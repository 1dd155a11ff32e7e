"""Small, correct adapters of the ports whose suites the kit owns, used to validate them."""

from __future__ import annotations

from collections.abc import Sequence

from portfolio_core.ports import InvalidInputError


class ByteTokenizer:
    """UTF-8 bytes as ids 0..255; 256 = BOS, 257 = EOS."""

    BOS = 256
    EOS = 257

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        ids = list(text.encode("utf-8"))
        return [self.BOS, *ids] if add_special_tokens else ids

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        out = bytearray()
        for i in ids:
            if not 0 <= i < self.vocab_size:
                raise InvalidInputError(f"token id {i} is outside the vocabulary", field="ids")
            if i < 256:
                out.append(i)
            elif not skip_special_tokens:
                out.extend(b"<|bos|>" if i == self.BOS else b"<|eos|>")
        return out.decode("utf-8", errors="replace")

    @property
    def eos_token_id(self) -> int:
        return self.EOS

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return frozenset({self.EOS})

    @property
    def bos_token_id(self) -> int | None:
        return self.BOS

    @property
    def vocab_size(self) -> int:
        return 258


# -- LLM ---------------------------------------------------------------------------------------

from collections.abc import AsyncIterator, Mapping  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from portfolio_core import ports as p  # noqa: E402


class EchoLLM:
    """Answers with the last user message, word-truncated to max_tokens; streams per word."""

    capabilities = p.declare(p.LLMCapability.STREAMING, p.LLMCapability.OFFLINE)

    def _answer(
        self, messages: Sequence[p.Message], opts: p.CompletionOptions | None
    ) -> p.Completion:
        opts = opts or p.CompletionOptions()
        if not messages:
            raise InvalidInputError("empty conversation", field="messages")
        opts.check()
        if opts.tools:
            raise p.UnsupportedError("no tools", capability=p.LLMCapability.TOOLS)
        text = [m.content for m in messages if m.role == "user"][-1]
        for stop in opts.stop:
            text = text.split(stop, 1)[0] if stop else text
        words = text.split()
        finish = "length" if len(words) > opts.max_tokens else "stop"
        words = words[: opts.max_tokens]
        prompt = sum(len(m.content.split()) or 1 for m in messages)
        return p.Completion(" ".join(words), "echo", p.Usage(prompt, len(words)), finish)

    async def complete(
        self, messages: Sequence[p.Message], opts: p.CompletionOptions | None = None
    ) -> p.Completion:
        return self._answer(messages, opts)

    async def stream(
        self, messages: Sequence[p.Message], opts: p.CompletionOptions | None = None
    ) -> AsyncIterator[p.CompletionChunk]:
        done = self._answer(messages, opts)
        words = done.text.split(" ")
        for i, word in enumerate(words):
            text = word if i == 0 else " " + word
            last = i == len(words) - 1
            yield p.CompletionChunk(
                text, done.finish_reason if last else None, done.usage if last else None
            )


# -- Router ------------------------------------------------------------------------------------


class SimpleRouter:
    """The Router rules in few lines: filter (exclude, tags, prices, context window), keep the
    lowest fallback group, rank by the strategy; complete falls back, then raises
    NoHealthyProviderError from the last failure."""

    capabilities = p.declare(p.RouterCapability.HEALTH_CHECKS)

    def __init__(self) -> None:
        self.providers: dict[str, tuple[p.Provider, p.LLM]] = {}
        self.strategy = p.RoutingStrategy.FALLBACK
        self.turns: dict[int, int] = {}

    def _candidates(
        self, opts: p.RouteOptions, tokens: int = 0, *, turn: bool = False
    ) -> list[p.Provider]:
        strategy = opts.strategy or self.strategy
        cost = strategy == "cost_optimized"
        found = [
            prov
            for prov, _ in self.providers.values()
            if prov.name not in opts.exclude
            and opts.required_tags <= prov.tags
            and prov.context_window >= tokens + opts.expected_output_tokens
            and (
                not cost
                or (
                    prov.input_price_per_mtok is not None and prov.output_price_per_mtok is not None
                )
            )
        ]
        if not found:
            return []
        low = min(prov.group for prov in found)
        found = [prov for prov in found if prov.group == low]
        if strategy == "cost_optimized":
            found.sort(
                key=lambda x: (
                    tokens * (x.input_price_per_mtok or 0)
                    + opts.expected_output_tokens * (x.output_price_per_mtok or 0)
                )
            )
        elif strategy == "specialist":
            found.sort(key=lambda x: len(x.tags - opts.required_tags))
        elif strategy == "round_robin":
            n = self.turns.get(low, 0)
            if turn:
                self.turns[low] = n + 1
            found = found[n % len(found) :] + found[: n % len(found)]
        return found

    async def route(
        self, messages: Sequence[p.Message], opts: p.RouteOptions | None = None
    ) -> p.Provider:
        tokens = p.estimate_tokens(messages)
        found = self._candidates(opts or p.RouteOptions(), tokens, turn=True)
        if not found:
            raise p.NoHealthyProviderError("no provider qualifies")
        return found[0]

    async def complete(
        self, messages: Sequence[p.Message], opts: p.RouteOptions | None = None
    ) -> p.Completion:
        opts = opts or p.RouteOptions()
        failed: set[str] = set()
        last: p.PortError | None = None
        for _ in range(len(self.providers) + 1):
            try:
                chosen = await self.route(
                    messages,
                    p.RouteOptions(
                        required_tags=opts.required_tags,
                        expected_output_tokens=opts.expected_output_tokens,
                        exclude=opts.exclude | failed,
                        strategy=opts.strategy,
                        completion=opts.completion,
                    ),
                )
            except p.NoHealthyProviderError:
                if last is None:
                    raise
                raise p.NoHealthyProviderError(f"every provider failed: {last}") from last
            try:
                done = await self.providers[chosen.name][1].complete(messages, opts.completion)
            except p.PortError as exc:
                if not exc.retryable:
                    raise
                failed.add(chosen.name)
                last = exc
                continue
            return p.Completion(
                done.text, done.model, done.usage, done.finish_reason, done.tool_calls, chosen.name
            )
        raise p.UnavailableError("every provider failed")

    async def register_provider(self, provider: p.Provider, llm: p.LLM) -> None:
        known = self.providers.get(provider.name)
        if known is not None and known[0] != provider:
            raise p.ConflictError(f"provider {provider.name!r} is already registered")
        self.providers[provider.name] = (provider, llm)

    async def health_check(self, name: str) -> p.HealthStatus:
        if name not in self.providers:
            raise p.NotFoundError(f"no provider {name!r}", key=name)
        return p.HealthStatus(name, True)

    async def list_providers(self) -> list[p.Provider]:
        return [prov for prov, _ in self.providers.values()]

    async def set_strategy(self, strategy: p.RoutingStrategy) -> None:
        self.strategy = strategy


# -- Agent -------------------------------------------------------------------------------------


class LoopAgent:
    """Alternates model turns and tool calls; one tool, ``add(a, b)``."""

    TOOLS = (
        p.ToolSpec(
            "add",
            "Add two integers",
            {"type": "object", "properties": {"a": {}, "b": {}}, "required": ["a", "b"]},
        ),
    )

    def __init__(self, llm: p.LLM | None = None, max_iterations: int = 10) -> None:
        from portfolio_core.testing.doubles import ScriptedLLM

        self.llm = llm if llm is not None else ScriptedLLM(default="done")
        self._max = max_iterations

    @property
    def max_iterations(self) -> int:
        return self._max

    def available_tools(self) -> list[p.ToolSpec]:
        return list(self.TOOLS)

    async def execute_tool(self, call: p.ToolCall) -> p.ToolResult:
        if call.name != "add":
            return p.ToolResult(call.id, call.name, f"unknown tool {call.name!r}", is_error=True)
        try:
            return p.ToolResult(
                call.id, call.name, str(int(call.arguments["a"]) + int(call.arguments["b"]))
            )
        except (KeyError, TypeError, ValueError) as exc:
            return p.ToolResult(call.id, call.name, f"bad arguments: {exc}", is_error=True)

    async def run(self, task: str, opts: p.AgentOptions | None = None) -> p.AgentResult:
        limit = (opts.max_iterations if opts and opts.max_iterations else None) or self._max
        transcript: list[p.Message] = [p.Message("user", task)]
        calls: list[p.ToolCall] = []
        for turn in range(1, limit + 1):
            done = await self.llm.complete(transcript, p.CompletionOptions(tools=self.TOOLS))
            transcript.append(p.Message("assistant", done.text, tool_calls=done.tool_calls))
            if not done.tool_calls:
                return p.AgentResult(done.text, tuple(transcript), turn, tuple(calls))
            for call in done.tool_calls:
                calls.append(call)
                result = await self.execute_tool(call)
                transcript.append(p.Message("tool", result.content, tool_call_id=call.id))
        raise p.MaxIterationsExceededError(
            f"no answer after {limit} turns", transcript=tuple(transcript), iterations=limit
        )


# -- Pipeline ----------------------------------------------------------------------------------


class UpperStep:
    """Reads ``text``, writes ``upper``."""

    name = "upper"
    version = "1"
    required_inputs = frozenset({"text"})
    cacheable = True

    @property
    def output_schema(self) -> Mapping[str, type]:
        return {"upper": str}

    def validate_input(self, context: Mapping[str, Any]) -> list[str]:
        problems = [f"missing input {k!r}" for k in sorted(self.required_inputs - set(context))]
        if "text" in context and not isinstance(context["text"], str):
            problems.append("'text' must be a string")
        return problems

    async def execute(self, context: Mapping[str, Any], config: Mapping[str, Any]) -> p.StepResult:
        problems = self.validate_input(context)
        if problems:
            return p.StepResult.error("; ".join(problems))
        return p.StepResult.ok(upper=context["text"].upper())


class SequencePipeline:
    """Runs its steps in order over a growing context."""

    def __init__(self, steps: Sequence[p.PipelineStep] = (UpperStep(),)) -> None:
        self.steps = list(steps)

    async def run(self, inputs: Mapping[str, Any]) -> p.PipelineResult:
        context = dict(inputs)
        results: dict[str, p.StepResult] = {}
        for step in self.steps:
            problems = step.validate_input(context)
            result = (
                p.StepResult.error("; ".join(problems))
                if problems
                else await step.execute(context, {})
            )
            results[step.name] = result
            context.update(result.outputs)
        return p.PipelineResult(context, results)


# -- inference ---------------------------------------------------------------------------------

import numpy as np  # noqa: E402


class ToyBackend:
    """A deterministic 'model': the next id is a hash of the last two; KV = one-hot-ish rows."""

    SPEC = p.ModelCacheSpec(1, 1, 4, "float32", 258, 64, "toy")

    def extract_model_spec(self) -> p.ModelCacheSpec:
        return self.SPEC

    def _kv(self, tokens: Sequence[int]) -> tuple[Any, Any]:
        arr = np.array([[[t, t % 7, t % 3, 1.0] for t in tokens]], dtype="float32")
        return arr, arr * 2

    def generate(
        self,
        prompt_tokens: Sequence[int],
        cache: p.AgentBlocks | None = None,
        *,
        max_tokens: int = 64,
        temperature: float = 0.0,
        stop_ids: frozenset[int] = frozenset(),
    ) -> p.Generation:
        spec = self.SPEC
        if not prompt_tokens:
            raise InvalidInputError("empty prompt", field="prompt_tokens")
        if any(not 0 <= t < spec.vocab_size for t in prompt_tokens):
            raise InvalidInputError("id outside the vocabulary", field="prompt_tokens")
        if len(prompt_tokens) > spec.max_seq_len:
            raise InvalidInputError("prompt too long", field="prompt_tokens")
        if cache is not None and cache.spec_hash != spec.spec_hash:
            raise InvalidInputError("cache of another model", field="cache")
        seq = list(prompt_tokens)
        out: list[int] = []
        finish = "length"
        while len(out) < max_tokens and len(seq) < spec.max_seq_len:
            nxt = (seq[-1] * 31 + (seq[-2] if len(seq) > 1 else 0) * 7 + 11) % 97 + 32
            if nxt == 127:
                nxt = 257
            out.append(nxt)
            seq.append(nxt)
            if nxt in stop_ids or nxt == 257:
                finish = "stop"
                break
        k, v = self._kv(seq)
        blocks = p.AgentBlocks("toy", tuple(seq), (k,), (v,), spec.spec_hash)
        return p.Generation(tuple(out), finish, blocks)


class ToyEngine:
    """Round-robin engine: each step decodes one token for every running request."""

    def __init__(self, backend: ToyBackend | None = None, max_running: int = 2) -> None:
        self.backend = backend or ToyBackend()
        self.tokenizer = ByteTokenizer()
        self.max_running = max_running
        self.queue: list[str] = []
        self.running: dict[str, dict[str, Any]] = {}
        self.aborted: list[str] = []
        self.count = 0

    def submit(
        self,
        agent_id: str,
        prompt: str | Sequence[int],
        cache: p.AgentBlocks | None = None,
        max_tokens: int = 256,
    ) -> str:
        ids = self.tokenizer.encode(prompt) if isinstance(prompt, str) else list(prompt)
        if not ids or max_tokens < 1:
            raise InvalidInputError("empty prompt or max_tokens < 1")
        self.count += 1
        uid = f"u{self.count}"
        self.running[uid] = {"ids": ids, "out": [], "max": max_tokens, "started": False}
        self.queue.append(uid)
        return uid

    def step(self) -> list[p.CompletedGeneration]:
        done = [
            p.CompletedGeneration(uid, "", None, p.FinishReason.ABORT, 0) for uid in self.aborted
        ]
        self.aborted.clear()
        active = [u for u in self.queue if u in self.running][: self.max_running]
        for uid in active:
            req = self.running[uid]
            gen = self.backend.generate([*req["ids"], *req["out"]], max_tokens=1)
            req["out"].extend(gen.tokens)
            if gen.finish_reason == "stop" or len(req["out"]) >= req["max"]:
                del self.running[uid]
                self.queue.remove(uid)
                reason = (
                    p.FinishReason.STOP if gen.finish_reason == "stop" else p.FinishReason.LENGTH
                )
                toks = tuple(req["out"])
                done.append(
                    p.CompletedGeneration(
                        uid, self.tokenizer.decode(toks), None, reason, len(toks), toks
                    )
                )
        return done

    def abort(self, uid: str) -> bool:
        if uid not in self.running:
            return False
        del self.running[uid]
        self.queue.remove(uid)
        self.aborted.append(uid)
        return True

    def has_unfinished(self) -> bool:
        return bool(self.running or self.aborted)


class DirPersistence:
    """KV caches as .npz files in a directory, written to a temp file then renamed."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, agent_id: str) -> Path:
        if not agent_id or "/" in agent_id or agent_id.startswith("."):
            raise InvalidInputError(f"bad agent id {agent_id!r}", field="agent_id")
        return self.root / f"{agent_id}.npz"

    def save(self, agent_id: str, blocks: p.AgentBlocks) -> None:
        import os
        import uuid

        path = self._path(agent_id)
        tmp = self.root / f".{agent_id}.{uuid.uuid4().hex}.tmp.npz"
        arrays = {f"k{i}": a for i, a in enumerate(blocks.keys)} | {
            f"v{i}": a for i, a in enumerate(blocks.values)
        }
        np.savez(
            tmp,
            tokens=np.array(blocks.tokens, dtype="int64"),
            spec=np.array(blocks.spec_hash),
            n=np.array(len(blocks.keys)),
            **arrays,
        )
        os.replace(tmp, path)

    def load(self, agent_id: str, spec_hash: str) -> p.AgentBlocks:
        path = self._path(agent_id)
        if not path.exists():
            raise p.NotFoundError(f"nothing saved for {agent_id!r}", key=agent_id)
        with np.load(path) as data:
            if str(data["spec"]) != spec_hash:
                raise InvalidInputError("saved by another model", field="spec_hash")
            n = int(data["n"])
            return p.AgentBlocks(
                agent_id,
                tuple(int(t) for t in data["tokens"]),
                tuple(data[f"k{i}"] for i in range(n)),
                tuple(data[f"v{i}"] for i in range(n)),
                spec_hash,
            )

    def exists(self, agent_id: str) -> bool:
        return self._path(agent_id).exists()

    def delete(self, agent_id: str) -> bool:
        path = self._path(agent_id)
        if path.exists():
            path.unlink()
            return True
        return False

    def list_cached_agents(self) -> list[str]:
        return sorted(f.name[:-4] for f in self.root.glob("*.npz") if not f.name.startswith("."))


def unreachable_database() -> object:
    """A factory that fails the way a factory with a wrong connection string does."""
    raise ConnectionRefusedError("cannot reach the database at 127.0.0.1:1")
