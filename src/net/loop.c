/*
 * loop.c: what net adds to the libuv loop.  A prepare handle runs the
 * registered flush hooks right before the loop polls (redis beforesleep),
 * so every write queued during an iteration leaves in one syscall per
 * connection.  A single 1 Hz timer, unref'd, runs the housekeeping hooks
 * and measures loop lag: how late that timer fired.  Both are the only
 * periodic work in the process, so an idle gateway costs ~0 CPU.
 */
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/net.h"

#define TICK_MS 1000

static void run_hooks(const struct ch_net_hook *h, size_t count)
{
    /* A hook may unregister itself (its slot goes NULL); count is the
     * high-water mark and never shrinks, so indexing stays valid. */
    for (size_t i = 0; i < count; i++) {
        if (h[i].cb)
            h[i].cb(h[i].data);
    }
}

/*
 * Busy polling (gateway.busyPollMicros): the loop is about to sleep in
 * epoll_wait.  Poll libuv's backend fd (readable when any watched fd is)
 * for the learnt budget first, yielding the core to anything runnable
 * between polls; then, still within the maximum, sleep in ppoll(2) so the
 * wait's length is known to the policy (core/spin.c).  An fd watched for
 * the first time in this iteration is added to epoll only by the poll
 * that follows: its event ends the wait there, just later.
 */
static void busy_poll(struct ch_net *n)
{
    struct ch_spin *sp = &n->spin;
    struct pollfd pfd = {.fd = uv_backend_fd(n->loop), .events = POLLIN};
    int timeout_ms = uv_backend_timeout(n->loop);
    uint64_t window = sp->max_ns, start = uv_hrtime(), spun = 0, budget;
    struct timespec ts;
    int r = 0;

    ch_spin_note(sp, start, n->cpu_ns); /* how busy the loop is */
    if (timeout_ms == 0 || pfd.fd < 0)
        return; /* the poll will not block: work is pending */
    if (timeout_ms > 0 && (uint64_t)timeout_ms * 1000000u < window)
        window = (uint64_t)timeout_ms * 1000000u; /* a timer is due first */
    if ((budget = ch_spin_budget(sp)) > 0) {
        uint64_t prev = start, now = start, lost = 0;

        while ((r = poll(&pfd, 1, 0)) == 0) {
            sched_yield(); /* anything runnable here goes first */
            now = uv_hrtime();
            if (ch_spin_yielded(sp, now - prev)) {
                lost = now - prev; /* another thread's time slice: sleep instead */
                break;
            }
            prev = now;
            if (now - start >= CH_MIN(budget, window))
                break;
        }
        spun = now - start;
        sp->spin_ns += spun - lost;
    }
    if (r == 0 && spun < window) {
        ts.tv_sec = 0;
        ts.tv_nsec = (long)(window - spun);
        r = ppoll(&pfd, 1, &ts, NULL);
        if (r == 0 && window == sp->max_ns)
            ch_spin_learn(sp, UINT64_MAX); /* outlasted the maximum */
    }
    if (r > 0)
        ch_spin_learn(sp, uv_hrtime() - start);
    /* libuv computes its poll timeout from the time it cached at the start
     * of this iteration: refresh it, or timers fire late by this wait. */
    uv_update_time(n->loop);
}

static void on_prepare(uv_prepare_t *p)
{
    struct ch_net *n = p->data;

    /* Back to not keeping the loop alive: ch_net_want_flush re-refs. */
    uv_unref((uv_handle_t *)&n->prepare);
    n->in_hooks = true;
    run_hooks(n->flush, n->flush_count);
    n->in_hooks = false;
    /* Last, so lines logged by the hooks leave in the same write(2). */
    ch_log_flush();
    if (n->spin.max_ns)
        busy_poll(n);
}

static void on_idle(uv_idle_t *h)
{
    /* Only armed to make one poll non-blocking; nothing to do here. */
    uv_idle_stop(h);
}

static void on_tick(uv_timer_t *t)
{
    struct ch_net *n = t->data;
    uint64_t now = uv_now(n->loop);

    n->lag_ms = now > n->tick_expected_ms ? now - n->tick_expected_ms : 0;
    ch_net_rss(&n->rss_bytes, &n->rss_anon_bytes);
    if (n->lag_ms > n->lag_max_ms)
        n->lag_max_ms = n->lag_ms;
    /* libuv re-arms a repeating timer from the time it ran, not from its
     * due time, so the next expected firing is relative to now. */
    n->tick_expected_ms = now + TICK_MS;
    run_hooks(n->ticks, n->tick_count);
}

int ch_net_init(struct ch_net *n, uv_loop_t *loop)
{
    memset(n, 0, sizeof(*n));
    /* libuv writes with write(2): a peer gone mid-response must be an
     * EPIPE on that connection, not a signal that kills the gateway. */
    signal(SIGPIPE, SIG_IGN);
    n->loop = loop;
    n->start_ms = ch_now_ms();
    n->start_mono_ms = ch_mono_ms();
    /* These inits only fill structs on unix; they cannot fail. */
    uv_prepare_init(loop, &n->prepare);
    uv_timer_init(loop, &n->tick);
    uv_idle_init(loop, &n->idle);
    n->prepare.data = n;
    n->tick.data = n;
    n->idle.data = n;
    n->cpu_ns = ch_spin_thread_cpu_ns;
    n->open_handles = 3;
    uv_prepare_start(&n->prepare, on_prepare);
    /* The loop stays alive for listeners and connections, never for the
     * housekeeping handles themselves. */
    uv_unref((uv_handle_t *)&n->prepare);
    uv_unref((uv_handle_t *)&n->idle);
    n->tick_expected_ms = uv_now(loop) + TICK_MS;
    uv_timer_start(&n->tick, on_tick, TICK_MS, TICK_MS);
    uv_unref((uv_handle_t *)&n->tick);
    return 0;
}

void ch_net_busy_poll(struct ch_net *n, uint64_t max_us)
{
    ch_spin_init(&n->spin, max_us * 1000u);
    /* The loop's load decides for every thread (the store's writer too). */
    n->spin.publish = true;
}

static void on_closed(uv_handle_t *h)
{
    struct ch_net *n = h->data;

    if (--n->open_handles == 0 && n->close_cb)
        n->close_cb(n->close_data);
}

void ch_net_close(struct ch_net *n, void (*cb)(void *data), void *data)
{
    uv_handle_t *hs[3] = {(uv_handle_t *)&n->prepare, (uv_handle_t *)&n->tick, (uv_handle_t *)&n->idle};

    n->close_cb = cb;
    n->close_data = data;
    /* Cleared, not just counted out: a hook run in progress (close called
     * from inside one) skips the rest. */
    memset(n->flush, 0, sizeof(n->flush));
    memset(n->ticks, 0, sizeof(n->ticks));
    for (size_t i = 0; i < CH_ARRAY_SIZE(hs); i++) {
        if (!uv_is_closing(hs[i]))
            uv_close(hs[i], on_closed);
    }
}

static int add_hook(struct ch_net_hook *h, size_t *count, ch_net_hook_cb cb, void *data)
{
    for (size_t i = 0; i < *count; i++) {
        if (!h[i].cb) {
            h[i].cb = cb;
            h[i].data = data;
            return 0;
        }
    }
    if (*count >= CH_NET_MAX_HOOKS)
        return CH_E_TOO_LARGE;
    h[*count].cb = cb;
    h[*count].data = data;
    (*count)++;
    return 0;
}

static void del_hook(struct ch_net_hook *h, size_t count, ch_net_hook_cb cb, void *data)
{
    for (size_t i = 0; i < count; i++) {
        if (h[i].cb == cb && h[i].data == data) {
            h[i].cb = NULL;
            h[i].data = NULL;
        }
    }
}

int ch_net_on_flush(struct ch_net *n, ch_net_hook_cb cb, void *data)
{
    return add_hook(n->flush, &n->flush_count, cb, data);
}

int ch_net_on_tick(struct ch_net *n, ch_net_hook_cb cb, void *data)
{
    return add_hook(n->ticks, &n->tick_count, cb, data);
}

void ch_net_off_flush(struct ch_net *n, ch_net_hook_cb cb, void *data)
{
    del_hook(n->flush, n->flush_count, cb, data);
}

void ch_net_off_tick(struct ch_net *n, ch_net_hook_cb cb, void *data)
{
    del_hook(n->ticks, n->tick_count, cb, data);
}

void ch_net_want_flush(struct ch_net *n)
{
    if (uv_is_closing((uv_handle_t *)&n->prepare))
        return;
    if (n->in_hooks) {
        /* Queued by a hook itself (work deferred for fairness): an active
         * idle handle makes the coming poll return at once. */
        if (!uv_is_active((uv_handle_t *)&n->idle))
            uv_idle_start(&n->idle, on_idle);
        uv_ref((uv_handle_t *)&n->idle);
        return;
    }
    uv_ref((uv_handle_t *)&n->prepare);
}

uint64_t ch_net_uptime_ms(const struct ch_net *n)
{
    return ch_mono_ms() - n->start_mono_ms;
}

/* "VmRSS:	    1234 kB" -> bytes; 0 when absent. */
static uint64_t status_field(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    uint64_t kb = 0;

    if (!p)
        return 0;
    p += strlen(key);
    while (*p == ' ' || *p == '\t')
        p++;
    while (*p >= '0' && *p <= '9')
        kb = kb * 10 + (uint64_t)(*p++ - '0');
    return kb * 1024;
}

void ch_net_rss_cached(struct ch_net *n, uint64_t *rss, uint64_t *rss_anon)
{
    if (!n->rss_bytes)
        ch_net_rss(&n->rss_bytes, &n->rss_anon_bytes);
    *rss = n->rss_bytes;
    *rss_anon = n->rss_anon_bytes;
}

void ch_net_rss(uint64_t *rss, uint64_t *rss_anon)
{
    /* /proc/self/status is ~1.5 KiB; read(2) into the stack rather than
     * stdio, which would allocate a FILE on every /health/detail. */
    char text[8192];
    ssize_t n = 0, r;
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);

    *rss = 0;
    *rss_anon = 0;
    if (fd < 0)
        return;
    while (n < (ssize_t)sizeof(text) - 1 && (r = read(fd, text + n, sizeof(text) - 1 - (size_t)n)) > 0)
        n += r;
    close(fd);
    text[n] = '\0';
    *rss = status_field(text, "\nVmRSS:");
    *rss_anon = status_field(text, "\nRssAnon:");
}
