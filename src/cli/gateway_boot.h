/*
 * gateway_boot.h: the synchronous startup steps of `chela gateway`, each
 * reporting its own failure in one line on stderr and returning the exit
 * code (0 to continue).
 */
#ifndef CH_CLI_GATEWAY_BOOT_H
#define CH_CLI_GATEWAY_BOOT_H

#include "config/config.h"
#include "store/store.h"

struct ch_boot {
    const char *port_flag, *bind_flag; /* borrowed from argv */
    const char *log_format_flag, *log_level_flag;
    char addr[64]; /* resolved bind address */
    int port;
    char *db_path;         /* owned */
    struct ch_usage usage; /* stored usage totals */
    int64_t usage_requests;
};

/* Create (0700) and check the state directory is a writable directory. */
int ch_boot_state_dir(const char *dir);
/* Write the default config on first start, load and validate it (exit 2
 * with every error), set up logging. */
int ch_boot_config(struct ch_boot *b, const char *path, struct ch_config **out);
/* Logging from flags (when given) or config. */
void ch_boot_logging(const struct ch_config *c, const char *format_flag, const char *level_flag);
/* Port and bind from flags, env (already in config) and config; refuse
 * auth mode none off loopback (exit 2). */
int ch_boot_listen_addr(struct ch_boot *b, const struct ch_config *c);
/* Open and migrate the database; on first start create and print the
 * admin token; return the live tokens for the cache. */
int ch_boot_database(struct ch_boot *b, const char *state_dir, const struct ch_config *c, struct ch_token_list *tokens);
/* Outbound connection limits (gateway.outbound.*) with their defaults. */
void ch_boot_outbound_limits(const struct ch_config *cfg, uint32_t *per_host, uint32_t *total);
/* Raise the open-file soft limit to what the connection limits need; if
 * the hard limit is lower, lower limits.maxConnections to fit (warned).
 * Exit code when not even a few connections fit (gateway_fds.c). */
int ch_boot_fd_budget(const struct ch_config *cfg, struct ch_limits *limits);
struct ch_net;
struct ch_curlm;
struct ch_llm_client;
struct ch_tools;
struct ch_agent;
/* The runtime behind the surfaces: outbound HTTP, the LLM client, tools
 * and the agent.  One line on stderr and non-zero on failure (exit code). */
int ch_boot_runtime(struct ch_boot *b, uv_loop_t *loop, struct ch_net *net, struct ch_store *store,
                    const struct ch_config *cfg, const char *state_dir, struct ch_curlm **curlm,
                    struct ch_llm_client **llm, struct ch_tools **tools, struct ch_agent **agent);
/* Write <state>/gateway.json (0600, atomically); returns its owned path
 * or NULL (logged; the gateway still runs). */
char *ch_boot_write_runfile(const char *state_dir, const char *addr, int port, const char *local_token);
void ch_boot_release(struct ch_boot *b);

#endif
