"""Supabase's Python client (realtime==2.34.1) receives messages that PostgreSQL published.

Run by SwitchboardServerTests.DatabaseTests, which starts PostgreSQL and the server:
    python3 python_database_check.py PORT SUPPLIER_TOKEN
Subscribes to collaboration:s1:c1 and prints READY; the test then commits a plain
realtime.send(...), an insert whose trigger calls realtime.broadcast_changes(...), and a
rolled-back send. Prints one line per check and exits 0 when all pass, 1 otherwise.
"""
import asyncio
import json
import sys

from realtime import AsyncRealtimeClient, RealtimeSubscribeStates

TOPIC = "collaboration:s1:c1"
TIMEOUT = 20.0


async def main(port, token):
    client = AsyncRealtimeClient(f"ws://127.0.0.1:{port}/socket", token, auto_reconnect=False)
    await client.connect()
    channel = client.channel(TOPIC, {"config": {"private": True}})
    received = []
    states = []
    channel.on_broadcast("*", lambda message: received.append(message))
    await channel.subscribe(lambda state, err: states.append(state))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while RealtimeSubscribeStates.SUBSCRIBED not in states:
        if loop.time() > deadline:
            raise AssertionError(f"did not subscribe: {states}")
        await asyncio.sleep(0.01)
    print("READY", flush=True)

    while len(received) < 3:
        if loop.time() > deadline:
            raise AssertionError(f"timed out; received {received}")
        await asyncio.sleep(0.01)
    sent, change, marker = received[0], received[1], received[2]

    assert sent["event"] == "from-sql", sent
    assert sent["payload"]["text"] == "sent from SQL", sent
    assert sent["payload"]["id"] == sent["meta"]["id"], sent
    print("ok realtime.send arrives with its row id", flush=True)

    assert change["event"] == "response-created", change
    body = change["payload"]
    assert body["operation"] == "INSERT", body
    assert body["table"] == "form_responses" and body["schema"] == "public", body
    assert body["record"] == {"id": "r1", "form_id": "f1", "status": "new"}, body
    assert body["old_record"] is None, body
    print("ok broadcast_changes arrives with record, old_record, operation, table, schema", flush=True)

    assert marker["event"] == "marker", f"something arrived before the marker: {marker}"
    assert all(m["payload"].get("text") != "rolled back" for m in received), received
    print("ok a rolled-back send delivers nothing", flush=True)
    print(json.dumps(received), flush=True)
    await client.close()
    print("ALL PASSED", flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1], sys.argv[2]))
    except Exception as error:  # report and fail
        print(f"FAILED: {error!r}", flush=True)
        sys.exit(1)
