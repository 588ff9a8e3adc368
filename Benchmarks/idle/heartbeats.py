#!/usr/bin/env python3
"""Evenly spread heartbeats: holds N connections joined to K channels, sends supabase-js's
heartbeat on each every INTERVAL seconds, one connection after another at equal spacing, and
reports the server's CPU (from /proc/PID/stat) over WINDOW seconds after SETTLE seconds.

`switchboard bench idle` heartbeats each connection 25 s after its join, so its heartbeats come
in bursts shaped like the connects; this client spreads them evenly and takes any interval
(the CPU rows in docs/BENCHMARKS.md, "Idle connections"). Run it through run.sh (CLIENT=spread).
Standard library only; loopback only; bounded in connections and time.
"""
import argparse, errno, os, resource, select, socket, struct, sys, time

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--port", type=int, required=True, help="server port on 127.0.0.1")
p.add_argument("--server-pid", type=int, required=True, help="the server's process id")
p.add_argument("--token", default="", help="access token (none for the floor server)")
p.add_argument("--connections", type=int, default=1000, help="1..25000")
p.add_argument("--channels", type=int, default=3, help="channels each connection joins, 0..10")
p.add_argument("--interval", type=float, default=25.0, help="seconds between one connection's heartbeats, 0.05..60")
p.add_argument("--settle", type=float, default=30.0, help="seconds of heartbeating before the window, 0..300")
p.add_argument("--window", type=float, default=50.0, help="seconds of measurement, 1..600")
p.add_argument("--source", default="127.0.0.2", help="local address to connect from (127.x.x.x)")
a = p.parse_args()
if not (1 <= a.connections <= 25000 and 0 <= a.channels <= 10 and 0.05 <= a.interval <= 60
        and 0 <= a.settle <= 300 and 1 <= a.window <= 600 and a.source.startswith("127.")
        and 1 <= a.port <= 65535):
    p.error("an option is out of range (see --help)")

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, a.connections + 64), hard), hard))

def frame(text):
    """A client text frame with a zero mask key (the payload goes as is)."""
    body = text.encode()
    head = struct.pack("!BB", 0x81, 0x80 | len(body)) if len(body) < 126 else struct.pack("!BBH", 0x81, 0xFE, len(body))
    return head + b"\0\0\0\0" + body

def cpu_ticks():
    f = open(f"/proc/{a.server_pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])

REQUEST = (f"GET /socket/websocket?apikey={a.token}&vsn=1.0.0 HTTP/1.1\r\nHost: 127.0.0.1:{a.port}\r\n"
           "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n").encode()
JOINS = b"".join(frame('{"topic":"realtime:collaboration:bench:idle%d","event":"phx_join","payload":{"config":'
                       '{"broadcast":{"self":false},"presence":{"key":""},"private":false}},"ref":"%d","join_ref":"%d"}'
                       % (k, k + 1, k + 1)) for k in range(a.channels))

class Conn:  # state: 0 connecting, 1 upgrading, 2 joining, 3 joined
    def __init__(self, sock):
        self.sock, self.state, self.buf, self.frames = sock, 0, b"", 0

conns, ep = {}, select.epoll()
joined = failed = replies = 0

def drop(c):
    global failed
    conns.pop(c.sock.fileno(), None)
    c.sock.close()
    failed += 1

def take_frames(c):
    """Counts and removes the whole server frames in c.buf; False if one is a close."""
    i, buf = 0, c.buf
    while len(buf) - i >= 2:
        n, h = buf[i + 1] & 0x7F, 2
        if n == 126:
            if len(buf) - i < 4: break
            n, h = struct.unpack_from("!H", buf, i + 2)[0], 4
        elif n == 127:
            if len(buf) - i < 10: break
            n, h = struct.unpack_from("!Q", buf, i + 2)[0], 10
        if len(buf) - i < h + n: break
        if buf[i] & 0x0F == 0x8: return False
        i += h + n
        c.frames += 1
    c.buf = buf[i:]
    return True

def on_event(fd, ev):
    global joined, replies
    c = conns.get(fd)
    if c is None: return
    if ev & (select.EPOLLERR | select.EPOLLHUP): return drop(c)
    if c.state == 0:
        c.sock.send(REQUEST); c.state = 1
        return ep.modify(fd, select.EPOLLIN)
    try:
        data = c.sock.recv(65536)
    except BlockingIOError:
        return
    except OSError:
        return drop(c)
    if not data: return drop(c)
    c.buf += data
    if c.state == 1:
        end = c.buf.find(b"\r\n\r\n")
        if end < 0: return
        if not c.buf.startswith(b"HTTP/1.1 101"):
            print("upgrade refused:", c.buf[:200], file=sys.stderr); return drop(c)
        c.buf, c.state = c.buf[end + 4:], 2
        c.sock.send(JOINS)
    if c.state == 2 and b'"status":"error"' in c.buf:
        print("join refused:", c.buf[:300], file=sys.stderr); return drop(c)
    before = c.frames
    if not take_frames(c): return drop(c)
    if c.state == 2 and c.frames >= a.channels:
        c.state, c.frames = 3, 0
        joined += 1
    elif c.state == 3:
        replies += c.frames - before

# Connect and join, at most 200 in flight, within 300 s.
started = time.monotonic()
opened = 0
while joined + failed < a.connections and time.monotonic() < started + 300:
    while opened < a.connections and opened - joined - failed < 200:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24), 1)  # port picked at connect
        s.setblocking(False)
        s.bind((a.source, 0))
        opened += 1
        if s.connect_ex(("127.0.0.1", a.port)) not in (0, errno.EINPROGRESS):
            s.close(); failed += 1; continue
        conns[s.fileno()] = Conn(s)
        ep.register(s.fileno(), select.EPOLLOUT | select.EPOLLIN)
    for fd, ev in ep.poll(0.05, 4096): on_event(fd, ev)
live = [c for c in conns.values() if c.state == 3]
print(f"connected={len(live)} failed={failed} connect={time.monotonic() - started:.1f}s", flush=True)
if not live: sys.exit(1)

# Heartbeat each connection every interval, evenly spaced; measure over the window.
ref = sent = 0
t0 = time.monotonic()
slot = a.interval / len(live)
window_start, window_end = t0 + a.settle, t0 + a.settle + a.window
mark = None
while (now := time.monotonic()) < window_end:
    while sent < int((now - t0) / slot):
        c = live[sent % len(live)]
        sent += 1
        if c.sock.fileno() in conns:
            ref += 1
            try: c.sock.send(frame('{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"%d"}' % ref))
            except OSError: drop(c)
    if mark is None and now >= window_start:
        mark = (now, cpu_ticks(), ref, replies, os.times())
    for fd, ev in ep.poll(min(0.01, slot), 4096): on_event(fd, ev)
ticks, end, me = cpu_ticks(), time.monotonic(), os.times()
t_start, ticks_start, ref_start, replies_start, me_start = mark
elapsed, beats = end - t_start, ref - ref_start
cpu = (ticks - ticks_start) / os.sysconf("SC_CLK_TCK")
client = (me.user + me.system) - (me_start.user + me_start.system)
print(f"spread connections={sum(1 for c in live if c.sock.fileno() in conns)} channels={a.channels} "
      f"interval={a.interval}s window={elapsed:.1f}s heartbeats={beats} replies={replies - replies_start} "
      f"server_cpu={100 * cpu / elapsed:.2f}% per_heartbeat={1e6 * cpu / max(beats, 1):.1f}us "
      f"client_cpu={100 * client / elapsed:.1f}% load={open('/proc/loadavg').read().split()[0]}", flush=True)
for c in list(conns.values()): c.sock.close()
