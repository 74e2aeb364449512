/*
 * main.c: the `chela` binary.  Installs the one allocator, then dispatches
 * `chela <command> ...` to the subcommand, which receives argv exactly as
 * main did: argv[1] is the command word, its options start at argv[2].  Exit codes:
 * 0 ok, 1 runtime error, 2 usage or configuration error (contract).
 */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "net/curlm.h"

static int cmd_version(int argc, char **argv);

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"gateway", ch_cmd_gateway, "run the gateway daemon"},
    {"token", ch_cmd_token, "create, list and revoke API tokens"},
    {"health", ch_cmd_health, "check that a gateway is live"},
    {"status", ch_cmd_status, "show a running gateway's details"},
    {"config", ch_cmd_config, "validate, query and document the configuration"},
    {"agent", ch_cmd_agent, "send one message to the agent and stream the answer"},
    {"sessions", ch_cmd_sessions, "list, show, reset and delete sessions"},
    {"models", ch_cmd_models, "list the models the gateway can use"},
    {"runs", ch_cmd_runs, "list, show and abort agent runs"},
    {"deliveries", ch_cmd_deliveries, "list and retry callback and webhook deliveries"},
    {"devices", ch_cmd_devices, "list, approve, reject and remove paired OpenClaw devices"},
    {"version", cmd_version, "print the version"},
};

static void usage(FILE *f)
{
    fprintf(f, "Usage: chela <command> [options]\n\nCommands:\n");
    for (size_t i = 0; i < CH_ARRAY_SIZE(commands); i++)
        fprintf(f, "  %-8s  %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "  %-8s  %s\n", "help", "show this help, or a command's (chela help token)");
    fprintf(f, "\nRun 'chela <command> --help' for a command's options.\n");
}

static int cmd_version(int argc, char **argv)
{
    /* --state is accepted so scripts can pass one set of flags to every
     * command; the version does not depend on it. */
    struct ch_opt opts[] = {{"state", true, NULL, NULL}};
    bool help;
    size_t npos;
    int rc;

    rc = ch_args_parse(argc, argv, 2, opts, CH_ARRAY_SIZE(opts), NULL, 0, &npos, &help);
    if (rc)
        return rc;
    if (help) {
        ch_args_usage(stdout, "chela version", opts, CH_ARRAY_SIZE(opts));
        return CH_EXIT_OK;
    }
    printf("chela %s\n", CH_VERSION);
    return CH_EXIT_OK;
}

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < CH_ARRAY_SIZE(commands); i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    const struct command *c;
    const char *name;
    int rc;

    /* One glibc arena per thread we run (the loop, the store writer, its
     * checkpointer, the pool threads), not glibc's 8 per core.  With 2,
     * the writer shared the loop's arena: under load half of both threads'
     * malloc/free calls took the arena lock with a futex (14,000 a second
     * at 6,000 turns/s), serialising the two (docs/performance.md).  An
     * arena's untouched pages cost nothing; idle RssAnon grows ~0.3 MB. */
    mallopt(M_ARENA_MAX, 8);
    if (ch_alloc_install() != 0) {
        fprintf(stderr, "chela: cannot install the allocator\n");
        return CH_EXIT_RUNTIME;
    }
    /* Records only: libcurl is loaded, and its global state set up with our
     * allocator, at the first outbound request (net/curl_dl.h), so a start
     * does not pay for mapping libcurl and its dependencies. */
    if (ch_curlm_global_init() != 0) {
        fprintf(stderr, "chela: cannot initialise libcurl\n");
        return CH_EXIT_RUNTIME;
    }
    /* The CLI speaks on stdout/stderr itself; only warnings from the layers
     * below are worth showing.  The gateway command sets its own level. */
    ch_log_setup(CH_LOG_WARN, CH_LOG_TEXT);
    if (argc < 2) {
        usage(stderr);
        return CH_EXIT_USAGE;
    }
    name = argv[1];
    if (!strcmp(name, "--version"))
        name = "version";
    if (!strcmp(name, "help") || !strcmp(name, "--help") || !strcmp(name, "-h")) {
        /* `chela help token` is `chela token --help`. */
        if (!strcmp(name, "help") && argc > 2 && (c = find_command(argv[2])) != NULL) {
            char *hargv[] = {argv[0], argv[2], "--help", NULL};
            rc = c->run(3, hargv);
            goto out;
        }
        usage(stdout);
        return CH_EXIT_OK;
    }
    c = find_command(name);
    if (!c) {
        fprintf(stderr, "chela: unknown command '%s'\n\n", name);
        usage(stderr);
        return CH_EXIT_USAGE;
    }
    rc = c->run(argc, argv);
out:
    ch_log_flush();
    /* A failed stdout write (full disk, closed pipe) must not pass as
     * success: scripts rely on the exit code. */
    if (fflush(stdout) != 0 && rc == CH_EXIT_OK) {
        fprintf(stderr, "chela: cannot write to stdout\n");
        rc = CH_EXIT_RUNTIME;
    }
    return rc;
}
