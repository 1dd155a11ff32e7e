"""One generation of a registry's wiring (`State`, swapped in with one assignment) and its
lifecycle: built from a `Wiring`, started in dependency order, stopped in reverse."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass

from portfolio_core.manifest import Plan, Wiring
from portfolio_core.ports.lifecycle import close_adapter
from portfolio_core.registry._handles import Handle
from portfolio_core.registry._reports import EntryInfo

__all__ = [
    "EMPTY",
    "Item",
    "State",
    "redact_secrets",
    "start_all",
    "starting_note",
    "state_from_wiring",
    "stop_all",
    "with_default",
]

_REDACTED = "**********"


@dataclass(frozen=True, slots=True)
class Item:
    """One entry: what is known about it, what was built and what is handed out."""

    info: EntryInfo
    instance: object
    adapter: object


@dataclass(frozen=True, slots=True)
class State:
    """One immutable generation of wiring; swapped in with a single assignment."""

    lookup: Mapping[object, object]
    items: Mapping[str, Item]
    order: tuple[str, ...]
    secrets: frozenset[str]
    plan: Plan | None = None


EMPTY = State({}, {}, (), frozenset())


def state_from_wiring(wiring: Wiring, handles: dict[str, Handle] | None = None) -> State:
    """The state of ``wiring``; with ``handles`` (a hot-reloadable registry) lookups return
    one stable handle per entry (made here for new entries) instead of the adapter."""
    items: dict[str, Item] = {}
    lookup: dict[object, object] = {}
    for name in wiring.order:
        wired = wiring.entries[name]
        plan = wired.plan
        info = EntryInfo(
            name=name,
            port=plan.port,
            adapter_type=plan.adapter,
            adapter_class=plan.cls,
            default=wiring.defaults.get(plan.port.key) == name,
            wrapped=wired.adapter is not wired.instance,
            uses=dict(plan.uses),
            location=plan.origin.location,
        )
        items[name] = Item(info, wired.instance, wired.adapter)
        handed: object = wired.adapter
        if handles is not None:
            handle = handles.get(name)
            if handle is None:
                handle = handles[name] = Handle(wired.adapter)
            handed = handle
        lookup[(plan.port.protocol, name)] = handed
        if info.default:
            lookup[plan.port.protocol] = handed
    return State(lookup, items, tuple(wiring.order), wiring.secret_values, wiring.plan)


def starting_note(name: str) -> str:
    """The note (PEP 678) `Registry.start` adds to the error of the adapter that
    failed to start."""
    return f"while starting adapter {name!r}"


def redact_secrets(text: str, secrets: frozenset[str]) -> str:
    """``text`` with every one of ``secrets`` masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    return text


def with_default(info: EntryInfo, default: bool) -> EntryInfo:
    """``info`` with its ``default`` flag set to ``default``."""
    return EntryInfo(
        info.name,
        info.port,
        info.adapter_type,
        info.adapter_class,
        default,
        info.wrapped,
        info.uses,
        info.location,
    )


async def start_all(state: State) -> None:
    """Start the adapters of ``state`` in dependency order (an instance shared by a
    ``local://`` entry once). When one fails, those already started are stopped in reverse and
    the error is raised with `starting_note` added."""
    started: list[Item] = []
    seen: set[int] = set()
    for name in state.order:
        item = state.items[name]
        if id(item.instance) in seen:  # an entry addressed local:// shares its target
            continue
        seen.add(id(item.instance))
        start = getattr(item.instance, "start", None)
        if callable(start):
            try:
                result = start()
                if inspect.isawaitable(result):
                    await result
            except BaseException as exc:
                exc.add_note(starting_note(name))
                await stop_all(started, state.secrets, raise_errors=False)
                raise
        started.append(item)


async def stop_all(items: list[Item], secrets: frozenset[str], *, raise_errors: bool) -> None:
    """Stop ``items`` in reverse order (an instance shared by a ``local://`` entry once, an
    entry's outbox relay before its adapter), every one of them even when some fail; with
    ``raise_errors`` the failures are then raised as one ``ExceptionGroup``."""
    from portfolio_core.boundary.outbox import outbox_of

    errors: list[Exception] = []
    stopped: set[int] = set()
    for item in reversed(items):
        if id(item.instance) in stopped:  # an entry addressed local:// shares its target
            continue
        stopped.add(id(item.instance))
        try:
            outbox = outbox_of(item.adapter)
            if outbox is not None:  # its relay replays through the adapter: stop it first
                await outbox.aclose()
            await close_adapter(item.instance)
        except Exception as exc:
            exc.add_note(f"while stopping adapter {item.info.name!r}")
            errors.append(exc)
    if errors and raise_errors:
        raise ExceptionGroup(
            redact_secrets(f"{len(errors)} adapter(s) failed to stop", secrets), errors
        )
