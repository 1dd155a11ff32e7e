"""Remote adapters: any async port served by a portal, reached by address.

``RemoteCache``, ``RemoteEventStore``, ``RemoteStream``, ``RemoteTenant``, ``RemoteLLM``,
``RemotePipeline``, ``RemoteConfigStore`` and ``RemoteJobQueue`` are generated from their
protocols (`remote_adapter_class`) and chosen in a manifest with ``adapter: remote``
(or an ``address:``), e.g.::

    events:
      port: event_store
      address: http://127.0.0.1:8000/events

`call_at` calls one method of an addressed entry without wiring anything. Install with
``pip install portfolio-core[portal]``. See docs/portal/remote.md.
"""

from __future__ import annotations

from portfolio_core.adapters.remote._adapter import (
    NOT_REMOTABLE,
    SHARED_THROUGH_PORTAL,
    RemoteAdapter,
)
from portfolio_core.adapters.remote._address import REMOTE_SCHEMES, Address, parse_address
from portfolio_core.adapters.remote._call import call_at
from portfolio_core.adapters.remote._config import RemoteConfig
from portfolio_core.adapters.remote._generate import remote_adapter_class
from portfolio_core.adapters.remote._subscription import RemoteSubscription

__all__ = [
    "NOT_REMOTABLE",
    "REMOTE_SCHEMES",
    "SHARED_THROUGH_PORTAL",
    "Address",
    "RemoteAdapter",
    "RemoteCache",
    "RemoteConfig",
    "RemoteConfigStore",
    "RemoteEventStore",
    "RemoteJobQueue",
    "RemoteLLM",
    "RemotePipeline",
    "RemoteStream",
    "RemoteSubscription",
    "RemoteTenant",
    "call_at",
    "parse_address",
    "remote_adapter_class",
]

RemoteCache = remote_adapter_class("cache")
RemoteEventStore = remote_adapter_class("event_store")
RemoteStream = remote_adapter_class("stream")
RemoteTenant = remote_adapter_class("tenant")
RemoteLLM = remote_adapter_class("llm")
RemotePipeline = remote_adapter_class("pipeline")
RemoteConfigStore = remote_adapter_class("config_store")
RemoteJobQueue = remote_adapter_class("job_queue")
