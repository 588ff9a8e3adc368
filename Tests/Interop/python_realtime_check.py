"""Drives Supabase's Python client (realtime==2.34.1) against a running Switchboard.

Run by SwitchboardServerTests.PythonInteropTests, which starts the server and mints the tokens:
    python3 python_realtime_check.py PORT SUPPLIER_TOKEN COUPLE_TOKEN FRESH_SUPPLIER_TOKEN OUTSIDER_TOKEN
Prints one line per check and exits 0 when all pass, 1 with the failing check otherwise.
"""
import asyncio
import sys

from realtime import AsyncRealtimeClient, RealtimeSubscribeStates

TOPIC = "collaboration:s1:c1"
STEP_TIMEOUT = 5.0


async def wait_for(predicate, what):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STEP_TIMEOUT
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def subscribe(client, topic, config=None):
    states = []
    params = None
    if config is not None:
        params = {"config": config}
    channel = client.channel(topic, params)
    received = []
    channel.on_broadcast("*", lambda message: received.append(message))
    await channel.subscribe(lambda state, err: states.append((state, err)))
    return channel, states, received


def events(received, name):
    return [m["payload"] for m in received if m.get("event") == name]


async def main(port, supplier, couple, fresh, outsider):
    url = f"ws://127.0.0.1:{port}/socket"
    a = AsyncRealtimeClient(url, supplier, auto_reconnect=False)
    b = AsyncRealtimeClient(url, couple, auto_reconnect=False)
    await a.connect()
    await b.connect()

    config_a = {"broadcast": {"ack": True, "self": True}, "presence": {"key": "", "enabled": False}, "private": False}
    ch_a, states_a, got_a = await subscribe(a, TOPIC, config_a)
    ch_b, states_b, got_b = await subscribe(b, TOPIC)
    assert states_a and states_a[-1][0] == RealtimeSubscribeStates.SUBSCRIBED, f"A did not subscribe: {states_a}"
    assert states_b and states_b[-1][0] == RealtimeSubscribeStates.SUBSCRIBED, f"B did not subscribe: {states_b}"
    print("ok subscribe reaches SUBSCRIBED")

    acks = []
    push = await ch_a.push("broadcast", {"type": "broadcast", "event": "hello", "payload": {"n": 1, "x": 1.50}})
    push.receive("ok", lambda response: acks.append(response))
    await wait_for(lambda: acks, "the ack of A's broadcast")
    print("ok ack: the server acknowledged the broadcast")

    await wait_for(lambda: events(got_b, "hello"), "A's broadcast at B")
    payload = events(got_b, "hello")[0]
    assert payload == {"n": 1, "x": 1.50}, f"B got a different payload: {payload}"
    print("ok broadcast reaches a second client")

    await wait_for(lambda: events(got_a, "hello"), "A's own broadcast at A (self: true)")
    print("ok self: true echoes the sender's broadcast")

    await ch_b.send_broadcast("from_b", {"n": 2})
    await wait_for(lambda: events(got_a, "from_b"), "B's broadcast at A")
    await ch_a.send_broadcast("marker", {"n": 3})
    await wait_for(lambda: events(got_b, "marker"), "A's marker at B")
    assert not events(got_b, "from_b"), "B received its own broadcast although self is false"
    print("ok self: false does not echo")

    await a.set_auth(fresh)
    await ch_a.send_broadcast("after_auth", {"n": 4})
    await wait_for(lambda: events(got_b, "after_auth"), "a broadcast after set_auth")
    assert ch_a.is_joined, "A's channel left after set_auth with a valid token"
    print("ok set_auth with a fresh token is accepted")

    await ch_b.http_send("over_rest", {"n": 5})
    await wait_for(lambda: events(got_a, "over_rest"), "a REST broadcast (http_send) at A")
    print("ok http_send reaches subscribers")

    c = AsyncRealtimeClient(url, outsider, auto_reconnect=False)
    await c.connect()
    ch_c, states_c, _ = await subscribe(c, TOPIC)
    assert states_c and states_c[0][0] == RealtimeSubscribeStates.CHANNEL_ERROR, f"outsider was not refused: {states_c}"
    assert "Unauthorized" in str(states_c[0][1]), f"refusal without a reason: {states_c}"
    print("ok an outsider is refused with an Unauthorized reason")

    for client in (a, b, c):
        await client.close()


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(*sys.argv[1:6]), timeout=60))
    except Exception as error:  # noqa: BLE001 - report any failure as one line
        print(f"FAIL {type(error).__name__}: {error}")
        sys.exit(1)
    print("ALL PASSED")
