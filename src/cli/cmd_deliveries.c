/*
 * cmd_deliveries.c: `chela deliveries list|show ID|retry ID` (issue #4
 * item 2), a client of the running gateway's /api/v1/deliveries (admin
 * scope; the local token of the gateway in --state has it).  `list --json`
 * and `show` print the gateway's answer as it is.
 */
#include <inttypes.h>
#include <string.h>

#include "cli/cli.h"

#define COMMON_OPTS                                                                                                    \
    {"json", false, "print JSON", NULL},                                                                               \
        {"url", true, "gateway URL (default: DIR/gateway.json, else http://127.0.0.1:18789)", NULL},                   \
        {"token", true, "bearer token (default: $CHELA_TOKEN, else the running gateway's local token)", NULL},         \
    {                                                                                                                  \
        "state", true, "state directory (default $CHELA_HOME, else ~/.chela)", NULL                                    \
    }

/* Parse a subcommand's options (argv[3..]) and resolve the target; -1 to go on. */
static void print_list(json_t *doc)
{
    json_t *rows = json_object_get(doc, "deliveries"), *row, *c = json_object_get(doc, "counts");
    char when[32], last[16];
    size_t i;

    printf("%-36s  %-7s  %4s  %-5s  %-20s  %-19s  %s\n", "ID", "STATUS", "TRY", "LAST", "WHAT", "CREATED", "URL");
    json_array_foreach(rows, i, row)
    {
        const char *what = json_is_string(json_object_get(row, "event")) ? ch_rest_str(row, "event", "")
                                                                         : ch_rest_str(row, "kind", "?");
        ch_rest_short_time(ch_rest_str(row, "createdAt", NULL), when, sizeof(when));
        if (json_is_integer(json_object_get(row, "lastStatus")))
            snprintf(last, sizeof(last), "%" PRId64, ch_rest_int(row, "lastStatus"));
        else
            snprintf(last, sizeof(last), "-");
        printf("%-36s  %-7s  %4" PRId64 "  %-5s  %-20.20s  %-19s  %s\n", ch_rest_str(row, "id", "?"),
               ch_rest_str(row, "status", "?"), ch_rest_int(row, "attempts"), last, what, when,
               ch_rest_str(row, "url", ""));
        if (json_is_string(json_object_get(row, "lastError")) && strcmp(ch_rest_str(row, "status", ""), "done"))
            printf("    error: %.200s\n", ch_rest_str(row, "lastError", ""));
    }
    if (!json_array_size(rows))
        printf("(no deliveries)\n");
    printf("\n%" PRId64 " pending, %" PRId64 " sending, %" PRId64 " done, %" PRId64 " dead\n",
           ch_rest_int(c, "pending"), ch_rest_int(c, "sending"), ch_rest_int(c, "done"), ch_rest_int(c, "dead"));
}

static int deliveries_list(int argc, char **argv)
{
    static const char *prog = "chela deliveries list";
    static const char *usage = "chela deliveries list [--status S] [--run ID] [--limit N] [--json] [--url URL] "
                               "[--token T] [--state DIR]";
    struct ch_opt opts[] = {
        {"status", true, "only deliveries in this status: pending, sending, done, dead", NULL},
        {"run", true, "only deliveries of this run id", NULL},
        {"limit", true, "most rows (1-1000, default 50)", NULL},
        COMMON_OPTS,
    };
    const size_t n = CH_ARRAY_SIZE(opts);
    struct ch_rest_target t = {0};
    const char *st, *run, *lim;
    char *path = NULL, *e1 = NULL, *e2 = NULL;
    json_t *doc = NULL;
    uint64_t limit = 50;
    int rc = ch_rest_begin(argc, argv, opts, n, prog, usage, NULL, 0, 0, &t);

    if (rc >= 0)
        return rc;
    st = ch_opt_get(opts, n, "status");
    run = ch_opt_get(opts, n, "run");
    lim = ch_opt_get(opts, n, "limit");
    if (lim && (ch_str_to_u64(ch_str_from(lim), 1000, &limit) != 0 || limit == 0)) {
        fprintf(stderr, "%s: --limit must be an integer from 1 to 1000\n", prog);
        rc = CH_EXIT_USAGE;
        goto out;
    }
    if (st && strcmp(st, "pending") && strcmp(st, "sending") && strcmp(st, "done") && strcmp(st, "dead")) {
        fprintf(stderr, "%s: --status must be pending, sending, done or dead\n", prog);
        rc = CH_EXIT_USAGE;
        goto out;
    }
    rc = CH_EXIT_RUNTIME;
    if ((run && !(e2 = ch_rest_escape(run))) || (st && !(e1 = ch_rest_escape(st))) ||
        !(path = ch_sprintf("/api/v1/deliveries?limit=%" PRIu64 "%s%s%s%s", limit, st ? "&status=" : "", st ? e1 : "",
                            run ? "&runId=" : "", run ? e2 : ""))) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto out;
    }
    if ((rc = ch_rest_json(prog, &t, "GET", path, NULL, &doc)) != 0)
        goto out;
    if (ch_opt_get(opts, n, "json"))
        ch_rest_print_json(doc);
    else
        print_list(doc);
out:
    json_decref(doc);
    ch_free(path);
    ch_free(e1);
    ch_free(e2);
    ch_rest_target_release(&t);
    return rc;
}

static void print_one(json_t *d)
{
    char t1[32], t2[32], t3[32];

    ch_rest_short_time(ch_rest_str(d, "createdAt", NULL), t1, sizeof(t1));
    ch_rest_short_time(ch_rest_str(d, "deliveredAt", NULL), t2, sizeof(t2));
    ch_rest_short_time(ch_rest_str(d, "nextAttemptAt", NULL), t3, sizeof(t3));
    printf("Delivery:    %s\n", ch_rest_str(d, "id", "?"));
    printf("Status:      %s\n", ch_rest_str(d, "status", "?"));
    printf("Kind:        %s%s%s\n", ch_rest_str(d, "kind", "?"), json_is_string(json_object_get(d, "event")) ? " " : "",
           ch_rest_str(d, "event", ""));
    printf("Run:         %s\n", ch_rest_str(d, "runId", "-"));
    printf("URL:         %s\n", ch_rest_str(d, "url", "?"));
    printf("Attempts:    %" PRId64 " (budget %" PRId64 ")\n", ch_rest_int(d, "attempts"),
           ch_rest_int(d, "maxAttempts"));
    if (json_is_integer(json_object_get(d, "lastStatus")))
        printf("Last status: %" PRId64 "\n", ch_rest_int(d, "lastStatus"));
    if (json_is_string(json_object_get(d, "lastError")))
        printf("Last error:  %s\n", ch_rest_str(d, "lastError", ""));
    printf("Created:     %s\nDelivered:   %s\nNext try:    %s\n", t1, t2, t3);
    printf("Signed:      %s\n", json_is_true(json_object_get(d, "signed")) ? "yes" : "no");
    if (json_is_string(json_object_get(d, "body")))
        printf("\n%s\n", ch_rest_str(d, "body", ""));
}

/* show and retry: one delivery by id. */
static int deliveries_one(int argc, char **argv, const char *verb)
{
    char prog[64], usage[160], *id = NULL, *path = NULL;
    struct ch_opt opts[] = {COMMON_OPTS};
    const size_t n = CH_ARRAY_SIZE(opts);
    struct ch_rest_target t = {0};
    bool is_show = !strcmp(verb, "show");
    const char *pos[1];
    json_t *doc = NULL;
    int rc;

    snprintf(prog, sizeof(prog), "chela deliveries %s", verb);
    snprintf(usage, sizeof(usage), "chela deliveries %s ID [--json] [--url URL] [--token T] [--state DIR]", verb);
    rc = ch_rest_begin(argc, argv, opts, n, prog, usage, pos, 1, 1, &t);
    if (rc >= 0)
        return rc;
    rc = CH_EXIT_RUNTIME;
    if (!(id = ch_rest_escape(pos[0])) ||
        !(path = ch_sprintf("/api/v1/deliveries/%s%s", id, is_show ? "" : "/retry"))) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto out;
    }
    if ((rc = ch_rest_json(prog, &t, is_show ? "GET" : "POST", path, NULL, &doc)) != 0)
        goto out;
    if (ch_opt_get(opts, n, "json"))
        ch_rest_print_json(doc);
    else if (is_show)
        print_one(doc);
    else
        printf("Delivery %s queued for another attempt\n", pos[0]);
out:
    json_decref(doc);
    ch_free(id);
    ch_free(path);
    ch_rest_target_release(&t);
    return rc;
}

int ch_cmd_deliveries(int argc, char **argv)
{
    static const char *usage = "Usage: chela deliveries <list|show ID|retry ID> [options]\n\n"
                               "  list        callback and webhook deliveries, newest first (--status, --run)\n"
                               "  show ID     one delivery: attempts, last error, body\n"
                               "  retry ID    send a dead delivery again (a fresh retry budget), or a pending\n"
                               "              one now\n\n"
                               "Run 'chela deliveries <subcommand> --help' for its options.\n";
    const char *sub = argc > 2 ? argv[2] : NULL;

    if (!sub || sub[0] == '-') {
        bool help = sub && (!strcmp(sub, "--help") || !strcmp(sub, "-h"));
        fputs(usage, help ? stdout : stderr);
        return help ? CH_EXIT_OK : CH_EXIT_USAGE;
    }
    if (!strcmp(sub, "list"))
        return deliveries_list(argc, argv);
    if (!strcmp(sub, "show") || !strcmp(sub, "retry"))
        return deliveries_one(argc, argv, sub);
    fprintf(stderr, "chela deliveries: unknown subcommand '%s'\n", sub);
    fputs(usage, stderr);
    return CH_EXIT_USAGE;
}
