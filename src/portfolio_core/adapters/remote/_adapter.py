"""The remote adapter of any async port, generated from its protocol.

`remote_adapter_class` (in ``_generate``) builds, once per port, a subclass of
`RemoteAdapter` whose methods have the protocol's names and signatures: each ``CALL`` method
encodes its arguments by their declared types and sends one request; ``ITERATE`` methods
return async iterators (``_iteration``); ``SUBSCRIBE`` methods return a
`RemoteSubscription`; ``LOCAL`` methods run here (see ``_local``). Nothing is written per
port except the few local parts and the capability notes below. This module holds what every
generated class shares: transports, encoding, metadata and capabilities.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel

from portfolio_core.adapters.remote import _local
from portfolio_core.adapters.remote._address import Address, parse_address
from portfolio_core.adapters.remote._config import RemoteConfig
from portfolio_core.adapters.remote._http import HttpTransport
from portfolio_core.adapters.remote._iteration import Iteration, Resuming
from portfolio_core.adapters.remote._subscription import RemoteSubscription
from portfolio_core.adapters.remote._ws import Channel, WsLink
from portfolio_core.ports.capabilities import capabilities_of
from portfolio_core.ports.catalogue import PortInfo
from portfolio_core.ports.errors import InvalidInputError, UnavailableError, UnsupportedError
from portfolio_core.ports.event_store import OnHandlerError
from portfolio_core.ports.tenant import current_tenant
from portfolio_core.wire import (
    API_PREFIX,
    TENANT_HEADER,
    TENANT_PARAM,
    WS_PATH,
    MethodSpec,
    dumps,
    encode_tenant,
    encoder_for,
    loads,
    result_validator,
)

__all__ = ["NOT_REMOTABLE", "RemoteAdapter"]

_MISSING: Any = object()

#: capabilities a remote adapter never declares, whatever the served adapter declares: why
NOT_REMOTABLE: dict[str, dict[str, str]] = {
    "cache": {
        "cache.fetch": "fetch(key, populate) calls a populate function in the caller's process; "
        "single-flight population would need the server to call back into every caller",
    },
    "tenant": {
        "tenant.config_overrides": "with_tenant() is synchronous and local: it cannot fetch the "
        "served adapter's per-tenant overrides without a network call",
    },
}
#: capabilities a remote adapter adds: every process reaching the portal shares the entry
SHARED_THROUGH_PORTAL: dict[str, tuple[str, ...]] = {
    "cache": ("cache.shared",),
    "config_store": ("config_store.shared",),
    "job_queue": ("job_queue.shared",),
    "event_store": ("event_store.shared",),
    "tenant": ("tenant.shared_quotas",),
}


class RemoteAdapter:
    """Base of every generated remote adapter: transports, metadata and capabilities.

    Guarantees (for every port):

    * errors come back as the port error classes the served adapter raised, with their
      fields; a refused or cut connection raises `UnavailableError` (retryable) and a
      call without an answer within ``timeout`` raises `PortTimeoutError`; a call never
      hangs;
    * the current tenant (``ports.current_tenant()``) travels with every call;
    * ``capabilities`` is the served adapter's declaration (read by `start`, or given in
      the config) minus what cannot hold over a network (``NOT_REMOTABLE``) plus what the
      portal adds (``SHARED_THROUGH_PORTAL``);
    * ``aclose`` is idempotent.
    """

    port: ClassVar[PortInfo]
    config_model: ClassVar[type[BaseModel]] = RemoteConfig
    _specs: ClassVar[Mapping[str, MethodSpec]]
    _encoders: ClassVar[dict[str, tuple[tuple[str, Any, bool], ...]]]
    _materialised: ClassVar[dict[str, tuple[tuple[str, Any, bool], ...]]]
    _result_decoders: ClassVar[dict[str, Callable[[Any], Any]]]

    def __init__(
        self,
        address: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        pool_size: int = 100,
        heartbeat: float = 15.0,
        credit: int = 64,
        reconnect_delay: float = 0.05,
        reconnect_max_delay: float = 5.0,
        ca_file: str | None = None,
        verify_tls: bool = True,
        capabilities: Iterable[str] | None = None,
    ) -> None:
        self.address: Address = parse_address(address)
        self._timeout = timeout
        self._heartbeat = heartbeat
        self._credit = credit
        self._reconnect_delay = reconnect_delay
        self._reconnect_max_delay = reconnect_max_delay
        headers = {"content-type": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        context: ssl.SSLContext | bool = False
        if self.address.secure:
            context = ssl.create_default_context(cafile=ca_file) if verify_tls else False
            if not verify_tls:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        self._http = HttpTransport(
            headers=headers,
            timeout=timeout,
            connect_timeout=connect_timeout,
            pool_size=pool_size,
            ssl_context=context,
        )
        base = f"{self.address.base}{API_PREFIX}/{self.address.entry}"
        self._urls = {name: f"{base}/{name}" for name in self._specs}
        self._describe_url = base
        self._ws_url = self.address.ws_base + WS_PATH
        self._methods = {name: f"{self.address.entry}.{name}" for name in self._specs}
        self._link: WsLink | None = None
        self._link_lock: asyncio.Lock | None = None
        self._subscriptions: dict[str, RemoteSubscription] = {}
        self._declared = self._adjust(capabilities) if capabilities is not None else None
        self._closed = False

    @classmethod
    def from_config(cls, config: RemoteConfig) -> Self:
        return cls(
            config.address,
            api_key=config.api_key.get_secret_value() if config.api_key else None,
            timeout=config.timeout,
            connect_timeout=config.connect_timeout,
            pool_size=config.pool_size,
            heartbeat=config.heartbeat,
            credit=config.credit,
            reconnect_delay=config.reconnect_delay,
            reconnect_max_delay=config.reconnect_max_delay,
            ca_file=str(config.ca_file) if config.ca_file else None,
            verify_tls=config.verify_tls,
            capabilities=config.capabilities,
        )

    # -- capabilities and lifecycle -----------------------------------------------------------

    def _adjust(self, declared: Iterable[str]) -> frozenset[str]:
        key = self.port.key
        dropped = NOT_REMOTABLE.get(key, {})
        kept = {str(c) for c in declared if str(c) not in dropped}
        return frozenset(kept | set(SHARED_THROUGH_PORTAL.get(key, ())))

    @property
    def capabilities(self) -> frozenset[str]:
        """What the served adapter declares, adjusted for the network (empty before
        `start` unless configured)."""
        return self._declared or frozenset()

    @property
    def not_remotable(self) -> Mapping[str, str]:
        """Capabilities this port's remote adapters never declare, and why."""
        return NOT_REMOTABLE.get(self.port.key, {})

    async def describe(self) -> Mapping[str, Any]:
        """The portal's description of the entry (port, capabilities, methods)."""
        described = await self._http.get(self._describe_url)
        if described.get("port") != self.port.key:
            raise InvalidInputError(
                f"{self.address} serves a {described.get('port')} entry, not a {self.port.key}",
                field="address",
            )
        return described  # type: ignore[no-any-return]

    async def start(self) -> None:
        """Ask the portal what the entry is; raises when it is not a ``port`` entry, is not
        served, or the credentials are refused."""
        described = await self.describe()
        served = self._adjust(described.get("capabilities", ()))
        if self._declared is not None and not self._declared <= served:
            missing = ", ".join(sorted(self._declared - served))
            raise UnsupportedError(
                f"{self.address} does not declare the configured capabilities {missing}"
            )
        self._declared = served

    async def ping(self) -> None:
        """Raises when the portal or the entry cannot be reached."""
        await self.describe()

    async def aclose(self) -> None:
        """Stop every subscription and close the connections; idempotent. Iterations still
        open on this adapter end (``StopAsyncIteration``), as on a closed local adapter."""
        self._closed = True
        for subscription in list(self._subscriptions.values()):
            await subscription.stop()
        self._subscriptions.clear()
        link, self._link = self._link, None
        if link is not None:
            await link.close()
        await self._http.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.address}>"

    # -- transports ---------------------------------------------------------------------------

    async def _ws(self) -> WsLink:
        link = self._link
        if link is not None and link.alive:
            return link
        if self._link_lock is None:
            self._link_lock = asyncio.Lock()
        async with self._link_lock:
            link = self._link
            if link is None or not link.alive:
                if link is not None:
                    await link.close()
                link = await WsLink.connect(self._http, self._ws_url, self._heartbeat)
                self._link = link
            return link

    def _payload(self, spec: MethodSpec, args: Mapping[str, Any]) -> dict[str, Any]:
        payload: dict[str, Any] = {}
        for name, encode, _materialise in self._encoders[spec.name]:
            value = args.get(name, _MISSING)
            if value is not _MISSING:
                payload[name] = encode(value, name)
        return payload

    async def _send(self, spec: MethodSpec, payload: dict[str, Any]) -> Any:
        tenant = current_tenant()
        timeout: float | None = None
        if spec.waits is not None:  # the server may wait this long by design
            waits = payload.get(spec.waits)
            if isinstance(waits, int | float) and not isinstance(waits, bool) and waits > 0:
                timeout = self._timeout + waits
        if self.address.websocket:
            if tenant is not None:
                payload = {**payload, TENANT_PARAM: loads(encode_tenant(tenant))}
            link = self._link
            if link is None or not link.alive:
                link = await self._ws()
            return await link.call(
                self._methods[spec.name], dumps(payload), timeout or self._timeout
            )
        headers = {TENANT_HEADER: encode_tenant(tenant)} if tenant is not None else None
        return loads(await self._http.post(self._urls[spec.name], dumps(payload), headers, timeout))

    async def _call(self, spec: MethodSpec, args: dict[str, Any]) -> Any:
        materialised = self._materialised[spec.name]
        if not materialised:
            result = await self._send(spec, self._payload(spec, args))
            return self._result_decoders[spec.name](result)
        refused: InvalidInputError | None = None
        for name, _encode, _ in materialised:
            value = args.get(name, _MISSING)
            if value is _MISSING:
                continue
            items = [v async for v in _local.iterate(value)]
            item_encoder = encoder_for(_item_hint(spec, name))
            for index, item in enumerate(items):
                try:
                    item_encoder(item, name)
                except InvalidInputError as exc:
                    refused = InvalidInputError(
                        f"{name}[{index}]: {exc.message}", field=exc.field or name
                    )
                    items = items[:index]
                    break
            args[name] = items
        if refused is not None and not any(args.get(n) for n, _, _ in materialised):
            raise refused
        result = await self._send(spec, self._payload(spec, args))
        if refused is not None:
            raise refused
        return self._result_decoder(spec)(result)

    def _result_decoder(self, spec: MethodSpec) -> Callable[[Any], Any]:
        return result_validator(spec.result)

    def _item_decoder(self, spec: MethodSpec) -> Callable[[Any], Any]:
        return result_validator(spec.result)

    async def _open_channel(
        self, spec: MethodSpec, args: dict[str, Any], credit: int, initial: int | None = None
    ) -> Channel:
        payload = self._payload(spec, args)
        tenant = current_tenant()
        if tenant is not None:
            payload[TENANT_PARAM] = loads(encode_tenant(tenant))
        link = await self._ws()
        return link.open_channel(self._methods[spec.name], dumps(payload), credit, initial)

    def _iterate(self, spec: MethodSpec, args: dict[str, Any]) -> AsyncIterator[Any]:
        if spec.resume_from is not None:
            return Resuming(self, spec, args)
        return self._iterate_once(spec, args)

    def _iterate_once(self, spec: MethodSpec, args: dict[str, Any]) -> AsyncIterator[Any]:
        credit = self._credit
        if spec.credit_from is not None:
            arg, attribute = spec.credit_from
            value = args.get(arg)
            bound = getattr(value, attribute, None) if value is not None else None
            if bound is None:
                bound = _default_attribute(spec, arg, attribute)
            if isinstance(bound, int) and bound > 0:
                credit = min(credit, bound)
        demand = False
        if spec.demand_when is not None:
            arg, attribute = spec.demand_when
            value = args.get(arg)
            demand = bool(getattr(value, attribute, None)) if value is not None else False
        if not self.address.websocket and spec.credit_from is None and spec.demand_when is None:
            return self._lines(spec, args)
        return Iteration(self, spec, args, credit, demand, lazy=spec.credit_from is not None)

    async def _lines(self, spec: MethodSpec, args: dict[str, Any]) -> AsyncIterator[Any]:
        decode = self._item_decoder(spec)
        tenant = current_tenant()
        headers = {TENANT_HEADER: encode_tenant(tenant)} if tenant is not None else None
        body = dumps(self._payload(spec, args))
        try:
            async for raw in self._http.lines(self._urls[spec.name], body, headers):
                yield decode(raw)
        except UnavailableError:
            if not self._closed:
                raise

    async def _subscribe(
        self, spec: MethodSpec, handler: Callable[..., Any], args: dict[str, Any]
    ) -> RemoteSubscription:
        sub = spec.subscription
        assert sub is not None  # noqa: S101  (subscribe specs have one)
        on_error = args.pop("on_error", OnHandlerError.STOP)
        start = args.get(sub.resume, _MISSING)
        if start is _MISSING:
            start = _default_of(spec, sub.resume)
        if isinstance(start, bool) or not isinstance(start, int):
            raise InvalidInputError(f"{sub.resume} must be an int", field=sub.resume)
        try:
            policy = OnHandlerError(on_error)
        except ValueError:
            raise InvalidInputError(
                f"on_error must be one of stop, retry, skip, not {on_error!r}", field="on_error"
            ) from None
        args = {k: v for k, v in args.items() if k != sub.resume}
        self._payload(spec, args)  # refuse bad arguments before anything starts
        subscription = RemoteSubscription(
            self, spec, handler, args, start=start, on_error=policy, tenant=current_tenant()
        )
        try:
            await subscription.opened()
        except BaseException:
            await subscription.stop()
            raise
        self._subscriptions[subscription.id] = subscription
        return subscription

    async def _unsubscribe(self, subscription: Any) -> None:
        found = self._subscriptions.pop(getattr(subscription, "id", ""), None)
        if found is not None:
            await found.stop()


def _item_hint(spec: MethodSpec, name: str) -> Any:
    import typing

    for param in spec.params:
        if param.name == name:
            args = typing.get_args(param.hint)
            return args[0] if args else Any
    return Any


def _default_of(spec: MethodSpec, name: str) -> Any:
    assert spec.signature is not None  # noqa: S101  (served methods have one)
    return spec.signature.parameters[name].default


def _default_attribute(spec: MethodSpec, arg: str, attribute: str) -> Any:
    import typing

    for param in spec.params:
        if param.name == arg:
            for hint in typing.get_args(param.hint) or (param.hint,):
                if isinstance(hint, type):
                    try:
                        return getattr(hint(), attribute, None)
                    except Exception:
                        return None
    return None


__all__ += ["capabilities_of"]
