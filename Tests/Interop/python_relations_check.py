"""Supabase's Python client (realtime==2.34.1) sees a team membership revoked live.

Run by SwitchboardServerTests.DatabaseRelationsTests, which starts PostgreSQL and the server on
the default rules with supplier_team read from app.supplier_team:
    python3 python_relations_check.py PORT SUPPLIER_TOKEN COUPLE_TOKEN MEMBER_TOKEN
The supplier (s1), the couple (c1) and a scale-tier team member join collaboration:s1:c1, and
the script prints READY. The test then deletes the member's supplier_team row: the member's
subscription must end with Supabase's "You no longer have permission" error and phx_close,
while the supplier and couple keep receiving each other; the script prints REVOKED. The test
inserts the row again and the member must be able to subscribe again.
Prints one line per check and exits 0 when all pass, 1 otherwise.
"""
import asyncio
import sys

from interop_support import subscribe, wait_for
from realtime import AsyncRealtimeClient, RealtimeSubscribeStates

TOPIC = "collaboration:s1:c1"
TIMEOUT = 30.0
MESSAGE = (
    "You no longer have permission to read from this Channel topic: collaboration:s1:c1 "
    "(only supplier s1 and couple c1 may collaborate here)"
)


async def join(client, states, received, deadline):
    """Subscribes to TOPIC and returns the channel and whether the join was accepted (a refused
    channel goes on retrying by itself, as the client does after any join error)."""
    channel = client.channel(TOPIC, {"config": {"private": True, "broadcast": {"self": False}}})
    channel.on_broadcast("*", lambda message: received.append(message))
    await subscribe(channel, deadline, states)
    return channel, any(state == RealtimeSubscribeStates.SUBSCRIBED for state, _ in states)


async def main(port, supplier_token, couple_token, member_token):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    clients, channels, states, received = {}, {}, {}, {}
    for name, token in (("supplier", supplier_token), ("couple", couple_token), ("member", member_token)):
        client = AsyncRealtimeClient(f"ws://127.0.0.1:{port}/socket", token, auto_reconnect=False)
        await client.connect()
        clients[name], states[name], received[name] = client, [], []
        channels[name], joined = await join(client, states[name], received[name], deadline)
        assert joined, f"{name} could not subscribe: {states[name]}"
    print("ok the team member subscribes through its supplier_team row", flush=True)
    print("READY", flush=True)

    # The test deletes the row now.
    member = states["member"]
    await wait_for("the member's CLOSED", lambda: any(s == RealtimeSubscribeStates.CLOSED for s, _ in member), deadline)
    errors = [str(err) for state, err in member if state == RealtimeSubscribeStates.CHANNEL_ERROR]
    assert any(MESSAGE in error for error in errors), f"no revocation message: {member}"
    print("ok the member's subscription closes with Supabase's message", flush=True)

    await channels["supplier"].send_broadcast("after-revocation", {"text": "still here"})
    await wait_for("the couple's broadcast", lambda: any(m["event"] == "after-revocation" for m in received["couple"]), deadline)
    await channels["couple"].send_broadcast("reply", {"text": "me too"})
    await wait_for("the supplier's broadcast", lambda: any(m["event"] == "reply" for m in received["supplier"]), deadline)
    assert not any(m["event"] in ("after-revocation", "reply") for m in received["member"]), received["member"]
    print("ok the supplier and couple keep receiving; the member gets nothing", flush=True)
    print("REVOKED", flush=True)

    # The test inserts the row again: the member may subscribe again. Refused until the row
    # lands, the channel retries on the client's own rejoin timer (1 s, then 2 s, ...).
    again = []
    await join(clients["member"], again, received["member"], deadline)
    await wait_for("the member's new SUBSCRIBED", lambda: any(s == RealtimeSubscribeStates.SUBSCRIBED for s, _ in again), deadline)
    await channels["supplier"].send_broadcast("welcome-back", {"text": "hi again"})
    await wait_for("the member's broadcast", lambda: any(m["event"] == "welcome-back" for m in received["member"]), deadline)
    print("ok the member subscribes again once the row is back, and receives", flush=True)
    for client in clients.values():
        await client.close()
    print("ALL PASSED", flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main(*sys.argv[1:5]))
    except Exception as error:  # report and fail
        print(f"FAILED: {error!r}", flush=True)
        sys.exit(1)
