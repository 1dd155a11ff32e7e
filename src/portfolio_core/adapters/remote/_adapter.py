"""The remote adapter of any async port, generated from its protocol.

`remote_adapter_class` builds, once per port, a class whose methods have the
protocol's names and signatures: each ``CALL`` method encodes its arguments by their declared
types and sends one request; ``ITERATE`` methods return async iterators; ``SUBSCRIBE`` methods
return a `RemoteSubscription`; ``LOCAL`` methods run here (see ``_local``). Nothing is
written per port except the few local parts and the capability notes below.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel

from portfolio_core.adapters.remote import _local
from portfolio_core.adapters.remote._address import Address, parse_address
from portfolio_core.adapters.remote._config import RemoteConfig
from portfolio_core.adapters.remote._http import HttpTransport
from portfolio_core.adapters.remote._subscription import RemoteSubscription
from portfolio_core.adapters.remote._ws import Channel, WsLink
from portfolio_core.ports.capabilities import capabilities_of
from portfolio_core.ports.catalogue import PortInfo, port_by_key
from portfolio_core.ports.errors import InvalidInputError, UnavailableError, UnsupportedError
from portfolio_core.ports.event_store import OnHandlerError
from portfolio_core.ports.tenant import current_tenant
from portfolio_core.wire import (
    API_PREFIX,
    TENANT_HEADER,
    TENANT_PARAM,
    WS_PATH,
    CallKind,
    MethodSpec,
    dumps,
    encode_tenant,
    encoder_for,
    loads,
    methods_of,
    result_validator,
)

__all__ = ["NOT_REMOTABLE", "RemoteAdapter", "remote_adapter_class"]

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
            return _Resuming(self, spec, args)
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
        return _Iteration(self, spec, args, credit, demand, lazy=spec.credit_from is not None)

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


class _Iteration:
    """An iteration over the WebSocket, paced by credit.

    The server's iterator is asked for as soon as the method is called (as a local adapter
    creates its reader at the call), so readers opened one after the other are opened in
    that order on the server too. With ``lazy`` nothing is fetched before the first
    ``__anext__`` (fetching may have effects on a shared source); with ``demand`` nothing is
    ever fetched ahead: each ``__anext__`` asks for one item. ``aclose`` returns once the
    server has closed its side.
    """

    def __init__(
        self,
        adapter: RemoteAdapter,
        spec: MethodSpec,
        args: dict[str, Any],
        credit: int,
        demand: bool = False,
        *,
        lazy: bool = False,
    ) -> None:
        self._adapter = adapter
        self._decode = adapter._item_decoder(spec)
        self._spec, self._args, self._credit = spec, args, credit
        self._initial = 0 if (lazy or demand) else credit
        self._granted = not (lazy or demand)
        self._opening: asyncio.Future[Channel] | None = None
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass  # called outside a loop: open on the first __anext__
        else:
            self._open()
        self._demand = demand
        self._closed = False

    def _open(self) -> asyncio.Future[Channel]:
        if self._opening is None:
            self._opening = asyncio.ensure_future(
                self._adapter._open_channel(self._spec, self._args, self._credit, self._initial)
            )
            self._opening.add_done_callback(_retrieve)
        return self._opening

    def __aiter__(self) -> _Iteration:
        return self

    async def __anext__(self) -> Any:
        if self._closed:
            raise StopAsyncIteration
        try:
            channel = await self._open()
            if self._demand and not channel.items:
                channel.request(1)
                raw = await channel.next()
            else:
                if not self._granted:
                    self._granted = True
                    channel.request(self._credit)
                raw = await channel.next()
                if not self._demand:
                    channel.taken()
        except UnavailableError:
            if self._adapter._closed:  # the adapter was closed under this iteration
                raise StopAsyncIteration from None
            raise
        return self._decode(raw)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._opening is None:
            return
        try:
            channel = await self._opening
        except Exception:
            return
        await channel.close(self._adapter._timeout)


class _Resuming:
    """An iteration that survives lost connections: when the connection breaks
    (``UnavailableError``) it is reopened, with backoff, after the position of the last
    item delivered (``spec.resume_from``), so nothing is skipped or delivered twice. It ends
    when closed or when the adapter is closed. Opened with no start position, it resumes
    from the last item delivered or, when none was yet, from where the server starts anew."""

    def __init__(self, adapter: RemoteAdapter, spec: MethodSpec, args: dict[str, Any]) -> None:
        assert spec.resume_from is not None  # noqa: S101  (only built for such specs)
        self._adapter, self._spec, self._args = adapter, spec, dict(args)
        self._arg, self._attribute = spec.resume_from
        self._current = adapter._iterate_once(spec, dict(self._args))
        self._delay = adapter._reconnect_delay
        self._closed = False

    def __aiter__(self) -> _Resuming:
        return self

    async def __anext__(self) -> Any:
        while True:
            if self._closed or self._adapter._closed:
                raise StopAsyncIteration
            try:
                item = await self._current.__anext__()
            except UnavailableError:
                with contextlib.suppress(Exception):
                    await self._current.aclose()  # type: ignore[attr-defined]
                await asyncio.sleep(self._delay)
                self._delay = min(self._delay * 2, self._adapter._reconnect_max_delay)
                if not self._closed:
                    self._current = self._adapter._iterate_once(self._spec, dict(self._args))
                continue
            self._delay = self._adapter._reconnect_delay
            position = getattr(item, self._attribute, None)
            if position is not None:
                self._args[self._arg] = position
            return item

    async def aclose(self) -> None:
        self._closed = True
        await self._current.aclose()  # type: ignore[attr-defined]


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


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


# -- generation ---------------------------------------------------------------------------------


def _parameter_text(signature: inspect.Signature) -> tuple[str, list[str]]:
    """The parameter list of a generated method (defaults replaced by ``_MISSING``) and the
    names of its parameters after ``self``."""
    parts: list[str] = []
    names: list[str] = []
    star = False
    for index, param in enumerate(signature.parameters.values()):
        if index == 0:
            parts.append("self")
            continue
        if param.kind is inspect.Parameter.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        default = "" if param.default is inspect.Parameter.empty else "=_MISSING"
        parts.append(f"{param.name}{default}")
        names.append(param.name)
    return ", ".join(parts), names


def _method_source(spec: MethodSpec, signature: inspect.Signature) -> str:
    params, names = _parameter_text(signature)
    args = "{" + ", ".join(f"{n!r}: {n}" for n in names) + "}"

    def args_without(skip: str) -> str:
        return "{" + ", ".join(f"{n!r}: {n}" for n in names if n != skip) + "}"

    name = spec.name
    if spec.kind is CallKind.CALL:
        return (
            f"async def {name}({params}):\n"
            f"    return await self._call(_SPECS[{name!r}], _given({args}))\n"
        )
    if spec.kind is CallKind.ITERATE:
        return (
            f"def {name}({params}):\n    return self._iterate(_SPECS[{name!r}], _given({args}))\n"
        )
    if spec.kind is CallKind.SUBSCRIBE:
        assert spec.subscription is not None  # noqa: S101  (subscribe specs have one)
        handler = spec.subscription.handler
        return (
            f"async def {name}({params}):\n"
            f"    return await self._subscribe(_SPECS[{name!r}], {handler}, "
            f"_given({args_without(handler)}))\n"
        )
    if spec.kind is CallKind.UNSUBSCRIBE:
        first = names[0]
        return f"async def {name}({params}):\n    return await self._unsubscribe({first})\n"
    raise AssertionError(spec.kind)


def _given(args: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in args.items() if v is not _MISSING}


_CLASSES: dict[str, type[RemoteAdapter]] = {}


def remote_adapter_class(port_key: str) -> type[RemoteAdapter]:
    """The remote adapter class of the async port ``port_key`` (built once).

    Raises ``LookupError`` for a port that a remote adapter cannot fully provide: a member
    that neither crosses the wire nor has a local implementation.
    """
    found = _CLASSES.get(port_key)
    if found is not None:
        return found
    port = port_by_key(port_key)
    specs = methods_of(port_key)
    local = _local.LOCAL.get(port_key, {})
    from portfolio_core.ports.introspection import members_of

    missing = [
        name
        for name in (m.name for m in members_of(port.protocol))
        if name not in local and (name not in specs or specs[name].kind is CallKind.LOCAL)
    ]
    if not port.is_async or missing:
        raise LookupError(
            f"no remote adapter for port {port_key!r}: "
            + (f"{', '.join(missing)} cannot be called remotely" if missing else "it is sync")
        )
    namespace: dict[str, Any] = {"_SPECS": specs, "_MISSING": _MISSING, "_given": _given}
    body: dict[str, Any] = {}
    for name, spec in specs.items():
        if spec.kind is CallKind.LOCAL:
            continue
        assert spec.signature is not None  # noqa: S101  (served methods have one)
        source = _method_source(spec, spec.signature)
        # the source is generated from the protocol's own signature, never from input
        exec(compile(source, f"<remote {port_key}.{name}>", "exec"), namespace)  # noqa: S102
        function = namespace[name]
        function.__doc__ = spec.doc
        function.__qualname__ = f"Remote{port.name}.{name}"
        body[name] = function
    body.update(local)
    body["port"] = port
    body["_specs"] = specs
    body["_encoders"] = {
        name: tuple(
            (p.name, p.form.encode if p.form else encoder_for(p.hint), p.materialise)
            for p in spec.params
        )
        for name, spec in specs.items()
    }
    body["_materialised"] = {
        name: tuple(e for e in encoders if e[2]) for name, encoders in body["_encoders"].items()
    }
    body["_result_decoders"] = {
        name: result_validator(spec.result)
        for name, spec in specs.items()
        if spec.kind is CallKind.CALL
    }
    body["__doc__"] = (
        f"The {port.name} port served by a portal, reached by address (generated from the "
        f"protocol; see `RemoteAdapter`)."
    )
    body["__module__"] = "portfolio_core.adapters.remote"
    cls = type(f"Remote{port.name}", (RemoteAdapter,), body)
    _CLASSES[port_key] = cls
    return cls


__all__ += ["capabilities_of"]
