"""One observable instrument per meter provider and name, reporting for every instance: the
OpenTelemetry SDK returns the first instrument of a name again and drops the callbacks of the
second, so without this a second instance in one process would report nothing."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from portfolio_core._observables import observe


def _points(reader: InMemoryMetricReader, name: str) -> dict[str, Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        str(dict(p.attributes or {}).get("who")): p.value
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == name
        for p in m.data.data_points
    }


class Reporter:
    def __init__(self, who: str, value: int) -> None:
        self.who = who
        self.value = value

    def observe(self, _options: Any) -> Iterator[Observation]:
        yield Observation(self.value, {"who": self.who})


def test_the_sdk_drops_the_callbacks_of_a_second_instrument_of_one_name() -> None:
    # why observe exists: what the SDK does when each instance creates its own instrument
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("m")
    a, b = Reporter("a", 1), Reporter("b", 2)
    meter.create_observable_gauge("g", callbacks=[a.observe])
    meter.create_observable_gauge("g", callbacks=[b.observe])
    assert _points(reader, "g") == {"a": 1}


def test_every_instance_is_reported_under_one_name() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    a, b = Reporter("a", 1), Reporter("b", 2)
    observe(provider, "m", "gauge", "g", a.observe)
    observe(provider, "m", "gauge", "g", b.observe)
    observe(provider, "m", "counter", "c", a.observe)
    observe(provider, "m", "counter", "c", b.observe)
    observe(provider, "m", "up_down_counter", "u", b.observe)
    assert _points(reader, "g") == {"a": 1, "b": 2}
    assert _points(reader, "c") == {"a": 1, "b": 2}
    assert _points(reader, "u") == {"b": 2}


def test_each_meter_provider_has_its_own_instrument() -> None:
    first, second = InMemoryMetricReader(), InMemoryMetricReader()
    a, b = Reporter("a", 1), Reporter("b", 2)
    observe(MeterProvider(metric_readers=[first]), "m", "gauge", "g", a.observe)
    observe(MeterProvider(metric_readers=[second]), "m", "gauge", "g", b.observe)
    assert _points(first, "g") == {"a": 1}
    assert _points(second, "g") == {"b": 2}


def test_an_instance_that_is_gone_stops_reporting_and_is_not_kept_alive() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    kept, dropped = Reporter("kept", 1), Reporter("dropped", 2)
    observe(provider, "m", "gauge", "g", kept.observe)
    observe(provider, "m", "gauge", "g", dropped.observe)
    del dropped
    gc.collect()
    assert _points(reader, "g") == {"kept": 1}


def test_a_plain_function_is_held_for_good() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])

    def report(_options: Any) -> Iterator[Observation]:
        yield Observation(7, {"who": "function"})

    observe(provider, "m", "gauge", "g", report)
    del report
    gc.collect()
    assert _points(reader, "g") == {"function": 7}
