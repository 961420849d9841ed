"""The timers stream, read and written directly: what the gateway's REST routes and the
orchestrators' tools rely on, on a server that schedules messages and on one that cannot."""

from __future__ import annotations

import contextlib

import nats
import pytest
from nats.js.errors import NotFoundError
from pam_shared.subjects import Subjects
from pam_shared.timers import TimerStore, TimersUnavailable, countdown

USER = "u-timers"


async def test_a_timer_is_listed_until_cancelled_and_a_bad_id_finds_nothing(nc, names):
    store = TimerStore(nc.jetstream(), names)
    await store.ensure()
    try:
        soon, later = countdown(USER, 600, "soon"), countdown(USER, 1200, "later")
        for timer in (later, soon):
            await store.set(timer)
        listed = [t.label for t in await store.pending(USER)]
        cancelled, again = await store.cancel(USER, soon.timer_id), await store.cancel(USER, soon.timer_id)
        left = [t.label for t in await store.pending(USER)]
        sneaky = await store.dismiss(USER, "*")
    finally:
        await nc.jetstream().delete_stream(names.timers_stream)
    assert store.available and listed == ["soon", "later"]
    assert (cancelled, again, sneaky) == (True, False, False)
    assert left == ["later"]


async def test_on_a_server_older_than_2_12_timers_are_refused_not_silently_lost(namespace):
    """Against the machine's NATS (Debian's 2.9, which ``.ci/run`` starts on 4222)."""
    try:
        old = await nats.connect("nats://127.0.0.1:4222", connect_timeout=2, max_reconnect_attempts=0)
    except Exception:
        pytest.skip("no NATS server on 127.0.0.1:4222")
    try:
        version = old.connected_server_version
        if (version.major, version.minor) >= (2, 12):
            pytest.skip(f"the NATS server on 4222 is {old.connected_server_version}, not older than 2.12")
        store = TimerStore(old.jetstream(), Subjects(namespace))
        await store.ensure()
        with pytest.raises(TimersUnavailable):
            await store.set(countdown(USER, 60))
        assert store.available is False
    finally:
        with contextlib.suppress(NotFoundError):
            await old.jetstream().delete_stream(Subjects(namespace).timers_stream)
        await old.close()
