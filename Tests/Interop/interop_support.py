"""Helpers shared by the interop scripts that drive Supabase's Python realtime client."""
import asyncio

from realtime import RealtimeSubscribeStates


async def wait_for(what, condition, deadline):
    """Polls `condition` until it holds; fails once the loop's clock passes `deadline`."""
    loop = asyncio.get_running_loop()
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def subscribe(channel, deadline, states=None):
    """Subscribes `channel` and waits for the join's answer; returns the (state, error) pairs
    seen (appended to `states` when given, which keeps filling afterwards)."""
    states = [] if states is None else states
    await channel.subscribe(lambda state, err: states.append((state, err)))
    settled = (RealtimeSubscribeStates.SUBSCRIBED, RealtimeSubscribeStates.CHANNEL_ERROR)
    await wait_for("a join reply", lambda: any(state in settled for state, _ in states), deadline)
    return states
