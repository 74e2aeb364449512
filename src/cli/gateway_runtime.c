/*
 * gateway_runtime.c: `chela gateway` builds the agent runtime here:
 * one libcurl multi manager shared by the LLM client and the tools, the
 * client (providers, keys, breakers), the tool registry, and the agent.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/agent.h"
#include "cli/cli.h"
#include "cli/gateway_boot.h"
#include "net/curlm.h"
#include "net/net.h"
#include "providers/client.h"
#include "tools/tools.h"

#define MAX_HOSTS 256

/* The allocator's housekeeping (core/alloc.c): freed heap goes back to
 * the kernel once a burst of turns has ended, so RSS follows the bytes in
 * use rather than the largest working set seen. */
static void on_tick_alloc(void *data)
{
    (void)data;
    ch_alloc_tick();
}

static size_t strings_of(const json_t *arr, const char **out, size_t cap)
{
    const json_t *v;
    size_t i, n = 0;

    json_array_foreach(arr, i, v)
    {
        if (json_is_string(v) && n < cap)
            out[n++] = json_string_value(v);
    }
    return n;
}

int ch_boot_runtime(struct ch_boot *b, uv_loop_t *loop, struct ch_net *net, struct ch_store *store,
                    const struct ch_config *cfg, const char *state_dir, struct ch_curlm **curlm,
                    struct ch_llm_client **llm, struct ch_tools **tools, struct ch_agent **agent)
{
    const char *http_hosts[MAX_HOSTS], *fetch_hosts[MAX_HOSTS];
    struct ch_curlm_opts copts = {0};
    struct ch_tools_opts topts = {0};
    struct ch_agent_opts aopts = {0};
    struct ch_error err = {0};
    const char *ws = ch_config_str(cfg, "agents.defaults.workspace", NULL);
    char *workspace = ws ? ch_strdup(ws) : ch_sprintf("%s/workspace", state_dir);
    int rc = CH_EXIT_RUNTIME;

    (void)b;
    if (!workspace)
        goto out;
    if (mkdir(workspace, 0700) != 0 && errno != EEXIST)
        ch_log_warn("cannot create the workspace %s: %s", workspace, strerror(errno));
    ch_boot_outbound_limits(cfg, &copts.max_host_connections, &copts.max_total_connections);
    if (ch_curlm_new(loop, &copts, curlm) != 0) {
        fprintf(stderr, "chela: cannot set up outbound HTTP\n");
        goto out;
    }
    if (ch_llm_client_new(loop, *curlm, cfg, NULL, llm, &err) != 0) {
        fprintf(stderr, "chela: models: %s\n", err.msg);
        rc = CH_EXIT_USAGE;
        goto out;
    }
    topts.http_allow_hosts = http_hosts;
    topts.http_allow_count = strings_of(ch_config_get(cfg, "tools.http.allowHosts"), http_hosts, MAX_HOSTS);
    topts.fetch_allow_hosts = fetch_hosts;
    topts.fetch_allow_count = strings_of(ch_config_get(cfg, "tools.web.fetch.allowHosts"), fetch_hosts, MAX_HOSTS);
    topts.no_web_fetch = !ch_config_bool(cfg, "tools.web.fetch.enabled", true);
    topts.timeout_ms = (uint64_t)ch_config_int(cfg, "tools.timeoutSeconds", 0) * 1000;
    if (ch_tools_new(loop, *curlm, &topts, tools, &err) != 0) {
        fprintf(stderr, "chela: tools: %s\n", err.msg);
        rc = CH_EXIT_USAGE;
        goto out;
    }
    aopts.loop = loop;
    aopts.net = net;
    aopts.store = store;
    aopts.llm = *llm;
    aopts.tools = *tools;
    aopts.cfg = cfg;
    aopts.workspace_dir = workspace;
    if (ch_agent_new(&aopts, agent, &err) != 0) {
        fprintf(stderr, "chela: agent: %s\n", err.msg);
        goto out;
    }
    if (ch_net_on_tick(net, on_tick_alloc, NULL) != 0)
        ch_log_warn("cannot register the heap trim on the housekeeping tick");
    rc = 0;
out:
    ch_free(workspace);
    return rc;
}
