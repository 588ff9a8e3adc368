"""Supabase's Python client (realtime==2.34.1) on one node of a three-node Switchboard cluster.

Run by SwitchboardServerTests.ClusterTests:
    python3 python_cluster_check.py PORT_A TOKEN_A
Subscribes to collaboration:s1:c1 on node A with presence key "a", tracks, and prints READY. The
test then publishes document:saved with document_id "from-b" on node B (WebSocket), "from-c"
on node C (REST) and "from-db" by a trigger, and tracks presences "b" on B and "c" on C. This
checks that all three messages arrive, that A's presence shows a, b and c, and that a client
joining on A afterwards gets all three in its presence_state. Prints one line per check; exits
0 when all pass, 1 with the failing check.
"""
import asyncio
import sys

from realtime import AsyncRealtimeClient, RealtimeSubscribeStates

from interop_support import subscribe, wait_for

TOPIC = "collaboration:s1:c1"
TIMEOUT = 60.0


def config(key):
    return {"broadcast": {"ack": False, "self": False}, "presence": {"key": key, "enabled": True}, "private": False}


async def main(port, token):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    url = f"ws://127.0.0.1:{port}/socket"
    a = AsyncRealtimeClient(url, token, auto_reconnect=False)
    await a.connect()
    channel = a.channel(TOPIC, {"config": config("a")})
    received = []
    channel.on_broadcast("document:saved", lambda message: received.append(message["payload"]["document_id"]))
    states = await subscribe(channel, deadline)
    assert states[-1][0] == RealtimeSubscribeStates.SUBSCRIBED, f"did not subscribe: {states}"
    await channel.track({"node": "A"})
    await wait_for("A's own presence", lambda: "a" in channel.presence_state(), deadline)
    print("READY", flush=True)

    for source in ("from-b", "from-c", "from-db"):
        await wait_for(f"the message {source}", lambda: source in received, deadline)
        print(f"ok got {source} on node A", flush=True)
    assert sorted(received) == ["from-b", "from-c", "from-db"], f"each message once: {received}"
    print("ok each message arrived once", flush=True)

    await wait_for("presences b and c", lambda: {"a", "b", "c"} <= set(channel.presence_state()), deadline)
    print("ok presence on A shows a, b and c", flush=True)

    late = AsyncRealtimeClient(url, token, auto_reconnect=False)
    await late.connect()
    late_channel = late.channel(TOPIC, {"config": config("late")})
    states = await subscribe(late_channel, deadline)
    assert states[-1][0] == RealtimeSubscribeStates.SUBSCRIBED, f"the late client did not subscribe: {states}"
    await wait_for("a presence_state with a, b and c", lambda: {"a", "b", "c"} <= set(late_channel.presence_state()), deadline)
    print("ok a client joining A later gets a, b and c in presence_state", flush=True)
    await late.close()
    await a.close()


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(*sys.argv[1:3]), timeout=TIMEOUT + 10))
    except Exception as error:  # noqa: BLE001 - report any failure as one line
        print(f"FAIL {type(error).__name__}: {error}", flush=True)
        sys.exit(1)
    print("ALL PASSED", flush=True)
