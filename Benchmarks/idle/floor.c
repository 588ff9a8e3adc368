/*
 * floor.c: the syscall floor for idle heartbeats (docs/BENCHMARKS.md, "Idle connections").
 *
 * A single-threaded epoll WebSocket server on 127.0.0.1:PORT that does only what an idle
 * Supabase Realtime (vsn 1.0.0) connection needs: it answers the HTTP upgrade, each phx_join
 * with an ok reply and every other text frame (a heartbeat) with an ok phx_reply, echoing the
 * frame's ref and topic. No JSON parser, no channels, no timers: one epoll_wait, one read and
 * one write per heartbeat, the same syscalls Switchboard makes for one. What a heartbeat costs
 * here is the cost before any server logic.
 *
 * Build: cc -O2 -o floor floor.c
 * Run:   ./floor PORT [SECONDS]     exits after SECONDS (default 600, at most 86400)
 * Measure it with Benchmarks/idle/run.sh floor.
 *
 * Limits: at most 100,000 connections; each keeps a 2 KB receive buffer (part of the memory per
 * connection that the docs compare) and is closed if a request or frame does not fit in it;
 * replies are ~100 bytes on loopback and are not retried if the socket buffer is full.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTIONS 100000
#define ROL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

typedef struct {
    int fd, upgraded;
    size_t len;
    char buf[2048];
} conn;

static int connections;

static void sha1(const unsigned char *msg, size_t len, unsigned char out[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t blocks = (len + 9 + 63) / 64;
    for (size_t blk = 0; blk < blocks; blk++) {
        unsigned char p[64];
        for (size_t i = 0; i < 64; i++) {
            size_t at = blk * 64 + i;
            p[i] = at < len ? msg[at] : at == len ? 0x80 : 0;
        }
        if (blk == blocks - 1)
            for (int i = 0; i < 8; i++) p[63 - i] = (unsigned char)((uint64_t)len * 8 >> (8 * i));
        uint32_t w[80];
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
        for (int i = 16; i < 80; i++) w[i] = ROL(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 80; i++) {
            uint32_t f = i < 20 ? (b & c) | (~b & d) : i < 40 ? b ^ c ^ d : i < 60 ? (b & c) | (b & d) | (c & d) : b ^ c ^ d;
            uint32_t k = i < 20 ? 0x5A827999 : i < 40 ? 0x6ED9EBA1 : i < 60 ? 0x8F1BBCDC : 0xCA62C1D6;
            uint32_t t = ROL(a, 5) + f + e + k + w[i];
            e = d; d = c; c = ROL(b, 30); b = a; a = t;
        }
        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
    }
    for (int i = 0; i < 20; i++) out[i] = (unsigned char)(h[i / 4] >> (24 - 8 * (i % 4)));
}

/* Writes the 101 response for the request in `head` (NUL-terminated) into out; 0 if it has no key. */
static size_t upgrade_response(char *head, char *out, size_t cap) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *key = strcasestr(head, "\r\nSec-WebSocket-Key:");
    if (!key) return 0;
    key += 20;
    while (*key == ' ') key++;
    size_t n = strcspn(key, " \r");
    if (n == 0 || n > 64) return 0;
    unsigned char in[100], d[20];
    memcpy(in, key, n);
    memcpy(in + n, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    sha1(in, n + 36, d);
    char accept[29];
    for (int i = 0, j = 0; i < 21; i += 3, j += 4) { /* 20 bytes: 6 full groups and one of 2 */
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)(i + 1 < 20 ? d[i + 1] : 0) << 8 | (i + 2 < 20 ? d[i + 2] : 0);
        accept[j] = b64[v >> 18 & 63];
        accept[j + 1] = b64[v >> 12 & 63];
        accept[j + 2] = b64[v >> 6 & 63];
        accept[j + 3] = i + 2 < 20 ? b64[v & 63] : '=';
    }
    accept[28] = 0;
    return (size_t)snprintf(out, cap, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                      "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept);
}

/* The JSON value after `name` in p (a quoted string without escapes, or null), at most 200 bytes. */
static void field(const char *p, size_t n, const char *name, char *out) {
    const char *at = memmem(p, n, name, strlen(name));
    strcpy(out, "null");
    if (!at || (at += strlen(name)) >= p + n || *at != '"') return;
    const char *end = memchr(at + 1, '"', (size_t)(p + n - at - 1));
    if (end && end - at < 200) { memcpy(out, at, (size_t)(end - at + 1)); out[end - at + 1] = 0; }
}

/* Appends the reply to one text frame's payload to out; returns its length. */
static size_t reply(const char *payload, size_t n, char *out) {
    char ref[208], topic[208], text[512];
    field(payload, n, "\"ref\":", ref);
    field(payload, n, "\"topic\":", topic);
    int len = snprintf(text, sizeof text, "{\"event\":\"phx_reply\",\"payload\":{\"response\":{},\"status\":\"ok\"},"
                                          "\"ref\":%s,\"topic\":%s}", ref, topic);
    out[0] = (char)0x81;
    if (len < 126) { out[1] = (char)len; memcpy(out + 2, text, (size_t)len); return (size_t)len + 2; }
    out[1] = 126; out[2] = (char)(len >> 8); out[3] = (char)len;
    memcpy(out + 4, text, (size_t)len);
    return (size_t)len + 4;
}

static void drop(conn *c) {
    close(c->fd);
    free(c);
    connections--;
}

static int put(conn *c, const char *p, size_t n) {
    return n == 0 || write(c->fd, p, n) == (ssize_t)n ? 0 : -1;
}

/* Reads what is there and answers every whole frame with one write; 0 to keep the connection. */
static int on_readable(conn *c) {
    ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
    if (r < 0) return errno == EAGAIN || errno == EINTR ? 0 : -1;
    if (r == 0) return -1;
    c->len += (size_t)r;
    char out[8192];
    size_t outn = 0, at = 0;
    if (!c->upgraded) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (!end) return c->len == sizeof c->buf ? -1 : 0;
        end[2] = 0;
        outn = upgrade_response(c->buf, out, sizeof out);
        if (outn == 0) return -1;
        at = (size_t)(end + 4 - c->buf);
        c->upgraded = 1;
    }
    while (c->len - at >= 6) { /* client frames are masked: 2 bytes, [2 of length], 4 of mask */
        unsigned char *f = (unsigned char *)c->buf + at;
        size_t len = f[1] & 0x7F, hl = 6;
        if (len == 127) return -1;
        if (len == 126) { len = (size_t)f[2] << 8 | f[3]; hl = 8; }
        if (c->len - at < hl + len) break;
        char *payload = (char *)f + hl;
        for (size_t i = 0; i < len; i++) payload[i] ^= (char)f[hl - 4 + i % 4];
        at += hl + len;
        if ((f[0] & 0x0F) == 0x8) { put(c, out, outn); put(c, "\x88\x00", 2); return -1; }
        if ((f[0] & 0x0F) != 0x1) continue;
        if (outn + 600 > sizeof out) { if (put(c, out, outn)) return -1; outn = 0; }
        outn += reply(payload, len, out + outn);
    }
    memmove(c->buf, c->buf + at, c->len - at);
    c->len -= at;
    if (c->len == sizeof c->buf) return -1;
    return put(c, out, outn);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 0;
    double seconds = argc > 2 ? atof(argv[2]) : 600;
    if (argc < 2 || argc > 3 || port < 1 || port > 65535 || !(seconds > 0 && seconds <= 86400)) {
        fprintf(stderr, "usage: floor PORT [SECONDS]   (a WebSocket server on 127.0.0.1:PORT for SECONDS, default 600)\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) { rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl); }
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&addr, sizeof addr) || listen(ls, 4096)) { perror("floor: listen"); return 1; }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev)) { perror("floor: epoll"); return 1; }
    struct epoll_event events[512];
    double deadline = now() + seconds;
    for (double left = seconds; left > 0; left = deadline - now()) {
        int n = epoll_wait(ep, events, 512, left > 1000 ? 1000000 : (int)(left * 1000) + 1);
        for (int i = 0; i < n; i++) {
            conn *c = events[i].data.ptr;
            if (c != NULL) {
                if (on_readable(c)) drop(c);
                continue;
            }
            for (int k = 0; k < 256; k++) { /* accept at most 256 per wake-up */
                int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
                if (fd < 0) break;
                conn *nc = connections < MAX_CONNECTIONS ? calloc(1, sizeof *nc) : NULL;
                struct epoll_event e = {.events = EPOLLIN, .data.ptr = nc};
                if (!nc || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e)) { close(fd); free(nc); continue; }
                nc->fd = fd;
                connections++;
            }
        }
    }
    return 0;
}
