"""Supabase's Python client (realtime==2.34.1), unchanged, receives Postgres Changes.

Run by SwitchboardServerTests.PostgresChangesTests, which starts PostgreSQL and the server:
    python3 python_changes_check.py PORT S1_TOKEN S2_TOKEN
Supplier s1 listens on supplier:dashboard:s1 with on_postgres_changes for INSERT, UPDATE,
DELETE and * on public.form_responses, and INSERT with the filter status=eq.new; supplier s2
listens with * on its own dashboard; a third channel asks for a malformed filter. The script
prints READY; the test then commits, one statement each: an s1 row (new), an s1 row (draft),
an update of the draft, a delete of it (replica identity full), an s2 row, an s1 marker row.
Prints one line per check and exits 0 when all pass, 1 otherwise.
"""
import asyncio
import sys

from interop_support import subscribe, wait_for
from realtime import AsyncRealtimeClient, RealtimeSubscribeStates

TIMEOUT = 30.0


def record(payload):
    return payload["data"].get("record") or payload["data"].get("old_record")


async def main(port, s1_token, s2_token):
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    url = f"ws://127.0.0.1:{port}/socket"
    s1 = AsyncRealtimeClient(url, s1_token, auto_reconnect=False)
    s2 = AsyncRealtimeClient(url, s2_token, auto_reconnect=False)
    await s1.connect()
    await s2.connect()
    got = {name: [] for name in ("insert", "update", "delete", "all", "new", "s2")}
    mine = s1.channel("supplier:dashboard:s1", {"config": {"private": True}})
    table = "form_responses"
    mine.on_postgres_changes("INSERT", lambda p: got["insert"].append(p), table=table)
    mine.on_postgres_changes("UPDATE", lambda p: got["update"].append(p), table=table)
    mine.on_postgres_changes("DELETE", lambda p: got["delete"].append(p), table=table)
    mine.on_postgres_changes("*", lambda p: got["all"].append(p), table=table)
    mine.on_postgres_changes("INSERT", lambda p: got["new"].append(p), table=table, filter="status=eq.new")
    states = await subscribe(mine, deadline)
    assert states[-1][0] == RealtimeSubscribeStates.SUBSCRIBED, states
    theirs = s2.channel("supplier:dashboard:s2", {"config": {"private": True}})
    theirs.on_postgres_changes("*", lambda p: got["s2"].append(p), table=table)
    states = await subscribe(theirs, deadline)
    assert states[-1][0] == RealtimeSubscribeStates.SUBSCRIBED, states
    print("ok both subscribe with their bindings echoed", flush=True)

    bad = s1.channel("collaboration:s1:c1", {"config": {"private": True}})
    bad.on_postgres_changes("INSERT", lambda p: None, table=table, filter="status=zz.new")
    states = await subscribe(bad, deadline)
    errors = [str(err) for state, err in states if state == RealtimeSubscribeStates.CHANNEL_ERROR]
    assert any("unknown operator" in error and "status=zz.new" in error for error in errors), states
    await bad.unsubscribe()
    print("ok a malformed filter is a join error that says what is wrong", flush=True)
    print("READY", flush=True)

    await wait_for("the marker row", lambda: any(record(p)["form_id"] == "marker" for p in got["insert"]), deadline)
    ids = lambda name: [(p["data"]["type"], record(p)["id"]) for p in got[name]]
    assert ids("insert") == [("INSERT", 1), ("INSERT", 2), ("INSERT", 4)], ids("insert")
    assert ids("update") == [("UPDATE", 2)], ids("update")
    assert ids("delete") == [("DELETE", 2)], ids("delete")
    assert ids("all") == [("INSERT", 1), ("INSERT", 2), ("UPDATE", 2), ("DELETE", 2), ("INSERT", 4)], ids("all")
    assert ids("new") == [("INSERT", 1)], ids("new")
    print("ok INSERT, UPDATE, DELETE and * arrive, the filter holds", flush=True)

    update = got["update"][0]["data"]
    assert update["record"]["status"] == "open" and update["old_record"]["id"] == 2, update
    assert update["schema"] == "public" and update["table"] == table and update["errors"] is None, update
    assert {"name": "status", "type": "text"} in update["columns"], update["columns"]
    assert got["delete"][0]["data"]["old_record"]["supplier_id"] == "s1", got["delete"][0]
    print("ok record, old_record, columns and errors as Supabase sends them", flush=True)

    await wait_for("s2's row", lambda: len(got["s2"]) >= 1, deadline)
    assert [record(p)["supplier_id"] for p in got["s2"]] == ["s2"], got["s2"]
    assert all(record(p)["supplier_id"] == "s1" for name in ("insert", "update", "delete", "all", "new") for p in got[name])
    print("ok each supplier sees only the rows its rule allows", flush=True)
    await s1.close()
    await s2.close()
    print("ALL PASSED", flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main(*sys.argv[1:4]))
    except Exception as error:  # report and fail
        print(f"FAILED: {error!r}", flush=True)
        sys.exit(1)
