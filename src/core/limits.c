/*
 * limits.c: the single limits table (STYLE.md 8.6; redis config.c rows,
 * curl dynbuf caps).  Each row is a config key under `limits.`, with its
 * default, bounds and unit; docs/configuration.md is generated from it.
 * Every limit has an end-to-end test that reaches it.
 */
#include <string.h>

#include "core/core.h"

#define KiB 1024LL
#define MiB (1024LL * 1024)

static const struct ch_limit_def defs[CH_LIMIT__COUNT] = {
    [CH_LIMIT_MAX_CONNECTIONS] = {"maxConnections", 1024, 1, 1000000, "count",
                                  "Open client connections (HTTP and WebSocket). Over it: accept, answer 503, close. "
                                  "At start the open-file soft limit is raised to fit it; a hard limit too low "
                                  "lowers it instead (warned)."},
    [CH_LIMIT_MAX_HEAD_BYTES] = {"maxHeadBytes", 32 * KiB, 1 * KiB, 1 * MiB, "bytes",
                                 "Request line plus headers. Over it: 431 and close."},
    [CH_LIMIT_MAX_HEADERS] = {"maxHeaders", 100, 8, 1000, "count",
                              "Header fields per request. Over it: 431 and close."},
    [CH_LIMIT_MAX_URI_BYTES] = {"maxUriBytes", 8 * KiB, 256, 64 * KiB, "bytes",
                                "Request-target length. Over it: 414 and close."},
    [CH_LIMIT_HEAD_TIMEOUT_MS] = {"headTimeoutMs", 10000, 100, 600000, "ms",
                                  "Total time to receive a request head (slowloris guard). Over it: 408 and close."},
    [CH_LIMIT_BODY_TIMEOUT_MS] = {"bodyTimeoutMs", 10000, 100, 600000, "ms",
                                  "Longest pause between body bytes. Over it: 408 and close."},
    [CH_LIMIT_MAX_BODY_BYTES] = {"maxBodyBytes", 1 * MiB, 0, 1024 * MiB, "bytes",
                                 "Request body, unless a route sets its own (set lower than 1 MiB, it caps those too); "
                                 "api.security.maxBodySize sets it too. Over it: 413."},
    [CH_LIMIT_KEEPALIVE_TIMEOUT_MS] = {"keepaliveTimeoutMs", 60000, 100, 3600000, "ms",
                                       "Idle time between requests on a kept-alive connection before it is closed."},
    [CH_LIMIT_KEEPALIVE_REQUESTS] = {"keepaliveRequests", 1000, 1, 1000000, "count",
                                     "Requests served on one connection before it is closed."},
    [CH_LIMIT_WRITE_QUEUE_SOFT_BYTES] =
        {"writeQueueSoftBytes", 1 * MiB, 4 * KiB, 1024 * MiB, "bytes",
         "Queued output per connection tolerated for writeQueueSoftMs; a reader slower than that is dropped."},
    [CH_LIMIT_WRITE_QUEUE_SOFT_MS] = {"writeQueueSoftMs", 10000, 100, 600000, "ms",
                                      "How long a connection may stay over writeQueueSoftBytes."},
    [CH_LIMIT_WRITE_QUEUE_HARD_BYTES] = {"writeQueueHardBytes", 4 * MiB, 4 * KiB, 4096 * MiB, "bytes",
                                         "Queued output per connection; over it the connection is closed at once."},
    [CH_LIMIT_MAX_PIPELINED] = {"maxPipelined", 32, 1, 1024, "count",
                                "Pipelined requests parsed per read before yielding to other connections."},
    [CH_LIMIT_SHUTDOWN_GRACE_MS] = {"shutdownGraceMs", 10000, 0, 600000, "ms",
                                    "On SIGTERM, how long in-flight requests may run before connections are closed."},
    [CH_LIMIT_STORE_WRITE_QUEUE] = {"storeWriteQueue", 65536, 16, 10000000, "count",
                                    "Writes waiting for the store's writer thread. Full: the caller gets 503."},
    [CH_LIMIT_LOOP_LAG_READY_MS] = {"loopLagReadyMs", 1000, 10, 600000, "ms",
                                    "Event-loop lag above which /ready answers 503."},
};

const struct ch_limit_def *ch_limit_def_get(enum ch_limit_id id)
{
    if ((unsigned)id >= CH_LIMIT__COUNT)
        return NULL;
    return &defs[id];
}

void ch_limits_init(struct ch_limits *l)
{
    for (int i = 0; i < CH_LIMIT__COUNT; i++)
        l->v[i] = defs[i].def;
}

int ch_limits_set(struct ch_limits *l, const char *name, int64_t value, struct ch_error *err)
{
    for (int i = 0; i < CH_LIMIT__COUNT; i++) {
        if (strcmp(defs[i].name, name) != 0)
            continue;
        if (value < defs[i].min || value > defs[i].max)
            return ch_error_set(err, CH_EINVAL, "limits.%s: %lld is out of range [%lld, %lld]", name, (long long)value,
                                (long long)defs[i].min, (long long)defs[i].max);
        l->v[i] = value;
        return 0;
    }
    return ch_error_set(err, CH_ENOTFOUND, "limits.%s: no such limit", name);
}
