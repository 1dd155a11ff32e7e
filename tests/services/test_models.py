"""The model service's edges: names are required and load is idempotent, unknown tickets are
not found, a model that never finishes is a timeout rather than a hang, and a memory budget
shrinks the loaded engine's prefix cache through the service."""

from __future__ import annotations

import pytest

from portfolio_core.adapters.local.byte_tokenizer import ByteTokenizer
from portfolio_core.adapters.local.generation_engine import LocalGenerationEngine
from portfolio_core.adapters.local.numpy_backend import NumpyModelBackend
from portfolio_core.ports import (
    CompletedGeneration,
    InvalidInputError,
    NotFoundError,
    PortTimeoutError,
    ReleaseOrder,
    Shrinkable,
)
from portfolio_core.services import ModelService
from portfolio_core.services.memory import MemoryBudget, MemoryReading, shrinkable_components
from portfolio_core.testing.doubles import ScriptedGenerationEngine
from portfolio_core.testing.shrinkable import check_shrinkable


def test_a_model_needs_a_name() -> None:
    with pytest.raises(InvalidInputError, match="a model needs a name"):
        ModelService().register("", ScriptedGenerationEngine)


def test_loading_the_loaded_model_again_builds_nothing() -> None:
    built: list[ScriptedGenerationEngine] = []

    def factory() -> ScriptedGenerationEngine:
        built.append(ScriptedGenerationEngine())
        return built[-1]

    service = ModelService()
    service.register("m", factory)
    service.load("m")
    service.load("m")
    assert len(built) == 1


def test_a_ticket_it_never_issued_is_not_found_and_not_aborted() -> None:
    service = ModelService()
    service.register("m", ScriptedGenerationEngine)
    service.load("m")
    with pytest.raises(NotFoundError, match="no pending request '1:nope'"):
        service.wait("1:nope")
    ticket = service.submit("agent", [1, 2], None, 4, 0.0)
    assert service.abort("9:" + ticket.partition(":")[2]) is False  # another model's epoch
    assert service.abort(ticket) is True
    assert service.wait(ticket).uid == ticket.partition(":")[2]


class StuckEngine(ScriptedGenerationEngine):
    """Takes requests and never finishes one."""

    def step(self) -> list[CompletedGeneration]:
        return []


def test_a_request_that_never_finishes_times_out_and_so_does_draining() -> None:
    service = ModelService(max_drain_steps=3)
    service.register("m", StuckEngine)
    service.load("m")
    ticket = service.submit("agent", [1], None, 4, 0.0)
    with pytest.raises(PortTimeoutError, match="did not finish in 3 steps"):
        service.wait(ticket)
    with pytest.raises(PortTimeoutError, match="model 'm' did not drain"):
        service.unload()


MiB = 2**20


# -- memory: the loaded engine's prefix cache shrinks under a budget ------------------------


class Reading:
    """RSS as a fixed base plus what the service's engine still holds."""

    def __init__(self, base: int, service: ModelService) -> None:
        self.base = base
        self.service = service

    def __call__(self) -> MemoryReading:
        return MemoryReading(self.base + self.service.resident_bytes(), None)


def local_engine() -> LocalGenerationEngine:
    model = NumpyModelBackend(d_model=128, n_heads=4, n_kv_heads=4, seed=5, max_seq_len=512)
    return LocalGenerationEngine(model, ByteTokenizer(), num_blocks=32)


def generate(service: ModelService, prompt: list[int]) -> tuple[int, ...]:
    return service.wait(service.submit("agent", prompt, None, 6, 0.0)).tokens


def test_the_service_is_shrinkable_at_the_prefix_cache_place() -> None:
    service = ModelService()
    assert isinstance(service, Shrinkable)
    assert service.release_order == ReleaseOrder.PREFIX_CACHE
    assert shrinkable_components([("models", service)]) == [("models", service)]


def test_the_service_keeps_the_shrinkable_contract() -> None:
    service = ModelService()
    service.register("local", local_engine)
    service.load("local")

    def fill() -> None:
        generate(service, list(b"a prompt long enough to fill a block or two of keys"))

    check_shrinkable(service, fill)


def test_with_no_model_loaded_or_an_engine_that_cannot_shrink_it_holds_nothing() -> None:
    service = ModelService()
    assert service.resident_bytes() == 0
    assert service.release(10**9) == 0
    service.register("scripted", ScriptedGenerationEngine)
    service.load("scripted")
    assert service.resident_bytes() == 0
    assert service.release(10**9) == 0


def test_a_budget_shrinks_the_loaded_engines_prefix_cache_and_no_request_notices() -> None:
    service = ModelService()
    service.register("local", local_engine)
    service.load("local")
    prompt = list(b"the same long system prompt, shared by every request " * 2)
    first = generate(service, prompt)
    engine = service._current.engine  # type: ignore[union-attr]
    assert isinstance(engine, LocalGenerationEngine)
    held = service.resident_bytes()
    assert held == engine.resident_bytes() > 0
    assert engine.stats().cached_blocks > 0

    budget = MemoryBudget(10 * MiB, Reading(10 * MiB, service), [("models", service)])
    status = budget.check()  # over by everything the prefix cache holds
    assert [r.name for r in status.released] == ["models"]
    assert service.resident_bytes() < held
    assert engine.stats().cached_blocks < engine.num_blocks
    assert generate(service, prompt) == first  # the dropped prefix is recomputed, same tokens


def test_after_a_swap_the_new_model_is_the_one_asked() -> None:
    service = ModelService()
    service.register("local", local_engine)
    service.register("scripted", ScriptedGenerationEngine)
    service.load("local")
    generate(service, list(b"a prompt long enough to fill a block or two of keys"))
    assert service.resident_bytes() > 0
    service.load("scripted")  # the local engine is drained and closed
    assert service.resident_bytes() == 0
    assert service.release(10**9) == 0
