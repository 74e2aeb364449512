/*
 * cmd_devices.c: `chela devices list|approve ID|reject ID|remove ID`
 * (issue #5: OpenClaw device pairing), a client of the running gateway's
 * /api/v1/devices (admin scope; the local token of the gateway in --state
 * has it).  ID is a pairing request id or a device id (its first
 * characters are not enough: ids are compared whole).  `--json` prints the
 * gateway's answer as it is.
 */
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

#define COMMON_OPTS                                                                                                    \
    {"json", false, "print JSON", NULL},                                                                               \
        {"url", true, "gateway URL (default: DIR/gateway.json, else http://127.0.0.1:18789)", NULL},                   \
        {"token", true, "bearer token (default: $CHELA_TOKEN, else the running gateway's local token)", NULL},         \
    {                                                                                                                  \
        "state", true, "state directory (default $CHELA_HOME, else ~/.chela)", NULL                                    \
    }

static void ms_time(int64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms <= 0 || !gmtime_r(&t, &tm) || strftime(out, cap, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(out, cap, "-");
}

static void join(const json_t *arr, char *out, size_t cap)
{
    size_t i, used = 0;
    json_t *v;

    out[0] = '\0';
    json_array_foreach(arr, i, v)
    {
        int n =
            snprintf(out + used, cap - used, "%s%s", i ? "," : "", json_string_value(v) ? json_string_value(v) : "");
        if (n < 0 || (size_t)n >= cap - used)
            break;
        used += (size_t)n;
    }
    if (!out[0])
        snprintf(out, cap, "-");
}

/*
 * How a device was paired: "manual", or "silent" and, when its tokens
 * answer to the API token that paired it, that token ("silent, token ci"),
 * "#<id> (revoked/expired)" once the gateway no longer holds it live.
 */
static void paired_via(const json_t *row, char *out, size_t cap)
{
    const json_t *toks = json_object_get(row, "tokens"), *t;
    size_t i;

    snprintf(out, cap, "%s", ch_rest_str(row, "approvedVia", "-"));
    json_array_foreach(toks, i, t)
    {
        int64_t id = ch_rest_int(t, "apiTokenId");
        const char *name = ch_rest_str(t, "apiTokenName", NULL);
        size_t used = strlen(out);
        if (id <= 0 || used + 1 >= cap)
            continue;
        if (name)
            snprintf(out + used, cap - used, ", token %s", name);
        else
            snprintf(out + used, cap - used, ", token #%" PRId64 " (revoked/expired)", id);
        break; /* one line: the first; --json lists each token's */
    }
}

static void print_list(json_t *doc)
{
    json_t *pending = json_object_get(doc, "pending"), *paired = json_object_get(doc, "paired"), *row;
    char when[32], roles[64], scopes[160];
    size_t i;

    printf("Pending requests\n");
    printf("%-36s  %-16s  %-19s  %-15s  %-10s  %s\n", "REQUEST", "DEVICE", "REQUESTED", "FROM", "ROLE", "SCOPES");
    json_array_foreach(pending, i, row)
    {
        ms_time(ch_rest_int(row, "ts"), when, sizeof(when));
        join(json_object_get(row, "scopes"), scopes, sizeof(scopes));
        printf("%-36s  %-16.16s  %-19s  %-15.15s  %-10s  %s%s\n", ch_rest_str(row, "requestId", "?"),
               ch_rest_str(row, "deviceId", "?"), when, ch_rest_str(row, "remoteIp", "-"),
               ch_rest_str(row, "role", "?"), scopes,
               json_is_true(json_object_get(row, "isRepair")) ? " (upgrade)" : "");
    }
    if (!json_array_size(pending))
        printf("(none)\n");
    printf("\nPaired devices\n");
    printf("%-16s  %-18s  %-19s  %-19s  %-24s  %-9s  %s\n", "DEVICE", "CLIENT", "APPROVED", "LAST SEEN", "PAIRED VIA",
           "ROLES", "SCOPES");
    json_array_foreach(paired, i, row)
    {
        char seen[32], client[64], via[96];
        ms_time(ch_rest_int(row, "approvedAtMs"), when, sizeof(when));
        ms_time(ch_rest_int(row, "lastSeenAtMs"), seen, sizeof(seen));
        join(json_object_get(row, "roles"), roles, sizeof(roles));
        join(json_object_get(row, "scopes"), scopes, sizeof(scopes));
        snprintf(client, sizeof(client), "%s/%s", ch_rest_str(row, "clientId", "-"),
                 ch_rest_str(row, "clientMode", "-"));
        paired_via(row, via, sizeof(via));
        printf("%-16.16s  %-18.18s  %-19s  %-19s  %-24s  %-9s  %s%s\n", ch_rest_str(row, "deviceId", "?"), client, when,
               seen, via, roles, scopes, json_is_true(json_object_get(row, "connected")) ? " (connected)" : "");
    }
    if (!json_array_size(paired))
        printf("(none)\n");
}

static int devices_list(int argc, char **argv)
{
    static const char *prog = "chela devices list";
    static const char *usage = "chela devices list [--json] [--url URL] [--token T] [--state DIR]";
    struct ch_opt opts[] = {COMMON_OPTS};
    const size_t n = CH_ARRAY_SIZE(opts);
    struct ch_rest_target t = {0};
    json_t *doc = NULL;
    int rc = ch_rest_begin(argc, argv, opts, n, prog, usage, NULL, 0, 0, &t);

    if (rc >= 0)
        return rc;
    if ((rc = ch_rest_json(prog, &t, "GET", "/api/v1/devices", NULL, &doc)) == 0) {
        if (ch_opt_get(opts, n, "json"))
            ch_rest_print_json(doc);
        else
            print_list(doc);
    }
    json_decref(doc);
    ch_rest_target_release(&t);
    return rc;
}

/* approve, reject and remove: one request or device by id. */
static int devices_one(int argc, char **argv, const char *verb)
{
    char prog[64], usage[160], *id = NULL, *path = NULL;
    struct ch_opt opts[] = {COMMON_OPTS};
    const size_t n = CH_ARRAY_SIZE(opts);
    struct ch_rest_target t = {0};
    bool is_remove = !strcmp(verb, "remove");
    const char *pos[1];
    json_t *doc = NULL;
    int rc;

    snprintf(prog, sizeof(prog), "chela devices %s", verb);
    snprintf(usage, sizeof(usage), "chela devices %s %s [--json] [--url URL] [--token T] [--state DIR]", verb,
             is_remove ? "DEVICE_ID" : "REQUEST_ID|DEVICE_ID");
    rc = ch_rest_begin(argc, argv, opts, n, prog, usage, pos, 1, 1, &t);
    if (rc >= 0)
        return rc;
    rc = CH_EXIT_RUNTIME;
    if (!(id = ch_rest_escape(pos[0])) ||
        !(path = is_remove ? ch_sprintf("/api/v1/devices/%s", id) : ch_sprintf("/api/v1/devices/%s/%s", id, verb))) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto out;
    }
    if ((rc = ch_rest_json(prog, &t, is_remove ? "DELETE" : "POST", path, NULL, &doc)) != 0)
        goto out;
    if (ch_opt_get(opts, n, "json"))
        ch_rest_print_json(doc);
    else if (!strcmp(verb, "approve"))
        printf("Approved device %s (request %s)\n", ch_rest_str(json_object_get(doc, "device"), "deviceId", "?"),
               ch_rest_str(doc, "requestId", "?"));
    else if (!strcmp(verb, "reject"))
        printf("Rejected device %s (request %s)\n", ch_rest_str(doc, "deviceId", "?"),
               ch_rest_str(doc, "requestId", "?"));
    else
        printf("Removed device %s\n", ch_rest_str(doc, "deviceId", "?"));
out:
    json_decref(doc);
    ch_free(id);
    ch_free(path);
    ch_rest_target_release(&t);
    return rc;
}

int ch_cmd_devices(int argc, char **argv)
{
    static const char *usage = "Usage: chela devices <list|approve ID|reject ID|remove ID> [options]\n\n"
                               "  list        pending pairing requests and paired OpenClaw devices\n"
                               "  approve ID  pair the device of a pending request (a request or device id)\n"
                               "  reject ID   drop a pending request (a request or device id)\n"
                               "  remove ID   unpair a device: its tokens stop working, its connections close\n\n"
                               "Run 'chela devices <subcommand> --help' for its options.\n";
    const char *sub = argc > 2 ? argv[2] : NULL;

    if (!sub || sub[0] == '-') {
        bool help = sub && (!strcmp(sub, "--help") || !strcmp(sub, "-h"));
        fputs(usage, help ? stdout : stderr);
        return help ? CH_EXIT_OK : CH_EXIT_USAGE;
    }
    if (!strcmp(sub, "list"))
        return devices_list(argc, argv);
    if (!strcmp(sub, "approve") || !strcmp(sub, "reject") || !strcmp(sub, "remove"))
        return devices_one(argc, argv, sub);
    fprintf(stderr, "chela devices: unknown subcommand '%s'\n", sub);
    fputs(usage, stderr);
    return CH_EXIT_USAGE;
}
