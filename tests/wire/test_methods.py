"""How port methods cross the wire: which calls are remote, and which ports a remote adapter
can serve completely."""

from __future__ import annotations

from portfolio_core.ports.catalogue import PORTS, port_by_key
from portfolio_core.ports.introspection import members_of
from portfolio_core.wire import CallKind, methods_of, served_ports


def test_calls_iterations_and_subscriptions_cross_the_wire_local_members_do_not() -> None:
    kinds = {name: (spec.kind, spec.remote) for name, spec in methods_of("event_store").items()}
    assert kinds["append"] == (CallKind.CALL, True)
    assert kinds["subscribe"] == (CallKind.SUBSCRIBE, True)
    assert kinds["unsubscribe"] == (CallKind.UNSUBSCRIBE, False)
    assert methods_of("llm")["stream"].remote
    assert not methods_of("tenant")["with_tenant"].remote


def test_served_ports_are_the_async_ports_with_every_member_on_the_wire() -> None:
    served = served_ports()
    assert {p.key for p in served} >= {"cache", "event_store", "llm", "job_queue"}
    for port in PORTS:
        complete = port.is_async and all(
            m.name in methods_of(port.key) for m in members_of(port.protocol)
        )
        assert (port in served) is complete, port.key
    # a router's register_provider takes an LLM object: no remote router is complete
    assert port_by_key("router") not in served
    assert "register_provider" not in methods_of("router")
