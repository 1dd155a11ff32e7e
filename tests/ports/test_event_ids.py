"""Default NewEvent ids: RFC 9562 UUIDv7 in canonical text, unique, time-ordered, and never
shared between threads or between a process and its forked child."""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
import warnings

import pytest

from portfolio_core.ports import NewEvent

CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
# The 74 random bits of a UUIDv7: rand_a (12 bits) and rand_b (62 bits).
RANDOM_BITS = (0xFFF << 64) | ((1 << 62) - 1)


def new_id() -> str:
    return NewEvent("E").id


def test_default_id_is_a_canonical_uuid7_of_now() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_id() for _ in range(2000)]
    after = time.time_ns() // 1_000_000
    for text in ids:
        assert CANONICAL.fullmatch(text), text
        parsed = uuid.UUID(text)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text, "not canonical lowercase text"
        assert before <= parsed.int >> 80 <= after, "timestamp is not Unix milliseconds of now"


def test_every_random_bit_varies() -> None:
    values = [uuid.UUID(new_id()).int for _ in range(10_000)]
    ones = zeros = 0
    for value in values:
        ones |= value & RANDOM_BITS
        zeros |= ~value & RANDOM_BITS
    assert ones == RANDOM_BITS, "a random bit is always 0"
    assert zeros == RANDOM_BITS, "a random bit is always 1"


def test_ids_are_unique() -> None:
    ids = [new_id() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)


def test_ids_made_a_millisecond_apart_sort_in_order() -> None:
    ids = []
    for _ in range(30):
        ids.append(new_id())
        start = time.time_ns()
        while time.time_ns() - start < 1_100_000:
            time.sleep(0.0005)
    assert ids == sorted(ids)


def test_threads_never_get_the_same_id() -> None:
    threads, per_thread = 8, 20_000
    barrier = threading.Barrier(threads)
    made: list[list[str]] = [[] for _ in range(threads)]

    def work(k: int) -> None:
        barrier.wait()
        made[k].extend(new_id() for _ in range(per_thread))

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    every = [i for ids in made for i in ids]
    assert len(every) == threads * per_thread
    assert len(set(every)) == len(every), "two threads got the same id"
    assert all(CANONICAL.fullmatch(i) for i in every)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_does_not_reuse_the_parents_random_bits() -> None:
    new_id()  # random bits drawn ahead of use in this process, if any, are now drawn
    count = 200
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with other threads alive
        pid = os.fork()
    if pid == 0:  # child: report ids, then leave without running anything of the parent's
        status = 1
        try:
            os.close(read_end)
            text = "\n".join(new_id() for _ in range(count)).encode()
            with os.fdopen(write_end, "wb") as out:
                out.write(text)
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    parent = [new_id() for _ in range(count)]
    with os.fdopen(read_end, "rb") as inp:
        child = inp.read().decode().split("\n")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(child) == count
    assert all(CANONICAL.fullmatch(i) for i in child)
    # Compare the random parts: the same timestamp is not needed to expose reused bits.
    assert not {i[14:] for i in child} & {i[14:] for i in parent}, (
        "the child handed out the parent's random bits"
    )
