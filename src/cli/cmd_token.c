/*
 * cmd_token.c: `chela token create|list|revoke`.  These write DIR/chela.db
 * directly through the synchronous store API; SQLite WAL lets them run
 * while a gateway holds the same database, and the gateway notices new
 * and revoked tokens through PRAGMA data_version.  A secret exists only in
 * this process's memory and on stdout once; the database keeps its
 * SHA-256 (contract: "Client subcommands").
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "store/store.h"

#define NAME_MAX_LEN 64
/* oc_tok_ + 43 url-safe chars = 256 bits of randomness. */
#define SECRET_CHARS 43
#define MAX_RATE_RPM 1000000
#define VALID_SCOPES "chat, send, read, admin"

/* Help text of --state, shared by every token subcommand.  Each also
 * accepts --url and --token without listing them (help NULL): the contract
 * lets scripts pass them to every client command, and token commands,
 * which never talk HTTP, ignore them. */
#define STATE_HELP "state directory (default $CHELA_HOME, else ~/.chela)"

static void token_usage(FILE *f)
{
    fprintf(f, "Usage: chela token <create|list|revoke> [options]\n\n"
               "  create --name N --scope chat,send,read,admin [--rate-limit RPM] [--expires 90d] [--json]\n"
               "  list [--json]\n"
               "  revoke <name|token>\n\n"
               "Run 'chela token <subcommand> --help' for details.\n");
}

/* Create the state directory (and missing parents) with mode 0700.
 * On failure errno still holds mkdir's reason for the message. */
static int make_state_dir(const char *dir)
{
    char *p = ch_strdup(dir);
    int rc = 0, saved_errno = 0;

    if (!p)
        return CH_ENOMEM;
    for (char *s = p + 1; rc == 0; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char saved = *s;
        *s = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            saved_errno = errno;
            rc = CH_EIO;
        }
        *s = saved;
        if (!saved)
            break;
    }
    ch_free(p);
    errno = saved_errno;
    return rc;
}

/* Open (creating and migrating) DIR/chela.db; prints the reason itself. */
static int open_db(const char *prog, const char *state_flag, struct ch_db **db)
{
    struct ch_db_opts o = {0};
    struct ch_error err = {0};
    char *dir = ch_cli_state_dir(state_flag), *path = NULL;
    int rc = CH_EXIT_RUNTIME;

    if (!dir) {
        fprintf(stderr, "%s: cannot find a state directory: set HOME or CHELA_HOME, or pass --state\n", prog);
        goto out;
    }
    if (make_state_dir(dir) != 0) {
        fprintf(stderr, "%s: cannot create the state directory %s: %s\n", prog, dir, strerror(errno));
        goto out;
    }
    path = ch_cli_db_path(dir);
    if (!path) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto out;
    }
    o.path = path;
    o.migrate = true;
    if (ch_db_open(&o, db, &err) != 0) {
        fprintf(stderr, "%s: cannot open the database %s: %s\n", prog, path,
                err.msg[0] ? err.msg : ch_strerror(err.code));
        goto out;
    }
    rc = CH_EXIT_OK;
out:
    ch_free(path);
    ch_free(dir);
    return rc;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                  c == ':' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* ISO 8601 without milliseconds, for the table; "never" for 0. */
static void short_time(int64_t ms, char out[32])
{
    char *dot;

    if (!ms) {
        snprintf(out, 32, "never");
        return;
    }
    ch_time_iso8601(ms, out);
    dot = strchr(out, '.');
    if (dot)
        memmove(dot, "Z", 2);
}

static json_t *time_json(int64_t ms)
{
    char buf[32];

    if (!ms)
        return json_null();
    ch_time_iso8601(ms, buf);
    return json_string(buf);
}

static json_t *scopes_json(unsigned mask)
{
    char csv[64];
    json_t *arr = json_array();
    char *save = NULL;

    ch_scopes_format(mask, csv, sizeof(csv));
    for (char *s = strtok_r(csv, ",", &save); s && arr; s = strtok_r(NULL, ",", &save))
        json_array_append_new(arr, json_string(s));
    return arr;
}

/* "chat, send, read": the csv from ch_scopes_format with spaces. */
static void scopes_text(unsigned mask, char *out, size_t cap)
{
    char csv[64];
    size_t o = 0;

    ch_scopes_format(mask, csv, sizeof(csv));
    for (size_t i = 0; csv[i] && o + 3 < cap; i++) {
        out[o++] = csv[i];
        if (csv[i] == ',')
            out[o++] = ' ';
    }
    out[o] = '\0';
}

static json_t *rate_json(int64_t rpm)
{
    /* 0 means "the configured api.rateLimit.perToken"; an integer either
     * way, the same shape as GET /api/v1/tokens (api/tokens_rest.c). */
    return json_integer(rpm > 0 ? rpm : 0);
}

/* Print a JSON document on stdout followed by a newline; 0 or 1. */
static int print_json(json_t *doc)
{
    char *s;

    if (!doc)
        return CH_EXIT_RUNTIME;
    s = json_dumps(doc, JSON_INDENT(2));
    json_decref(doc);
    if (!s)
        return CH_EXIT_RUNTIME;
    printf("%s\n", s);
    ch_free_secret(s); /* may hold a fresh secret */
    return CH_EXIT_OK;
}

static int token_create(int argc, char **argv)
{
    static const char *prog = "chela token create";
    struct ch_opt opts[] = {
        {"name", true, "token name: 1-64 of A-Z a-z 0-9 . _ : -", NULL},
        {"scope", true, "comma-separated scopes: " VALID_SCOPES, NULL},
        {"rate-limit", true, "requests per minute, 0-1000000 (default: api.rateLimit.perToken)", NULL},
        {"expires", true, "lifetime such as 90d, 12h, 30m (default: never)", NULL},
        {"json", false, "print the result as JSON", NULL},
        {"state", true, STATE_HELP, NULL},
        {"url", true, NULL, NULL},
        {"token", true, NULL, NULL},
    };
    const size_t n = CH_ARRAY_SIZE(opts);
    struct ch_token_rec rec = {0};
    struct ch_error err = {0};
    struct ch_db *db = NULL;
    const char *name, *scope, *rate, *expires;
    char *secret = NULL;
    uint64_t rpm = 0;
    int64_t life_ms = 0;
    size_t npos;
    bool help;
    int rc;

    rc = ch_args_parse(argc, argv, 3, opts, n, NULL, 0, &npos, &help);
    if (rc || help) {
        if (help)
            ch_args_usage(stdout,
                          "chela token create --name N --scope SCOPES [--rate-limit RPM] "
                          "[--expires 90d] [--json] [--state DIR]",
                          opts, n);
        return rc;
    }
    rc = CH_EXIT_USAGE;
    name = ch_opt_get(opts, n, "name");
    scope = ch_opt_get(opts, n, "scope");
    rate = ch_opt_get(opts, n, "rate-limit");
    expires = ch_opt_get(opts, n, "expires");
    if (!name || !*name) {
        fprintf(stderr, "%s: --name is required\n", prog);
        goto out;
    }
    if (!strncmp(name, "oc_tok_", 7)) {
        /* Revoke takes a name or a secret; this prefix would be ambiguous. */
        fprintf(stderr, "%s: a token name must not start with oc_tok_\n", prog);
        goto out;
    }
    if (!valid_name(name)) {
        fprintf(stderr, "%s: invalid name '%.80s': use 1-%d characters from A-Z a-z 0-9 . _ : -\n", prog, name,
                NAME_MAX_LEN);
        goto out;
    }
    if (!scope || !*scope) {
        fprintf(stderr, "%s: --scope is required (valid scopes: %s)\n", prog, VALID_SCOPES);
        goto out;
    }
    if (ch_scopes_parse(scope, &rec.scopes, &err) != 0 || rec.scopes == 0) {
        const char *msg = err.msg[0] ? err.msg : "no scope given";

        /* The store's messages usually list the valid scopes already. */
        fprintf(stderr, "%s: %s%s\n", prog, msg, strstr(msg, "valid") ? "" : " (valid scopes: " VALID_SCOPES ")");
        goto out;
    }
    if (rate && ch_str_to_u64(ch_str_from(rate), MAX_RATE_RPM, &rpm) != 0) {
        fprintf(stderr, "%s: --rate-limit must be an integer from 0 to %d, got '%.40s'\n", prog, MAX_RATE_RPM, rate);
        goto out;
    }
    if (expires && (ch_parse_duration_ms(expires, &life_ms) != 0 || life_ms <= 0)) {
        fprintf(stderr, "%s: --expires must be a positive duration such as 90d, 12h or 30m, got '%.40s'\n", prog,
                expires);
        goto out;
    }

    rc = open_db(prog, ch_opt_get(opts, n, "state"), &db);
    if (rc)
        goto out;
    rc = CH_EXIT_RUNTIME;
    secret = ch_random_token("oc_tok_", SECRET_CHARS);
    if (!secret) {
        fprintf(stderr, "%s: cannot generate a secret (random source failed)\n", prog);
        goto out;
    }
    ch_sha256_hex(secret, strlen(secret), rec.hash_hex);
    rec.name = (char *)name; /* borrowed: rec is never released */
    rec.source = (char *)"cli";
    rec.rate_limit_rpm = (int64_t)rpm;
    rec.created_ms = ch_now_ms();
    rec.expires_ms = life_ms ? rec.created_ms + life_ms : 0;
    err = (struct ch_error){0};
    switch (ch_tokens_insert(db, &rec, &err)) {
    case 0: break;
    case CH_EEXIST:
        fprintf(stderr, "%s: a live token named %s already exists; revoke it first or pick another name\n", prog, name);
        goto out;
    default:
        fprintf(stderr, "%s: cannot store the token: %s\n", prog, err.msg[0] ? err.msg : ch_strerror(err.code));
        goto out;
    }

    if (ch_opt_get(opts, n, "json")) {
        json_t *doc = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o}", "name", name, "token", secret, "scopes",
                                scopes_json(rec.scopes), "rateLimit", rate_json(rec.rate_limit_rpm), "createdAt",
                                time_json(rec.created_ms), "expiresAt", time_json(rec.expires_ms));
        rc = print_json(doc);
        if (rc)
            fprintf(stderr, "%s: out of memory printing the token (it was created; revoke %s)\n", prog, name);
    } else {
        char scopes[96], when[32];

        scopes_text(rec.scopes, scopes, sizeof(scopes));
        printf("Token: %s\n", secret);
        printf("Name: %s\n", name);
        printf("Scope: %s\n", scopes);
        if (rec.rate_limit_rpm > 0)
            printf("Rate limit: %" PRId64 " rpm\n", rec.rate_limit_rpm);
        else
            printf("Rate limit: default\n");
        if (rec.expires_ms)
            ch_time_iso8601(rec.expires_ms, when);
        printf("Expires: %s\n", rec.expires_ms ? when : "never");
        rc = CH_EXIT_OK;
    }
out:
    ch_free_secret(secret);
    ch_db_close(db);
    return rc;
}

static json_t *list_json(const struct ch_token_list *l)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < l->count && arr; i++) {
        const struct ch_token_rec *t = &l->items[i];
        json_t *o = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o, s:s}", "name", t->name, "scopes", scopes_json(t->scopes),
                              "rateLimit", rate_json(t->rate_limit_rpm), "createdAt", time_json(t->created_ms),
                              "lastUsedAt", time_json(t->last_used_ms), "expiresAt", time_json(t->expires_ms), "source",
                              t->source ? t->source : "");
        if (!o || json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr ? json_pack("{s:o}", "tokens", arr) : NULL;
}

static void list_table(const struct ch_token_list *l)
{
    static const char *head[6] = {"NAME", "SCOPES", "RATE", "CREATED", "LAST-USED", "EXPIRES"};
    size_t w[6];
    int64_t now = ch_now_ms();

    /* Two passes: measure every cell, then print padded columns. */
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 0)
            for (int c = 0; c < 6; c++)
                w[c] = strlen(head[c]);
        else
            printf("%-*s  %-*s  %-*s  %-*s  %-*s  %s\n", (int)w[0], head[0], (int)w[1], head[1], (int)w[2], head[2],
                   (int)w[3], head[3], (int)w[4], head[4], head[5]);
        for (size_t i = 0; i < l->count; i++) {
            const struct ch_token_rec *t = &l->items[i];
            char cell[6][96];

            snprintf(cell[0], sizeof(cell[0]), "%s", t->name);
            ch_scopes_format(t->scopes, cell[1], sizeof(cell[1]));
            if (t->rate_limit_rpm > 0)
                snprintf(cell[2], sizeof(cell[2]), "%" PRId64 " rpm", t->rate_limit_rpm);
            else
                snprintf(cell[2], sizeof(cell[2]), "default");
            short_time(t->created_ms, cell[3]);
            short_time(t->last_used_ms, cell[4]);
            short_time(t->expires_ms, cell[5]);
            if (t->expires_ms && t->expires_ms <= now)
                strcat(cell[5], " (expired)");
            if (pass == 0) {
                for (int c = 0; c < 6; c++)
                    w[c] = CH_MAX(w[c], strlen(cell[c]));
                continue;
            }
            printf("%-*s  %-*s  %-*s  %-*s  %-*s  %s\n", (int)w[0], cell[0], (int)w[1], cell[1], (int)w[2], cell[2],
                   (int)w[3], cell[3], (int)w[4], cell[4], cell[5]);
        }
    }
}

static int token_list(int argc, char **argv)
{
    static const char *prog = "chela token list";
    struct ch_opt opts[] = {
        {"json", false, "print {\"tokens\":[...]} instead of a table", NULL},
        {"state", true, STATE_HELP, NULL},
        {"url", true, NULL, NULL},
        {"token", true, NULL, NULL},
    };
    const size_t n = CH_ARRAY_SIZE(opts);
    struct ch_token_list l = {0};
    struct ch_db *db = NULL;
    size_t npos;
    bool help;
    int rc;

    rc = ch_args_parse(argc, argv, 3, opts, n, NULL, 0, &npos, &help);
    if (rc || help) {
        if (help)
            ch_args_usage(stdout, "chela token list [--json] [--state DIR]", opts, n);
        return rc;
    }
    rc = open_db(prog, ch_opt_get(opts, n, "state"), &db);
    if (rc)
        goto out;
    rc = CH_EXIT_RUNTIME;
    if (ch_tokens_list(db, false, &l) != 0) {
        fprintf(stderr, "%s: cannot read the tokens from the database\n", prog);
        goto out;
    }
    if (ch_opt_get(opts, n, "json")) {
        rc = print_json(list_json(&l));
        if (rc)
            fprintf(stderr, "%s: out of memory\n", prog);
    } else {
        list_table(&l);
        rc = CH_EXIT_OK;
    }
out:
    ch_token_list_release(&l);
    ch_db_close(db);
    return rc;
}

/* The live token named `arg`, else the one whose secret is `arg`. */
static const struct ch_token_rec *find_live(const struct ch_token_list *l, const char *arg)
{
    char hash[65];

    for (size_t i = 0; i < l->count; i++)
        if (!strcmp(l->items[i].name, arg))
            return &l->items[i];
    ch_sha256_hex(arg, strlen(arg), hash);
    for (size_t i = 0; i < l->count; i++)
        if (ch_ct_streq(l->items[i].hash_hex, strlen(l->items[i].hash_hex), hash, 64))
            return &l->items[i];
    return NULL;
}

static int token_revoke(int argc, char **argv)
{
    static const char *prog = "chela token revoke";
    struct ch_opt opts[] = {
        {"state", true, STATE_HELP, NULL},
        {"url", true, NULL, NULL},
        {"token", true, NULL, NULL},
    };
    const size_t n = CH_ARRAY_SIZE(opts);
    struct ch_token_list l = {0};
    const struct ch_token_rec *t;
    struct ch_db *db = NULL;
    const char *pos[1];
    size_t npos;
    bool help;
    int rc;

    rc = ch_args_parse(argc, argv, 3, opts, n, pos, 1, &npos, &help);
    if (rc || help) {
        if (help)
            ch_args_usage(stdout, "chela token revoke <name|token> [--state DIR]", opts, n);
        return rc;
    }
    if (npos != 1 || !*pos[0]) {
        fprintf(stderr, "%s: give the name or the secret of the token to revoke\n", prog);
        return CH_EXIT_USAGE;
    }
    rc = open_db(prog, ch_opt_get(opts, n, "state"), &db);
    if (rc)
        goto out;
    rc = CH_EXIT_RUNTIME;
    /* Resolve to a name first: revoking by secret must still print the
     * name, and the secret itself is never echoed. */
    if (ch_tokens_list(db, false, &l) != 0) {
        fprintf(stderr, "%s: cannot read the tokens from the database\n", prog);
        goto out;
    }
    t = find_live(&l, pos[0]);
    if (!t) {
        if (valid_name(pos[0]) && strncmp(pos[0], "oc_tok_", 7) != 0)
            fprintf(stderr, "%s: no live token named %s\n", prog, pos[0]);
        else
            fprintf(stderr, "%s: no live token matches that name or secret\n", prog);
        goto out;
    }
    switch (ch_tokens_revoke(db, t->name, ch_now_ms())) {
    case 0:
        printf("Revoked %s\n", t->name);
        rc = CH_EXIT_OK;
        break;
    case CH_ENOTFOUND: /* revoked by someone else since we listed */
        fprintf(stderr, "%s: no live token named %s\n", prog, t->name);
        break;
    default: fprintf(stderr, "%s: cannot revoke %s: database error\n", prog, t->name); break;
    }
out:
    ch_token_list_release(&l);
    ch_db_close(db);
    return rc;
}

int ch_cmd_token(int argc, char **argv)
{
    const char *sub = argc > 2 ? argv[2] : NULL;

    if (!sub) {
        token_usage(stderr);
        return CH_EXIT_USAGE;
    }
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        token_usage(stdout);
        return CH_EXIT_OK;
    }
    if (!strcmp(sub, "create"))
        return token_create(argc, argv);
    if (!strcmp(sub, "list") || !strcmp(sub, "ls"))
        return token_list(argc, argv);
    if (!strcmp(sub, "revoke") || !strcmp(sub, "rm"))
        return token_revoke(argc, argv);
    fprintf(stderr, "chela token: unknown subcommand '%s'\n\n", sub);
    token_usage(stderr);
    return CH_EXIT_USAGE;
}
