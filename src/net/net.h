/*
 * net.h: the event loop and what every network layer shares: the
 * before-sleep flush hooks (redis beforesleep), the one-second housekeeping
 * tick, loop-lag measurement, thread-pool work, bind-address and CIDR
 * helpers.
 *
 * Idle CPU is ~0: the only periodic wakeup in the whole gateway is the 1 Hz
 * tick here, shared by every housekeeping task (lag sampling, token cache
 * refresh, rate-limit sweeps).
 *
 * Layer: core <- net.
 */
#ifndef CH_NET_H
#define CH_NET_H

#include <netinet/in.h>
#include <sys/socket.h>
#include <uv.h>

#include "core/core.h"

#define CH_NET_MAX_HOOKS 16

typedef void (*ch_net_hook_cb)(void *data);

struct ch_net_hook {
    ch_net_hook_cb cb;
    void *data;
};

struct ch_net {
    uv_loop_t *loop;      /* borrowed */
    uv_prepare_t prepare; /* runs flush hooks before the loop sleeps */
    uv_timer_t tick;      /* 1 Hz housekeeping */
    struct ch_net_hook flush[CH_NET_MAX_HOOKS];
    size_t flush_count;
    struct ch_net_hook ticks[CH_NET_MAX_HOOKS];
    size_t tick_count;
    uint64_t tick_expected_ms; /* when the tick should have fired */
    uint64_t lag_ms;           /* last measured loop lag */
    uint64_t rss_bytes;        /* VmRSS sampled on the tick (0 before the first) */
    uint64_t rss_anon_bytes;   /* RssAnon sampled on the tick */
    uint64_t lag_max_ms;       /* max since start */
    int64_t start_ms;          /* wall clock at init */
    uint64_t start_mono_ms;
    uv_idle_t idle;           /* armed only to skip one sleep (ch_net_want_flush) */
    struct ch_spin spin;      /* busy polling before the loop sleeps (loop.c) */
    uint64_t (*cpu_ns)(void); /* the loop thread's CPU time (tests replace it) */
    bool in_hooks;            /* true while the flush hooks run */
    int open_handles;         /* for close */
    void (*close_cb)(void *data);
    void *close_data;
};

/* Start the prepare hook and the tick on loop.  Both are unref'd, so they
 * never keep the loop alive by themselves: the loop runs while listeners,
 * connections or requests exist (see ch_net_want_flush). Returns 0. */
int ch_net_init(struct ch_net *n, uv_loop_t *loop);
/* Close the handles and drop every hook; cb runs once they are closed. */
void ch_net_close(struct ch_net *n, void (*cb)(void *data), void *data);
/* Register a hook run before every sleep (flush queued writes, logs). */
int ch_net_on_flush(struct ch_net *n, ch_net_hook_cb cb, void *data);
/* Register a hook run once per second. */
int ch_net_on_tick(struct ch_net *n, ch_net_hook_cb cb, void *data);
/* Unregister a hook added with the same cb and data (no-op if absent).
 * Owners that die before the loop (an HTTP server) must call this. */
void ch_net_off_flush(struct ch_net *n, ch_net_hook_cb cb, void *data);
void ch_net_off_tick(struct ch_net *n, ch_net_hook_cb cb, void *data);
/*
 * Say that a flush hook has work queued.  The prepare handle is unref'd,
 * so without this a loop whose only remaining work is queued output could
 * exit (or sleep) before the hooks run; this refs it until the next run.
 * Called from inside a flush hook, it also keeps the next poll from
 * blocking, so work deferred for fairness runs on the next iteration.
 */
void ch_net_want_flush(struct ch_net *n);
uint64_t ch_net_uptime_ms(const struct ch_net *n);
/* Poll for up to max_us before the loop sleeps, the budget learnt from the
 * recent waits (gateway.busyPollMicros; 0, the ch_net_init state: never). */
void ch_net_busy_poll(struct ch_net *n, uint64_t max_us);

/*
 * Resolve a configured bind: "loopback" -> 127.0.0.1, "lan" -> 0.0.0.0,
 * "localhost" -> 127.0.0.1, else a literal IPv4/IPv6 address.
 * CH_EINVAL (with err) for anything else.
 */
int ch_net_resolve_bind(const char *bind, char *out, size_t outcap, struct ch_error *err);
/* 127.0.0.0/8, ::1, ::ffff:127.x */
bool ch_net_is_loopback(const char *addr);
bool ch_net_sockaddr_is_loopback(const struct sockaddr *sa);
/* Textual address of sa (no port). */
void ch_net_addr_str(const struct sockaddr *sa, char *out, size_t outcap);

/* CIDR list matching (IPv4, IPv6, and IPv4-mapped IPv6 peers). */
struct ch_cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int prefix; /* bits */
};
/* "10.0.0.0/8", "::1", "192.168.1.7" (a bare address is /32 or /128). */
int ch_cidr_parse(const char *s, struct ch_cidr *out, struct ch_error *err);
bool ch_cidr_match(const struct ch_cidr *c, const struct sockaddr *sa);
bool ch_cidr_list_match(const struct ch_cidr *list, size_t n, const struct sockaddr *sa);

/* Set TCP_NODELAY and close-on-exec on an accepted/connected socket. */
void ch_net_tune_tcp(uv_tcp_t *t);

/* Resident set size and anonymous RSS from /proc/self/status (bytes). */
void ch_net_rss(uint64_t *rss, uint64_t *rss_anon);
/* The figures sampled on the last tick (read now when none is yet): what
 * /health/detail and /metrics report, so a request never reads /proc. */
void ch_net_rss_cached(struct ch_net *n, uint64_t *rss, uint64_t *rss_anon);

#endif
