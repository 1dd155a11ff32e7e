"""What every EventStore adapter shares, by concern:

- `.validation`: input checks and the JSON encoding of new events;
- `.rules`: the expected-version check, idempotent retries and query matching;
- `.subscriptions`: the polling subscription loop and its wake-ups;
- `.index`: the in-process index of streams and the global log.

The memory adapter is the executable specification; the file and SQL adapters reuse these
pieces so that validation and subscription semantics cannot drift apart between them. The
names are re-exported here for the adapters that import them from this package.
"""

from portfolio_core.adapters._shared.codec import is_text
from portfolio_core.adapters._shared.event_store.index import (
    EventIndex,
    IndexedRow,
    query_rows,
    row_to_event,
)
from portfolio_core.adapters._shared.event_store.rules import (
    check_expected,
    idempotent_replay,
    json_equal,
    matches,
)
from portfolio_core.adapters._shared.event_store.subscriptions import (
    Fetch,
    PollingSubscription,
    SubscriptionSet,
    Wakeup,
    subscription_query,
)
from portfolio_core.adapters._shared.event_store.validation import (
    DEFAULT_MAX_EVENT_BYTES,
    MAX_STREAM_NAME,
    PORT,
    EncodedEvent,
    dumps,
    encode_batch,
    loads,
    refuse_nul,
    refuse_surrogates,
    validate_expected,
    validate_position,
    validate_query,
    validate_read_args,
    validate_stream,
    validate_subscribe,
)

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "MAX_STREAM_NAME",
    "PORT",
    "EncodedEvent",
    "EventIndex",
    "Fetch",
    "IndexedRow",
    "PollingSubscription",
    "SubscriptionSet",
    "Wakeup",
    "check_expected",
    "dumps",
    "encode_batch",
    "idempotent_replay",
    "is_text",
    "json_equal",
    "loads",
    "matches",
    "query_rows",
    "refuse_nul",
    "refuse_surrogates",
    "row_to_event",
    "subscription_query",
    "validate_expected",
    "validate_position",
    "validate_query",
    "validate_read_args",
    "validate_stream",
    "validate_subscribe",
]
