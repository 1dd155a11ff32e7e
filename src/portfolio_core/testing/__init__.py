"""The conformance kit: contract test bases, state machines and test doubles."""
