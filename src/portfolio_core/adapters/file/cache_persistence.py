"""CachePersistence in a directory of safetensors files, one per agent, written atomically.

A file holds ``tokens`` (int64), ``k.<layer>`` and ``v.<layer>`` tensors and, in the
safetensors metadata, the agent id, the model's ``spec_hash``, a format version and a CRC-32
of the tensors' bytes (files written before it are loaded unverified). Writes go
to a temporary file in the same directory, are flushed and fsynced, then renamed over the
agent's file (``os.replace``) and the directory is fsynced: a reader sees the old file or
the new one, never a mix, and a crash leaves at worst a stray temporary file that listing
and loading ignore.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from portfolio_core.adapters._shared.configurable import Configurable
from portfolio_core.adapters._shared.names import file_name, name_of
from portfolio_core.ports.errors import InvalidInputError, NotFoundError, UnavailableError
from portfolio_core.ports.model_backend import AgentBlocks

__all__ = ["SafetensorsCachePersistence", "SafetensorsCachePersistenceConfig"]

_PORT = "CachePersistence"
_SUFFIX = ".safetensors"
_TMP_PREFIX = ".tmp-"
_FORMAT = "portfolio-core.agent-blocks.v1"
_MAX_ID_BYTES = 150


class SafetensorsCachePersistenceConfig(BaseModel):
    """Where the files go, and whether writes are fsynced (turn off only for scratch data)."""

    model_config = ConfigDict(extra="forbid")

    directory: str
    fsync: bool = True


class SafetensorsCachePersistence(Configurable):
    """``SafetensorsCachePersistence("/var/cache/agents")``: one safetensors file per agent.

    Guarantees beyond the port: files are portable safetensors (readable by any safetensors
    library); a file that is torn, truncated, damaged (its checksum fails) or not ours is
    refused with InvalidInputError naming the file (never half-loaded) and left in place;
    file names are agent ids through the injective, case-safe name encoding every file
    adapter shares, so any non-empty id up to 150 UTF-8 bytes is accepted and no two ids
    share a file even on a case-insensitive file system (files named by the earlier
    base64url encoding are still found, and replaced on the next ``save``). Safe to share a
    directory between threads and processes: the last completed ``save`` of an agent wins.
    """

    config_model: ClassVar[type[BaseModel]] = SafetensorsCachePersistenceConfig

    def __init__(self, directory: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self._dir = Path(directory)
        self._fsync = fsync
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UnavailableError(f"cannot create {self._dir}: {exc}", port=_PORT) from exc

    def __repr__(self) -> str:
        return f"SafetensorsCachePersistence({str(self._dir)!r})"

    @property
    def directory(self) -> Path:
        return self._dir

    def path_of(self, agent_id: str) -> Path:
        """The file that holds (or would hold) the agent's cache."""
        _check_id(agent_id)
        return self._dir / (file_name(agent_id, what="agent_id") + _SUFFIX)

    def _legacy_path(self, agent_id: str) -> Path:
        return self._dir / (_encode_id(agent_id) + _SUFFIX)

    def _existing(self, agent_id: str) -> Path:
        """The agent's file, falling back to its name under the earlier encoding."""
        path = self.path_of(agent_id)
        if not path.exists():
            legacy = self._legacy_path(agent_id)
            if legacy.exists():
                return legacy
        return path

    # -- the port -----------------------------------------------------------------------

    def save(self, agent_id: str, blocks: AgentBlocks) -> None:
        """Write atomically (temp file, fsync, rename); replaces the agent's earlier cache."""
        target = self.path_of(agent_id)
        if blocks.agent_id != agent_id:
            raise InvalidInputError(
                f"blocks of agent {blocks.agent_id!r} saved for {agent_id!r}",
                field="blocks",
                port=_PORT,
            )
        if len(blocks.keys) != len(blocks.values):
            raise InvalidInputError("keys and values differ in layers", field="blocks", port=_PORT)
        data = _serialize(blocks)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=".part", dir=self._dir)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                if self._fsync:
                    os.fsync(fh.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise UnavailableError(f"cannot write {target}: {exc}", port=_PORT) from exc
        legacy = self._legacy_path(agent_id)
        if legacy != target:
            with contextlib.suppress(OSError):
                legacy.unlink()
        if self._fsync:
            self._fsync_dir()

    def load(self, agent_id: str, spec_hash: str) -> AgentBlocks:
        """Read the agent's cache; InvalidInputError if it is another model's or is damaged."""
        path = self._existing(agent_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(
                f"no saved cache for agent {agent_id!r}", key=agent_id, port=_PORT
            ) from None
        except OSError as exc:
            raise UnavailableError(f"cannot read {path}: {exc}", port=_PORT) from exc
        meta = _metadata(data, path)
        if meta.get("format") != _FORMAT or meta.get("agent_id") != agent_id:
            raise InvalidInputError(f"{path.name} is not a cache of agent {agent_id!r}", port=_PORT)
        if meta.get("spec_hash") != spec_hash:
            raise InvalidInputError(
                f"the cache of agent {agent_id!r} belongs to model {meta.get('spec_hash')!r}, "
                f"not {spec_hash!r}",
                field="spec_hash",
                port=_PORT,
            )
        return _deserialize(data, meta, path)

    def exists(self, agent_id: str) -> bool:
        return self._existing(agent_id).is_file()

    def delete(self, agent_id: str) -> bool:
        removed = False
        for path in (self.path_of(agent_id), self._legacy_path(agent_id)):
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise UnavailableError(
                    f"cannot delete the cache of {agent_id!r}: {exc}", port=_PORT
                ) from exc
            removed = True
        return removed

    def list_cached_agents(self) -> list[str]:
        agents: set[str] = set()
        for path in self._dir.iterdir():
            name = path.name
            if name.startswith(_TMP_PREFIX) or not name.endswith(_SUFFIX):
                continue
            stem = name[: -len(_SUFFIX)]
            agent = name_of(stem)
            if agent is None:
                agent = _agent_in_header(path)  # a hashed long name
            if agent is None:
                agent = _decode_id(stem)  # the earlier base64url name
            if agent is not None and name in (
                self.path_of(agent).name,
                _encode_id(agent) + _SUFFIX,
            ):
                agents.add(agent)
        return sorted(agents)

    def close(self) -> None:
        """Nothing to release (files are opened per call); idempotent."""

    def _fsync_dir(self) -> None:
        try:
            fd = os.open(self._dir, os.O_RDONLY)
        except OSError:  # pragma: no cover - platforms without directory fds
            return
        try:
            os.fsync(fd)
        except OSError:  # pragma: no cover
            pass
        finally:
            os.close(fd)


def _check_id(agent_id: str) -> bytes:
    if not isinstance(agent_id, str) or not agent_id:
        raise InvalidInputError("agent_id must be a non-empty string", field="agent_id", port=_PORT)
    try:
        raw = agent_id.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(
            "agent_id holds a lone surrogate, which is not Unicode text",
            field="agent_id",
            port=_PORT,
        ) from None
    if len(raw) > _MAX_ID_BYTES:
        raise InvalidInputError(
            f"agent_id is {len(raw)} UTF-8 bytes; at most {_MAX_ID_BYTES}",
            field="agent_id",
            port=_PORT,
        )
    return raw


def _encode_id(agent_id: str) -> str:
    """The earlier file name encoding (base64url), still read."""
    return base64.urlsafe_b64encode(_check_id(agent_id)).decode("ascii").rstrip("=")


def _agent_in_header(path: Path) -> str | None:
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
            (size,) = struct.unpack("<Q", head)
            if size > 1 << 20:
                return None
            meta = json.loads(fh.read(size)).get("__metadata__") or {}
    except (OSError, struct.error, ValueError, AttributeError):
        return None
    agent = meta.get("agent_id") if isinstance(meta, dict) else None
    return agent if isinstance(agent, str) else None


def _checksum(tensors: dict[str, np.ndarray[Any, Any]]) -> str:
    crc = 0
    for name in sorted(tensors):
        crc = zlib.crc32(np.ascontiguousarray(tensors[name]).tobytes(), crc)
    return f"{crc:08x}"


def _decode_id(stem: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(stem + "=" * (-len(stem) % 4)).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


def _serialize(blocks: AgentBlocks) -> bytes:
    from safetensors.numpy import save

    tensors: dict[str, np.ndarray[Any, Any]] = {"tokens": np.asarray(blocks.tokens, dtype=np.int64)}
    for i, (k, v) in enumerate(zip(blocks.keys, blocks.values, strict=True)):
        tensors[f"k.{i}"] = np.ascontiguousarray(k)
        tensors[f"v.{i}"] = np.ascontiguousarray(v)
    metadata = {
        "format": _FORMAT,
        "agent_id": blocks.agent_id,
        "spec_hash": blocks.spec_hash,
        "layers": str(len(blocks.keys)),
        "crc32": _checksum(tensors),
    }
    return bytes(save(tensors, metadata=metadata))


def _metadata(data: bytes, path: Path) -> dict[str, str]:
    """The safetensors ``__metadata__`` of ``data``; InvalidInputError if the header is bad."""
    try:
        (size,) = struct.unpack("<Q", data[:8])
        if size > len(data) - 8:
            raise ValueError("header runs past the end of the file")
        header = json.loads(data[8 : 8 + size])
        meta = header.get("__metadata__") or {}
        if not isinstance(meta, dict):
            raise ValueError("metadata is not a mapping")
        return {str(k): str(v) for k, v in meta.items()}
    except (struct.error, ValueError, AttributeError) as exc:
        raise InvalidInputError(f"{path.name} is not a complete cache file: {exc}") from exc


def _deserialize(data: bytes, meta: dict[str, str], path: Path) -> AgentBlocks:
    from safetensors.numpy import load

    try:
        tensors = load(data)
        layers = int(meta["layers"])
        keys = tuple(tensors[f"k.{i}"] for i in range(layers))
        values = tuple(tensors[f"v.{i}"] for i in range(layers))
        tokens = tuple(int(t) for t in tensors["tokens"].tolist())
    except Exception as exc:  # safetensors raises its own error type for torn data
        raise InvalidInputError(f"{path.name} is not a complete cache file: {exc}") from exc
    expected = meta.get("crc32")
    if expected is not None and _checksum(tensors) != expected:
        raise InvalidInputError(
            f"{path.name} is damaged: its tensors fail their checksum (the file was left in place)",
            port=_PORT,
        )
    return AgentBlocks(meta["agent_id"], tokens, keys, values, meta["spec_hash"])
