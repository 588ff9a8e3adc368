"""Presence with Supabase's Python client (realtime==2.34.1) against a running Switchboard.

Run by SwitchboardServerTests.PythonInteropTests:
    python3 python_presence_check.py PORT TOKEN_A TOKEN_B
A tracks on a collaboration channel, B (on the same channel) sees the sync and join with A's
meta, A re-tracks with a new status and B sees the update, A disconnects and B sees the leave
within 2 s. Prints one line per check; exits 0 when all pass, 1 with the failing check.
"""
import asyncio
import sys

from realtime import AsyncRealtimeClient, RealtimeSubscribeStates

TOPIC = "collaboration:s1:c1"
STEP_TIMEOUT = 5.0


async def wait_for(predicate, what, timeout=STEP_TIMEOUT):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


def config(key):
    return {"broadcast": {"ack": False, "self": False}, "presence": {"key": key, "enabled": True}, "private": False}


async def subscribed(channel):
    states = []
    await channel.subscribe(lambda state, err: states.append((state, err)))
    await wait_for(lambda: states, "a subscribe result")
    assert states[-1][0] == RealtimeSubscribeStates.SUBSCRIBED, f"did not subscribe: {states}"


def statuses(channel, key):
    return [meta.get("status") for meta in channel.presence_state().get(key, [])]


async def main(port, token_a, token_b):
    url = f"ws://127.0.0.1:{port}/socket"
    a = AsyncRealtimeClient(url, token_a, auto_reconnect=False)
    b = AsyncRealtimeClient(url, token_b, auto_reconnect=False)
    await a.connect()
    await b.connect()

    ch_b = b.channel(TOPIC, {"config": config("b")})
    syncs, joins, leaves = [], [], []
    ch_b.on_presence_sync(lambda: syncs.append(True))
    ch_b.on_presence_join(lambda key, current, new: joins.append((key, new)))
    ch_b.on_presence_leave(lambda key, current, left: leaves.append((key, left)))
    await subscribed(ch_b)
    ch_a = a.channel(TOPIC, {"config": config("a")})
    await subscribed(ch_a)

    await ch_a.track({"user": "a", "status": "online"})
    await wait_for(lambda: statuses(ch_b, "a") == ["online"], "A's meta in B's presence state")
    assert syncs, "B saw no presence sync"
    joined = [new for key, new in joins if key == "a"]
    assert joined and joined[0][0].get("user") == "a", f"B's join callback did not get A's meta: {joins}"
    assert joined[0][0].get("presence_ref"), f"A's meta has no phx_ref: {joined}"
    print("ok B gets sync and join with A's meta")

    await ch_a.track({"user": "a", "status": "away"})
    await wait_for(lambda: statuses(ch_b, "a") == ["away"], "A's update in B's presence state")
    print("ok a re-track updates the meta at B")

    loop = asyncio.get_running_loop()
    closed_at = loop.time()
    await a.close()
    await wait_for(lambda: "a" not in ch_b.presence_state(), "A's leave at B", timeout=2.0)
    assert any(key == "a" for key, _ in leaves), f"B's leave callback did not fire: {leaves}"
    print(f"ok B sees A leave {loop.time() - closed_at:.2f} s after A disconnects")

    await b.close()


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(*sys.argv[1:4]), timeout=60))
    except Exception as error:  # noqa: BLE001 - report any failure as one line
        print(f"FAIL {type(error).__name__}: {error}")
        sys.exit(1)
    print("ALL PASSED")
