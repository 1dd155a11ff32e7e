"""The state machines against pure models written from the port docstring."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import rule

from portfolio_core.ports.capabilities import supports
from portfolio_core.ports.stream import (
    Stream,
    StreamMessage,
    StreamOptions,
)
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.contracts.stream._common import (
    ACK,
    SOURCES,
    drain,
    ensure_group,
    group_opts,
    take,
)
from portfolio_core.testing.machines import AdapterMachine, run_machine
from portfolio_core.testing.plugin import KitSettings
from portfolio_core.testing.suite import ContractSuite, Factory

# -- state machines (pure reference models written from the port docstring) ----------------------

PAYLOADS = st.lists(st.integers(-5, 5) | st.text(max_size=3), max_size=4)


class StreamMachine(AdapterMachine[Stream]):
    """Writes, reads and acks against a model: per source, the written payloads and which are
    acknowledged.

    With ``ACKNOWLEDGE`` every read is a group read that is closed afterwards, so the model's
    rule is: a read of ``n`` yields the first ``n`` unacknowledged messages in write order
    (closed consumers hand their pending messages back at once). Without it, a plain read
    yields everything written, in order.
    """

    def __init__(self, factory: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(factory, **kwargs)
        self.groups = supports(self.adapter, ACK)
        self.written: dict[str, list[Any]] = {"s1": [], "s2": []}
        self.acked: dict[str, set[int]] = {"s1": set(), "s2": set()}
        self.delivered: dict[str, dict[str, int]] = {"s1": {}, "s2": {}}
        """source -> message id -> index in ``written``"""
        if self.groups:
            for source in self.written:
                self.run(ensure_group(self.adapter, source))

    @rule(source=SOURCES, payloads=PAYLOADS)
    def write(self, source: str, payloads: list[Any]) -> None:
        count = self.run(self.adapter.write_stream(source, payloads))
        assert count == len(payloads)
        self.written[source].extend(payloads)

    def _unacked(self, source: str) -> list[int]:
        return [i for i in range(len(self.written[source])) if i not in self.acked[source]]

    @rule(source=SOURCES, n=st.integers(0, 5), consumer=st.sampled_from(["c1", "c2"]))
    def read(self, source: str, n: int, consumer: str) -> None:
        if not self.groups:
            got = self.run(drain(self.adapter, source))
            assert got == self.written[source], f"plain read gave {got}"
            return
        messages = self.run(take(self.adapter.stream(source, group_opts(consumer)), n))
        expected = self._unacked(source)[:n]
        assert [m.payload for m in messages] == [self.written[source][i] for i in expected], (
            f"group read of {n} from {source} gave {[m.payload for m in messages]}"
        )
        for m, index in zip(messages, expected, strict=True):
            known = self.delivered[source].setdefault(m.id, index)
            assert known == index, f"id {m.id} now names another message"

    @rule(source=SOURCES, data=st.data())
    def ack(self, source: str, data: st.DataObject) -> None:
        if not self.groups or not self.delivered[source]:
            return
        message_id = data.draw(st.sampled_from(sorted(self.delivered[source])))
        index = self.delivered[source][message_id]
        message = StreamMessage(message_id, self.written[source][index], source)
        self.run(self.adapter.ack(source, message, StreamOptions(group="g")))
        self.acked[source].add(index)


"""Explicit step sequences of `TenantIsolationMachine` replayed on every run."""


class ModelClauses(ContractSuite[Stream]):
    """The state machines against pure models written from the port docstring."""

    @clause("stream.model", "any sequence of writes, group reads and acks behaves like the model")
    def test_state_machine(self, make_adapter: Factory, kit_settings: KitSettings) -> None:
        run_machine(StreamMachine, make_adapter, kit_settings)
