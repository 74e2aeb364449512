/*
 * cmd_gateway.c: `chela gateway`, the daemon in the foreground.
 *
 * Startup is ordered so every failure is one clear line and a non-zero
 * exit before anything listens: state directory, configuration (exit 2),
 * database open + migrations + first-start admin token (exit 1), then the
 * loop, the store's writer thread, the api and the listener (a port in use
 * is exit 1).  Shutdown (SIGTERM/SIGINT): stop accepting, let in-flight
 * requests finish within limits.shutdownGraceMs, flush audit and
 * last-used rows, drain the store's queue, exit 0.  SIGHUP reloads what
 * can change while running (see gateway_reload).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent.h"
#include "api/api.h"
#include "cli/cli.h"
#include "cli/gateway_boot.h"
#include "net/curlm.h"
#include "providers/client.h"
#include "tools/tools.h"

struct gateway {
    uv_loop_t loop;
    struct ch_net net;
    struct ch_store *store;
    struct ch_curlm *curlm;
    struct ch_llm_client *llm;
    struct ch_tools *tools;
    struct ch_agent *agent;
    struct ch_api *api;
    struct ch_http_server *http;
    struct ch_config *cfg;
    struct ch_limits limits;
    uv_signal_t sig_term, sig_int, sig_hup;
    char *state_dir, *config_path, *runfile;
    const char *config_flag;
    bool stopping;
    int exit_code;
};

static void on_sig_closed(uv_handle_t *h)
{
    (void)h;
}

static void on_net_closed(void *data)
{
    (void)data;
}

/*
 * Shutdown runs as a chain of close callbacks, each layer after the ones
 * that use it: HTTP (drain) -> agent (interrupted runs stay replayable)
 * -> tools -> store (drain the writer) -> outbound HTTP -> loop helpers.
 */
static void on_curlm_closed(void *data)
{
    struct gateway *g = data;

    g->curlm = NULL;
    uv_close((uv_handle_t *)&g->sig_term, on_sig_closed);
    uv_close((uv_handle_t *)&g->sig_int, on_sig_closed);
    uv_close((uv_handle_t *)&g->sig_hup, on_sig_closed);
    ch_net_close(&g->net, on_net_closed, g);
}

static void on_store_closed(void *data)
{
    struct gateway *g = data;

    g->store = NULL;
    ch_curlm_close(g->curlm, on_curlm_closed, g);
}

static void on_tools_closed(void *data)
{
    struct gateway *g = data;

    g->tools = NULL;
    ch_store_close(g->store, on_store_closed, g);
}

static void on_agent_stopped(void *data)
{
    struct gateway *g = data;

    ch_llm_client_abort_all(g->llm);
    if (g->tools)
        ch_tools_close(g->tools, on_tools_closed, g);
    else
        on_tools_closed(g);
}

static void on_http_down(void *data)
{
    struct gateway *g = data;

    ch_log_info("listener closed and connections drained; stopping runs and flushing storage");
    ch_api_outbox_stop(g->api); /* issue #4: abort attempts (left pending) before the store closes */
    ch_api_stop(g->api);
    ch_agent_stop(g->agent, on_agent_stopped, g);
}

static void gateway_stop(struct gateway *g, const char *why)
{
    if (g->stopping)
        return;
    g->stopping = true;
    ch_log_now(CH_LOG_INFO, "%s: shutting down (grace %lld ms)", why,
               (long long)g->limits.v[CH_LIMIT_SHUTDOWN_GRACE_MS]);
    ch_api_begin_shutdown(g->api);
    ch_http_server_shutdown(g->http, (uint64_t)g->limits.v[CH_LIMIT_SHUTDOWN_GRACE_MS], on_http_down, g);
}

/* SIGHUP: apply what can change at run time; name what needs a restart. */
static void gateway_reload(struct gateway *g)
{
    struct ch_config_errors errs = {0};
    struct ch_config *fresh = NULL;
    struct ch_error err = {0};
    static const char *restart_keys[] = {"gateway.port", "gateway.bind", "store", "limits", "gateway.auth.mode"};

    if (ch_config_load(g->config_path, &fresh, &errs) != 0) {
        for (size_t i = 0; i < errs.count; i++)
            ch_log_error("reload: %s", errs.msgs[i]);
        ch_log_error("reload: configuration has errors; keeping the running one");
        ch_config_errors_release(&errs);
        return;
    }
    for (size_t i = 0; i < CH_ARRAY_SIZE(restart_keys); i++) {
        const json_t *a = ch_config_get(g->cfg, restart_keys[i]), *b = ch_config_get(fresh, restart_keys[i]);
        if (!json_equal((json_t *)a, (json_t *)b))
            ch_log_warn("reload: %s changed; it takes effect after a restart", restart_keys[i]);
    }
    if (ch_api_reload(g->api, fresh, &err) != 0) {
        ch_log_error("reload: %s; keeping the running configuration", err.msg[0] ? err.msg : "failed");
        ch_api_reload(g->api, g->cfg, &err);
        ch_config_free(fresh);
        return;
    }
    if (ch_llm_client_reload(g->llm, fresh, &err) != 0)
        ch_log_error("reload: models: %s; keeping the running model settings", err.msg);
    ch_agent_reload(g->agent, fresh);
    if (!json_equal((json_t *)ch_config_get(g->cfg, "tools"), (json_t *)ch_config_get(fresh, "tools")))
        ch_log_warn("reload: tools changed; it takes effect after a restart");
    ch_config_free(g->cfg);
    g->cfg = fresh;
    ch_boot_logging(g->cfg, NULL, NULL);
    ch_log_info("reload: configuration reloaded from %s", g->config_path);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct gateway *g = h->data;

    if (signum == SIGHUP)
        gateway_reload(g);
    else
        gateway_stop(g, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static struct ch_opt opts[] = {
    {"port", true, "port to listen on (0 picks a free one; default gateway.port, 18789)", NULL},
    {"bind", true, "loopback (default), lan, or an IP address", NULL},
    {"config", true, "configuration file (default <state>/chela.json5)", NULL},
    {"state", true, "state directory (default $CHELA_HOME, else ~/.chela)", NULL},
    {"log-format", true, "text or json", NULL},
    {"log-level", true, "debug, info, warn or error", NULL},
};

static int start_signals(struct gateway *g)
{
    uv_signal_t *hs[] = {&g->sig_term, &g->sig_int, &g->sig_hup};
    int sigs[] = {SIGTERM, SIGINT, SIGHUP};

    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < 3; i++) {
        uv_signal_init(&g->loop, hs[i]);
        hs[i]->data = g;
        if (uv_signal_start(hs[i], on_signal, sigs[i]) != 0)
            return CH_EIO;
    }
    return 0;
}

static void gateway_release(struct gateway *g)
{
    if (g->runfile) {
        unlink(g->runfile);
        ch_free(g->runfile);
    }
    ch_http_server_free(g->http);
    ch_api_free(g->api);
    ch_agent_free(g->agent);
    ch_llm_client_free(g->llm);
    ch_config_free(g->cfg);
    ch_free(g->state_dir);
    ch_free(g->config_path);
}

int ch_cmd_gateway(int argc, char **argv)
{
    struct gateway g;
    struct ch_error err = {0};
    struct ch_http_server_opts hopts = {0};
    struct ch_api_opts aopts = {0};
    struct ch_store_opts sopts = {0};
    struct ch_token_list tokens = {0};
    struct ch_boot boot = {0};
    char *local_token = NULL;
    bool help = false;
    size_t npos = 0;
    const char *pos[1];
    int rc;

    memset(&g, 0, sizeof(g));
    rc = ch_args_parse(argc, argv, 2, opts, CH_ARRAY_SIZE(opts), pos, 0, &npos, &help);
    if (rc)
        return rc;
    if (help) {
        ch_args_usage(stdout, "chela gateway [options]   run the gateway in the foreground", opts, CH_ARRAY_SIZE(opts));
        return CH_EXIT_OK;
    }
    boot.port_flag = ch_opt_get(opts, CH_ARRAY_SIZE(opts), "port");
    boot.bind_flag = ch_opt_get(opts, CH_ARRAY_SIZE(opts), "bind");
    boot.log_format_flag = ch_opt_get(opts, CH_ARRAY_SIZE(opts), "log-format");
    boot.log_level_flag = ch_opt_get(opts, CH_ARRAY_SIZE(opts), "log-level");
    g.state_dir = ch_cli_state_dir(ch_opt_get(opts, CH_ARRAY_SIZE(opts), "state"));
    g.config_path = ch_cli_config_path(g.state_dir, ch_opt_get(opts, CH_ARRAY_SIZE(opts), "config"));
    if (!g.state_dir || !g.config_path) {
        fprintf(stderr, "chela: cannot determine the state directory (set --state or CHELA_HOME)\n");
        rc = CH_EXIT_USAGE;
        goto out;
    }
    /* 1. state directory, 2. configuration */
    if ((rc = ch_boot_state_dir(g.state_dir)) != 0)
        goto out;
    if ((rc = ch_boot_config(&boot, g.config_path, &g.cfg)) != 0)
        goto out;
    ch_config_limits(g.cfg, &g.limits);
    if ((rc = ch_boot_fd_budget(g.cfg, &g.limits)) != 0)
        goto out;
    if ((rc = ch_boot_listen_addr(&boot, g.cfg)) != 0)
        goto out;
    /* 3. database: migrations and the first-start admin token */
    if ((rc = ch_boot_database(&boot, g.state_dir, g.cfg, &tokens)) != 0)
        goto out;
    /* 4. loop, store, api, listener */
    rc = CH_EXIT_RUNTIME;
    if (uv_loop_init(&g.loop) != 0 || ch_net_init(&g.net, &g.loop) != 0) {
        fprintf(stderr, "chela: cannot initialise the event loop\n");
        goto out_tokens;
    }
    sopts.path = boot.db_path;
    sopts.sync_full = !strcmp(ch_config_str(g.cfg, "store.sync", "normal"), "full");
    sopts.busy_timeout_ms = (int)ch_config_int(g.cfg, "store.busyTimeoutMs", 5000);
    sopts.max_write_queue = (size_t)g.limits.v[CH_LIMIT_STORE_WRITE_QUEUE];
    sopts.busy_poll_us = (unsigned)ch_config_int(g.cfg, "gateway.busyPollMicros", 500);
    sopts.slice_us = (unsigned)ch_config_int(g.cfg, "store.writerSliceMicros", 20);
    ch_net_busy_poll(&g.net, sopts.busy_poll_us);
    if (ch_store_open(&g.loop, &sopts, &g.store, &err) != 0) {
        fprintf(stderr, "chela: cannot open database %s: %s\n", boot.db_path, err.msg);
        goto out_loop;
    }
    if (ch_boot_runtime(&boot, &g.loop, &g.net, g.store, g.cfg, g.state_dir, &g.curlm, &g.llm, &g.tools, &g.agent) != 0)
        goto out_store;
    local_token = ch_random_token("oc_tok_", 43);
    aopts.agent = g.agent;
    aopts.usage_baseline = boot.usage;
    aopts.requests_baseline = boot.usage_requests;
    aopts.net = &g.net;
    aopts.store = g.store;
    aopts.cfg = g.cfg;
    aopts.limits = &g.limits;
    aopts.state_dir = g.state_dir;
    aopts.local_token = local_token;
    if (!local_token || ch_api_new(&aopts, &g.api, &err) != 0) {
        fprintf(stderr, "chela: %s\n", err.msg[0] ? err.msg : "cannot set up the api");
        goto out_store;
    }
    ch_api_tokens_take(g.api, &tokens);
    ch_api_http_opts(g.api, &hopts);
    if (ch_http_server_new(&g.net, &hopts, &g.http) != 0) {
        fprintf(stderr, "chela: cannot create the HTTP server\n");
        goto out_store;
    }
    ch_api_attach_server(g.api, g.http);
    if (ch_http_server_listen(g.http, boot.addr, boot.port, &err) != 0) {
        fprintf(stderr, "chela: cannot listen: %s\n", err.msg);
        goto out_store;
    }
    if (start_signals(&g) != 0) {
        fprintf(stderr, "chela: cannot install signal handlers\n");
        goto out_store;
    }
    ch_api_outbox_start(g.api, g.curlm); /* issue #4 outbox + webhooks; after the last goto out_store */
    ch_agent_resume(g.agent, NULL, NULL);
    g.runfile = ch_boot_write_runfile(g.state_dir, boot.addr, ch_http_server_port(g.http), local_token);
    ch_free_secret(local_token);
    local_token = NULL;
    printf("chela listening on http://%s%s%s:%d\n", strchr(boot.addr, ':') ? "[" : "", boot.addr,
           strchr(boot.addr, ':') ? "]" : "", ch_http_server_port(g.http));
    fflush(stdout);
    ch_log_now(CH_LOG_INFO, "chela %s listening on %s:%d (config %s, state %s)", CH_VERSION, boot.addr,
               ch_http_server_port(g.http), g.cfg->file_exists ? g.config_path : "embedded defaults", g.state_dir);
    uv_run(&g.loop, UV_RUN_DEFAULT);
    ch_log_now(CH_LOG_INFO, "stopped");
    rc = CH_EXIT_OK;
    goto out_loop;

out_store:
    /* Startup failed after the store opened: drain it, then leave. */
    ch_free_secret(local_token);
    if (g.api)
        ch_api_stop(g.api);
    if (g.tools)
        ch_tools_close(g.tools, on_net_closed, &g);
    if (g.store)
        ch_store_close(g.store, on_net_closed, &g);
    if (g.curlm)
        ch_curlm_close(g.curlm, on_net_closed, &g);
    if (g.http)
        ch_http_server_shutdown(g.http, 0, on_net_closed, &g);
    ch_net_close(&g.net, on_net_closed, &g);
    uv_run(&g.loop, UV_RUN_DEFAULT);
out_loop:
    if (uv_loop_close(&g.loop) != 0)
        ch_log_now(CH_LOG_WARN, "event loop closed with handles still open");
out_tokens:
    ch_token_list_release(&tokens);
out:
    ch_boot_release(&boot);
    gateway_release(&g);
    ch_log_flush();
    return rc;
}
