/*
 * bench/ws_client.c: load generator for bench/ws.sh.  Plain epoll and
 * nonblocking sockets with its own minimal RFC 6455 client framing
 * (masked frames out, unmasked frames in), so the client costs a few
 * microseconds per handshake and the server under test is the bottleneck.
 * It speaks to chela and to the Node `ws` comparison server alike.
 *
 *   ws_client handshakes HOST PORT TOKEN SECONDS CONCURRENCY [PROCS]
 *       each connection loops: connect, HTTP upgrade, read
 *       connect.challenge, send connect, read hello-ok (must carry
 *       "ok":true), send close 1000, read the server's close and its FIN.
 *       Prints "handshakes N rate R/s errors E p50_us A p90_us B
 *       p99_us C max_us D" (latency from connect() to hello-ok).
 *   ws_client idle HOST PORT TOKEN COUNT
 *       opens COUNT authenticated connections (at most 256 handshaking at
 *       once), prints "ready N", then holds them, reading and dropping
 *       whatever arrives (ticks), until stdin closes.
 *
 * Loopback only by intent (the host is an IPv4 literal); every loop is
 * bounded by SECONDS or COUNT.  Not part of the gateway: no ch_* API.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BUF_MAX (1024 * 1024) /* largest server message accepted */
#define HIST_US 1000000       /* latency histogram: 1 us buckets up to 1 s */
#define IDLE_BATCH 256

enum stage { S_CONNECTING, S_UPGRADE, S_CHALLENGE, S_HELLO, S_CLOSE, S_EOF, S_IDLE };

struct conn {
    int fd;
    enum stage st;
    uint64_t t0_ns;
    char *buf; /* input not yet consumed; NULL while idle */
    size_t len, cap;
};

struct result {
    uint64_t ok, errors, max_us;
    uint32_t hist[HIST_US + 1]; /* last bucket: >= 1 s */
};

static struct sockaddr_in addr;
static char req[512], connect_frame[512];
static size_t req_len, connect_len;
static int ep;
static struct result *res;
static int want_idle;
static int64_t idle_ready, idle_open;

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Masked client frame (RFC 6455 5.3); mask from a cheap PRNG: a load
 * generator needs no unpredictability. */
static size_t frame(uint8_t *out, int opcode, const char *p, size_t n)
{
    static uint32_t x = 2463534242u;
    size_t h = 0;
    uint8_t m[4];

    out[h++] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        out[h++] = (uint8_t)(0x80 | n);
    } else {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(n >> 8);
        out[h++] = (uint8_t)n;
    }
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    memcpy(m, &x, 4);
    memcpy(out + h, m, 4);
    h += 4;
    for (size_t i = 0; i < n; i++)
        out[h + i] = (uint8_t)p[i] ^ m[i & 3];
    return h + n;
}

static int send_all(int fd, const void *p, size_t n)
{
    /* Tiny writes into an empty socket buffer: all or nothing. */
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    return w == (ssize_t)n ? 0 : -1;
}

static int conn_start(struct conn *c)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    int one = 1;

    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->st = S_CONNECTING;
    c->len = 0;
    c->t0_ns = now_ns();
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 && errno != EINPROGRESS)
        goto fail;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
        goto fail;
    return 0;
fail:
    close(c->fd);
    c->fd = -1;
    return -1;
}

static void conn_end(struct conn *c, int ok)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (!ok)
        res->errors++;
}

/* Next complete server frame in c->buf: 1 (opcode, payload, size set),
 * 0 need more, -1 malformed. */
static int next_frame(struct conn *c, int *op, const char **pl, size_t *pn, size_t *used)
{
    const uint8_t *b = (const uint8_t *)c->buf;
    size_t h = 2;
    uint64_t n;

    if (c->len < 2)
        return 0;
    if (b[1] & 0x80)
        return -1; /* servers never mask */
    n = b[1] & 0x7f;
    if (n == 126) {
        if (c->len < 4)
            return 0;
        n = (uint64_t)b[2] << 8 | b[3];
        h = 4;
    } else if (n == 127) {
        if (c->len < 10)
            return 0;
        n = 0;
        for (int i = 0; i < 8; i++)
            n = n << 8 | b[2 + i];
        h = 10;
    }
    if (n > BUF_MAX)
        return -1;
    if (c->len < h + n)
        return 0;
    *op = b[0] & 0x0f;
    *pl = c->buf + h;
    *pn = (size_t)n;
    *used = h + (size_t)n;
    return 1;
}

static void consume(struct conn *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* Advance c through the cycle with what its buffer holds: 0 go on, 1
 * done (closed), -1 failed. */
static int conn_step(struct conn *c)
{
    const char *pl;
    size_t pn, used;
    int op, r;
    uint8_t out[16];

    for (;;) {
        if (c->st == S_UPGRADE) {
            char *e = memmem(c->buf, c->len, "\r\n\r\n", 4);
            if (!e)
                return c->len >= 8192 ? -1 : 0;
            if (c->len < 12 || memcmp(c->buf, "HTTP/1.1 101", 12) != 0)
                return -1;
            consume(c, (size_t)(e + 4 - c->buf));
            c->st = S_CHALLENGE;
            continue;
        }
        if (c->st == S_EOF)
            return 0;
        r = next_frame(c, &op, &pl, &pn, &used);
        if (r <= 0)
            return r;
        if (op == 0x9 || op == 0xA || (c->st == S_IDLE && op == 0x1)) {
            consume(c, used); /* pings (wslay answers ours), ticks while idle */
            continue;
        }
        if (c->st == S_CHALLENGE && op == 0x1) {
            consume(c, used);
            if (send_all(c->fd, connect_frame, connect_len) != 0)
                return -1;
            c->st = S_HELLO;
        } else if (c->st == S_HELLO && op == 0x1) {
            uint64_t us = (now_ns() - c->t0_ns) / 1000;
            if (!memmem(pl, pn, "\"ok\":true", 9))
                return -1;
            consume(c, used);
            res->ok++;
            res->hist[us < HIST_US ? us : HIST_US]++;
            if (us > res->max_us)
                res->max_us = us;
            if (want_idle) {
                c->st = S_IDLE;
                idle_ready++;
                free(c->buf);
                c->buf = NULL;
                c->len = c->cap = 0;
                return 0;
            }
            if (send_all(c->fd, out, frame(out, 0x8, "\x03\xe8", 2)) != 0)
                return -1;
            c->st = S_CLOSE;
        } else if (c->st == S_CLOSE && op == 0x8) {
            consume(c, used);
            c->st = S_EOF; /* the server closes TCP first: TIME_WAIT is on its side */
            return 0;
        } else if (c->st == S_CLOSE && op == 0x1) {
            consume(c, used); /* an event (presence) that crossed our close */
        } else {
            return -1;
        }
    }
}

static int conn_readable(struct conn *c)
{
    for (;;) {
        ssize_t n;
        if (!c->buf || c->cap - c->len < 4096) {
            size_t cap = c->cap ? c->cap * 2 : 16384;
            char *nb;
            if (cap > BUF_MAX + 16)
                return -1;
            nb = realloc(c->buf, cap);
            if (!nb)
                return -1;
            c->buf = nb;
            c->cap = cap;
        }
        n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n > 0) {
            c->len += (size_t)n;
            if (conn_step(c) < 0)
                return -1;
            if (c->st == S_IDLE && !c->buf)
                return 0;
            continue;
        }
        if (n == 0)
            return c->st == S_EOF ? 1 : -1;
        return errno == EAGAIN ? 0 : -1;
    }
}

static void on_event(struct conn *c, uint32_t evs)
{
    int r = 0;

    if (c->st == S_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof(err);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (!(evs & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err || send_all(c->fd, req, req_len) != 0 || epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
            conn_end(c, 0);
            return;
        }
        c->st = S_UPGRADE;
        return;
    }
    if (evs & (EPOLLIN | EPOLLERR | EPOLLHUP))
        r = conn_readable(c);
    if (r != 0) {
        if (c->st == S_IDLE)
            idle_open--;
        conn_end(c, r > 0);
    }
}

static int run_handshakes(double secs, int conc)
{
    struct conn *cs = calloc((size_t)conc, sizeof(*cs));
    struct epoll_event evs[256];
    uint64_t end = now_ns() + (uint64_t)(secs * 1e9);
    int live = 0;

    if (!cs)
        return 1;
    for (int i = 0; i < conc; i++)
        if (conn_start(&cs[i]) == 0)
            live++;
        else
            res->errors++;
    while (live > 0) {
        int n = epoll_wait(ep, evs, 256, 100);
        int stopping = now_ns() >= end;
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            on_event(c, evs[i].events);
            if (c->fd >= 0)
                continue;
            /* Ended (done or failed): start the next cycle on this slot. */
            if (stopping || conn_start(c) != 0) {
                live--;
                if (!stopping)
                    res->errors++;
            }
        }
        if (n == 0 && stopping)
            break; /* stragglers after the deadline are not counted */
    }
    for (int i = 0; i < conc; i++) {
        if (cs[i].fd >= 0)
            close(cs[i].fd);
        free(cs[i].buf);
    }
    free(cs);
    return 0;
}

static int run_idle(int count)
{
    struct conn *cs = calloc((size_t)count, sizeof(*cs));
    struct epoll_event evs[256];
    struct pollfd in = {.fd = 0, .events = POLLIN};
    int next = 0;
    uint64_t stall = now_ns() + 120000000000u; /* give up 120 s in */
    char tmp[64];

    if (!cs)
        return 1;
    want_idle = 1;
    for (int i = 0; i < count; i++)
        cs[i].fd = -1;
    while (idle_ready + (int64_t)res->errors < count && now_ns() < stall) {
        while (next < count && idle_open - idle_ready < IDLE_BATCH) {
            if (conn_start(&cs[next++]) == 0)
                idle_open++;
            else
                res->errors++;
        }
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            enum stage before = c->st;
            on_event(c, evs[i].events);
            if (c->fd < 0 && before != S_IDLE)
                idle_open--;
        }
    }
    printf("ready %llu\n", (unsigned long long)idle_ready);
    fflush(stdout);
    for (;;) {
        int n = epoll_wait(ep, evs, 256, 200);
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events);
        if (poll(&in, 1, 0) > 0 && read(0, tmp, sizeof(tmp)) <= 0)
            break;
    }
    for (int i = 0; i < count; i++)
        if (cs[i].fd >= 0)
            close(cs[i].fd);
    return 0;
}

static uint64_t pct(const struct result *r, double q)
{
    uint64_t want = (uint64_t)(q * (double)r->ok), seen = 0;

    for (uint64_t i = 0; i <= HIST_US; i++) {
        seen += r->hist[i];
        if (seen > want)
            return i;
    }
    return HIST_US;
}

static void build_frames(const char *host, int port, const char *token)
{
    static const char key[] = "dGhlIHNhbXBsZSBub25jZQ=="; /* RFC 6455 1.3's sample */
    char json[400];
    int n;

    req_len = (size_t)snprintf(req, sizeof(req),
                               "GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                               host, port, key);
    n = snprintf(json, sizeof(json),
                 "{\"type\":\"req\",\"id\":\"c\",\"method\":\"connect\",\"params\":{\"minProtocol\":3,"
                 "\"maxProtocol\":4,\"client\":{\"id\":\"gateway-client\",\"version\":\"1.0.0\",\"platform\":"
                 "\"linux\",\"mode\":\"backend\"},\"role\":\"operator\",\"scopes\":[\"operator.read\"],"
                 "\"auth\":{\"token\":\"%s\"}}}",
                 token);
    connect_len = frame((uint8_t *)connect_frame, 0x1, json, (size_t)n);
}

int main(int argc, char **argv)
{
    int procs = 1, conc, rc = 0;
    struct result *all;
    double secs, t0, dt;

    if (argc < 6 || (strcmp(argv[1], "handshakes") && strcmp(argv[1], "idle")) ||
        (!strcmp(argv[1], "handshakes") && argc < 7)) {
        fprintf(stderr, "usage: ws_client handshakes HOST PORT TOKEN SECONDS CONCURRENCY [PROCS]\n"
                        "       ws_client idle HOST PORT TOKEN COUNT\n");
        return 2;
    }
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)atoi(argv[3]));
    if (inet_pton(AF_INET, argv[2], &addr.sin_addr) != 1 || strlen(argv[4]) > 200) {
        fprintf(stderr, "ws_client: HOST must be an IPv4 address, TOKEN at most 200 bytes\n");
        return 2;
    }
    build_frames(argv[2], atoi(argv[3]), argv[4]);
    if (!strcmp(argv[1], "idle")) {
        res = calloc(1, sizeof(*res));
        ep = epoll_create1(EPOLL_CLOEXEC);
        rc = res && ep >= 0 ? run_idle(atoi(argv[5])) : 1;
        return rc;
    }
    secs = atof(argv[5]);
    conc = atoi(argv[6]);
    if (argc > 7)
        procs = atoi(argv[7]);
    if (secs <= 0 || secs > 600 || conc < 1 || conc > 10000 || procs < 1 || procs > 64) {
        fprintf(stderr, "ws_client: SECONDS in (0, 600], CONCURRENCY in [1, 10000], PROCS in [1, 64]\n");
        return 2;
    }
    /* One result slot per process, shared so the parent can merge. */
    all = mmap(NULL, sizeof(*all) * (size_t)procs, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (all == MAP_FAILED)
        return 1;
    t0 = (double)now_ns();
    for (int p = 0; p < procs; p++) {
        pid_t pid = fork();
        if (pid == 0) {
            res = &all[p];
            ep = epoll_create1(EPOLL_CLOEXEC);
            _exit(ep >= 0 ? run_handshakes(secs, conc / procs + (p < conc % procs)) : 1);
        }
        if (pid < 0)
            return 1;
    }
    while (wait(NULL) > 0)
        ;
    dt = ((double)now_ns() - t0) / 1e9;
    for (int p = 1; p < procs; p++) {
        all[0].ok += all[p].ok;
        all[0].errors += all[p].errors;
        all[0].max_us = all[p].max_us > all[0].max_us ? all[p].max_us : all[0].max_us;
        for (int i = 0; i <= HIST_US; i++)
            all[0].hist[i] += all[p].hist[i];
    }
    printf("handshakes %llu rate %.0f/s errors %llu p50_us %llu p90_us %llu p99_us %llu max_us %llu\n",
           (unsigned long long)all[0].ok, (double)all[0].ok / dt, (unsigned long long)all[0].errors,
           (unsigned long long)pct(&all[0], 0.50), (unsigned long long)pct(&all[0], 0.90),
           (unsigned long long)pct(&all[0], 0.99), (unsigned long long)all[0].max_us);
    return 0;
}
