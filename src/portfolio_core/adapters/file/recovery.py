"""Salvaging damaged files of the file adapters, without ever deleting what was damaged.

The file adapters refuse to serve damaged data
([CorruptDataError][portfolio_core.ports.CorruptDataError])
and leave it where it is. These functions are the explicit, operator-run next step (the
``portfolio-core recover`` command calls them):

* `salvage_event_log` copies every record of an event log that it can verify into a
  *new* log and reports the byte ranges it could not read; the damaged file is not changed.
* `salvage_config_log` does the same for a config store's log (renumbering the versions
  after a lost one, so that the new log counts 1, 2, 3, ... again);
* `salvage_file_cache` moves every cache entry that fails its checksum out of the way
  (into a ``.damaged`` folder beside the entries, under the same name) so that the cache can
  serve the intact ones again; nothing is deleted.
"""

from __future__ import annotations

import mmap
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from portfolio_core.adapters._shared.config_store import StoredSet
from portfolio_core.adapters._shared.event_store.index import IndexedRow
from portfolio_core.adapters.file import config_store as _config
from portfolio_core.adapters.file._event_records import PAYLOAD_START as _PAYLOAD_START
from portfolio_core.adapters.file._event_records import decode_record as _decode_record
from portfolio_core.adapters.file._event_records import encode_record as _encode_record
from portfolio_core.adapters.file._framing import DECODE_ERRORS, HEADER, LogBytes
from portfolio_core.adapters.file.cache import DAMAGED_FOLDER, entry_status
from portfolio_core.adapters.file.event_store import _FORMAT, MAGIC
from portfolio_core.ports.errors import InvalidInputError

__all__ = [
    "CacheSalvage",
    "ConfigLogSalvage",
    "LogSalvage",
    "is_config_log",
    "salvage_config_log",
    "salvage_event_log",
    "salvage_file_cache",
]


@dataclass
class LogSalvage:
    """What `salvage_event_log` did.

    Attributes:
        source: the damaged log (unchanged).
        target: the new log.
        records: records copied.
        events: events copied.
        lost: ``(offset, length)`` of every byte range that held no verifiable record.
        renumbered: whether positions or stream versions changed because records were lost
            (event ids never change).
    """

    source: Path
    target: Path
    records: int = 0
    events: int = 0
    lost: list[tuple[int, int]] = field(default_factory=list)
    renumbered: bool = False


def _repaired_length(data: LogBytes, offset: int, end: int) -> tuple[str, list[IndexedRow]] | None:
    """The record at ``offset`` if only its length field is damaged and it ends at ``end``."""
    if offset + HEADER.size > end:
        return None
    _length, crc = HEADER.unpack_from(data, offset)
    payload = data[offset + HEADER.size : end]
    if not payload.startswith(_PAYLOAD_START) or zlib.crc32(payload) != crc:
        return None
    try:
        return _decode_record(payload)
    except DECODE_ERRORS:
        return None


def salvage_event_log(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> LogSalvage:
    """Write to ``target`` a new event log holding every record of ``source`` that passes its
    checksum, in order; ``source`` is only read.

    Records whose length field alone is damaged are recovered too. When records are lost,
    the survivors are renumbered so that the new log is gapless again: global positions per
    tenant and versions per stream count up from 1 in log order; ids, types, data, metadata
    and commit times are kept. An event whose id was already copied is skipped.

    Raises InvalidInputError when ``target`` exists or ``source`` holds no record at all,
    OSError when a file cannot be read or written.
    """
    src, dst = Path(source), Path(target)
    if dst.exists():
        raise InvalidInputError(f"{dst} exists; choose a new file for the salvaged log")
    with open(src, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            raise InvalidInputError(f"{src} holds no event log record that can be verified")
        # mapped, not read: the log may be large (only the ids copied stay in memory)
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _salvage_event_log(data, src, dst)


def _salvage_event_log(data: mmap.mmap, src: Path, dst: Path) -> LogSalvage:
    report = LogSalvage(src, dst)
    offset = len(MAGIC) if data[: len(MAGIC)] == MAGIC else 0
    if offset == 0:
        first = _FORMAT.next_record(data, -1)
        if first is None:
            raise InvalidInputError(f"{src} holds no event log record that can be verified")
        if first > 0:
            report.lost.append((0, first))
        offset = first
    positions: dict[str, int] = {}
    versions: dict[tuple[str, str], int] = {}
    seen: set[tuple[str, str]] = set()
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as out:
            out.write(MAGIC)
            while offset < len(data):
                found = _FORMAT.record_at(data, offset)
                if found is not None:
                    (tenant, rows), after = found
                else:
                    following = _FORMAT.next_record(data, offset)
                    after = len(data) if following is None else following
                    repaired = _repaired_length(data, offset, after)
                    if repaired is None:
                        report.lost.append((offset, after - offset))
                        offset = after
                        continue
                    tenant, rows = repaired
                kept: list[IndexedRow] = []
                for row in rows:
                    if (tenant, row.event.id) in seen:
                        report.renumbered = True
                        continue
                    seen.add((tenant, row.event.id))
                    position = positions.get(tenant, 0) + 1
                    version = versions.get((tenant, row.stream), 0) + 1
                    positions[tenant] = position
                    versions[(tenant, row.stream)] = version
                    if (position, version) != (row.position, row.version):
                        report.renumbered = True
                    kept.append(
                        IndexedRow(row.event, row.stream, version, position, row.recorded_at)
                    )
                # a record holds one stream's batch: keep it one record (one atomic batch)
                if kept:
                    out.write(_encode_record(tenant, kept))
                    report.records += 1
                    report.events += len(kept)
                offset = after
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        dst.unlink(missing_ok=True)
        raise
    return report


@dataclass
class ConfigLogSalvage:
    """What `salvage_config_log` did.

    Attributes:
        source: the damaged log (unchanged).
        target: the new log.
        versions: versions copied.
        lost: ``(offset, length)`` of every byte range that held no verifiable record.
        renumbered: whether version numbers changed because versions were lost.
    """

    source: Path
    target: Path
    versions: int = 0
    lost: list[tuple[int, int]] = field(default_factory=list)
    renumbered: bool = False


def is_config_log(path: str | os.PathLike[str]) -> bool:
    """Whether the file at ``path`` starts as a config store's log (not an event log)."""
    with open(path, "rb") as fh:
        head = fh.read(len(_config.MAGIC) + HEADER.size + len(_config.PAYLOAD_START))
    if head.startswith(_config.MAGIC):
        return True
    return not head.startswith(MAGIC) and head[HEADER.size :].startswith(_config.PAYLOAD_START)


def salvage_config_log(
    source: str | os.PathLike[str], target: str | os.PathLike[str]
) -> ConfigLogSalvage:
    """Write to ``target`` a new config log holding every version of ``source`` that passes
    its checksum, in order; ``source`` is only read.

    When versions are lost, the survivors are renumbered 1, 2, 3, ... in log order (their
    changes, authors, reasons and times are kept; a rollback's ``rollback_of`` is mapped to
    the new number of the version it restored, or of the last survivor before it). The
    values a lost version set are lost with it: the report lists its bytes.

    Raises InvalidInputError when ``target`` exists or ``source`` holds no record at all,
    OSError when a file cannot be read or written.
    """
    src, dst = Path(source), Path(target)
    if dst.exists():
        raise InvalidInputError(f"{dst} exists; choose a new file for the salvaged log")
    data = src.read_bytes()
    report = ConfigLogSalvage(src, dst)
    offset = len(_config.MAGIC) if data.startswith(_config.MAGIC) else 0
    if offset == 0:
        first = _config.next_record(data, -1)
        if first is None:
            raise InvalidInputError(f"{src} holds no config log record that can be verified")
        if first > 0:
            report.lost.append((0, first))
        offset = first
    renumber: dict[int, int] = {0: 0}
    out = [_config.MAGIC]
    while offset < len(data):
        found = _config.record_at(data, offset)
        if found is None:
            following = _config.next_record(data, offset)
            after = len(data) if following is None else following
            report.lost.append((offset, after - offset))
            offset = after
            continue
        stored, after = found
        if stored.version in renumber:  # a duplicate of a version already copied
            report.renumbered = True
            offset = after
            continue
        new = report.versions + 1
        renumber[stored.version] = new
        rollback = stored.rollback_of
        if rollback is not None:
            rollback = renumber[max(v for v in renumber if v <= rollback)]
        if new != stored.version or rollback != stored.rollback_of:
            report.renumbered = True
        out.append(
            _config.encode_record(
                StoredSet(new, stored.changes, stored.author, stored.reason, stored.at, rollback)
            )
        )
        report.versions += 1
        offset = after
    _write_new(dst, b"".join(out))
    return report


def _write_new(dst: Path, content: bytes) -> None:
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        dst.unlink(missing_ok=True)
        raise


@dataclass
class CacheSalvage:
    """What `salvage_file_cache` did: entries checked, and the damaged ones moved
    (``(from, to)`` paths)."""

    directory: Path
    checked: int = 0
    moved: list[tuple[Path, Path]] = field(default_factory=list)


def salvage_file_cache(directory: str | os.PathLike[str]) -> CacheSalvage:
    """Check every entry under a `FileCache`
    directory (all namespaces and tenants) and move each damaged one into the ``.damaged``
    folder beside it, keeping its name; intact and expired entries are left alone."""
    root = Path(directory)
    report = CacheSalvage(root)
    if not root.is_dir():
        raise InvalidInputError(f"{root} is not a directory")
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != DAMAGED_FOLDER]
        for name in filenames:
            path = Path(dirpath) / name
            status = entry_status(path)
            if status is None:
                continue
            report.checked += 1
            if status == "damaged":
                aside = path.parent / DAMAGED_FOLDER
                aside.mkdir(exist_ok=True)
                moved = aside / name
                os.replace(path, moved)
                report.moved.append((path, moved))
    return report
