"""The model service's edges: names are required and load is idempotent, unknown tickets are
not found, and a model that never finishes is a timeout rather than a hang."""

from __future__ import annotations

import pytest

from portfolio_core.ports import (
    CompletedGeneration,
    InvalidInputError,
    NotFoundError,
    PortTimeoutError,
)
from portfolio_core.services import ModelService
from portfolio_core.testing.doubles import ScriptedGenerationEngine


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
