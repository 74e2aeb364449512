/*
 * gateway_fds.c: fit the gateway's connection limits to the process's
 * open-file limit before anything listens (redis adjustOpenFilesLimit).
 *
 * Debian's default soft limit is 1024 descriptors, and limits.maxConnections
 * is 1024 too: without this, the 1,000th client would make accept(2) fail
 * with EMFILE (libuv then drops pending connections without a word), and
 * every outbound call, SQLite file and child process of that moment would
 * fail with it, instead of the next client getting the documented 503.
 * So the soft limit is raised as far as the hard limit allows; when even
 * that is too low, maxConnections is lowered to what fits, with a warning
 * that says which limit to raise.
 */
#include <stdio.h>
#include <sys/resource.h>

#include "cli/cli.h"
#include "cli/gateway_boot.h"

/* Descriptors besides connections: the store's database, WAL and shm per
 * thread, the loop's epoll, eventfds and signal pipe, the log file, the
 * PDF readers' pipes (8 readers, 3 each), libuv's reserved EMFILE fd. */
#define FD_RESERVE 64
/* Fewer client connections than this is not a gateway worth starting. */
#define FD_MIN_CONNECTIONS 4

void ch_boot_outbound_limits(const struct ch_config *cfg, uint32_t *per_host, uint32_t *total)
{
    int64_t conc = ch_config_int(cfg, "agents.defaults.maxConcurrent", 32);
    /* A run past the per-host limit would wait inside curl with its
     * first-byte clock running, so by default every run allowed to execute
     * at once can hold its own connection. */
    int64_t host = ch_config_int(cfg, "gateway.outbound.maxConnectionsPerHost", conc > 8 ? conc : 8);
    int64_t all = ch_config_int(cfg, "gateway.outbound.maxConnections", host + 16 > 64 ? host + 16 : 64);

    *total = (uint32_t)all;
    *per_host = (uint32_t)(host > all ? all : host);
}

/* Descriptors the limits can use at once: each client connection, one
 * refusal lingering per connection (http/server.c bounds them so), each
 * outbound connection and its resolver's socket pair, and the reserve. */
static uint64_t fds_needed(int64_t conns, uint32_t outbound)
{
    return 2 * (uint64_t)conns + 2 * (uint64_t)outbound + FD_RESERVE;
}

int ch_boot_fd_budget(const struct ch_config *cfg, struct ch_limits *limits)
{
    int64_t conns = limits->v[CH_LIMIT_MAX_CONNECTIONS], fit;
    uint32_t per_host, outbound;
    struct rlimit rl;
    uint64_t need, was;

    ch_boot_outbound_limits(cfg, &per_host, &outbound);
    need = fds_needed(conns, outbound);
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
        return 0;
    was = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need ? rl.rlim_max : need;
    if (rl.rlim_cur > was && setrlimit(RLIMIT_NOFILE, &rl) != 0)
        rl.rlim_cur = was;
    if (rl.rlim_cur >= need) {
        ch_log_info("open-file limit raised from %llu to %llu for limits.maxConnections %lld", (unsigned long long)was,
                    (unsigned long long)rl.rlim_cur, (long long)conns);
        return 0;
    }
    fit = rl.rlim_cur > 2 * (uint64_t)outbound + FD_RESERVE
              ? (int64_t)((rl.rlim_cur - 2 * (uint64_t)outbound - FD_RESERVE) / 2)
              : 0;
    if (fit < FD_MIN_CONNECTIONS) {
        fprintf(stderr,
                "chela: the open-file limit (ulimit -n) is %llu; with gateway.outbound.maxConnections %u the gateway "
                "needs at least %llu\n",
                (unsigned long long)rl.rlim_cur, outbound,
                (unsigned long long)fds_needed(FD_MIN_CONNECTIONS, outbound));
        return CH_EXIT_RUNTIME;
    }
    limits->v[CH_LIMIT_MAX_CONNECTIONS] = fit;
    ch_log_warn("the open-file limit (ulimit -n) is %llu and its hard limit %llu: limits.maxConnections lowered from "
                "%lld to %lld; raise the hard limit to %llu to keep %lld",
                (unsigned long long)rl.rlim_cur,
                (unsigned long long)(rl.rlim_max == RLIM_INFINITY ? rl.rlim_cur : rl.rlim_max), (long long)conns,
                (long long)fit, (unsigned long long)need, (long long)conns);
    return 0;
}
