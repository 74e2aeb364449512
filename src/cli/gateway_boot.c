/*
 * gateway_boot.c: startup steps of `chela gateway` that run before the
 * event loop (blocking is fine here: nothing is being served yet).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/gateway_boot.h"
#include "net/net.h"

static const char default_config[] =
    "// chela configuration (JSON5: comments, trailing commas and unquoted keys are fine).\n"
    "// Every key, its type and default: docs/configuration.md, or `chela config schema --markdown`.\n"
    "// Check a change with `chela config validate`; SIGHUP reloads what can change at run time.\n"
    "{\n"
    "  gateway: {\n"
    "    port: 18789,\n"
    "    bind: 'loopback',          // 'lan' or an address to listen beyond this machine\n"
    "    auth: { mode: 'token' },   // token: ${CHELA_GATEWAY_TOKEN} also works here\n"
    "  },\n"
    "  api: {\n"
    "    rateLimit: { perToken: { windowMs: 60000, maxRequests: 60 } },\n"
    "    security: { maxBodySize: '1MB' },\n"
    "  },\n"
    "  log: { level: 'info', format: 'text' },\n"
    "}\n";

/* mkdir -p with 0700 for what it creates; errno tells why it failed. */
static int mkdir_p(const char *dir)
{
    char tmp[4096];
    size_t n = strlen(dir);

    if (n == 0 || n >= sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(tmp, dir, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

int ch_boot_state_dir(const char *dir)
{
    struct stat st;
    char *probe;
    int fd;

    if (mkdir_p(dir) != 0) {
        fprintf(stderr, "chela: cannot create state directory %s: %s\n", dir, strerror(errno));
        return CH_EXIT_RUNTIME;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "chela: state directory %s is not a directory\n", dir);
        return CH_EXIT_RUNTIME;
    }
    /* Prove we can write there now, not at the first commit. */
    probe = ch_sprintf("%s/.write-test.%d", dir, (int)getpid());
    fd = probe ? open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600) : -1;
    if (fd < 0) {
        fprintf(stderr, "chela: state directory %s is not writable: %s\n", dir, strerror(errno));
        ch_free(probe);
        return CH_EXIT_RUNTIME;
    }
    close(fd);
    unlink(probe);
    ch_free(probe);
    return 0;
}

void ch_boot_logging(const struct ch_config *c, const char *format_flag, const char *level_flag)
{
    static const char *fmt_flag, *lvl_flag; /* remembered for SIGHUP */
    enum ch_log_level level = CH_LOG_INFO;
    const char *fmt, *lvl;

    if (format_flag)
        fmt_flag = format_flag;
    if (level_flag)
        lvl_flag = level_flag;
    fmt = fmt_flag ? fmt_flag : ch_config_str(c, "log.format", "text");
    lvl = lvl_flag ? lvl_flag : ch_config_str(c, "log.level", "info");
    ch_log_level_parse(lvl, &level);
    ch_log_setup(level, !strcmp(fmt, "json") ? CH_LOG_JSON : CH_LOG_TEXT);
}

int ch_boot_config(struct ch_boot *b, const char *path, struct ch_config **out)
{
    struct ch_config_errors errs = {0};
    enum ch_log_level lv;
    int fd, rc;

    if (b->log_format_flag && strcmp(b->log_format_flag, "text") && strcmp(b->log_format_flag, "json")) {
        fprintf(stderr, "chela gateway: --log-format must be text or json\n");
        return CH_EXIT_USAGE;
    }
    if (b->log_level_flag && ch_log_level_parse(b->log_level_flag, &lv) != 0) {
        fprintf(stderr, "chela gateway: --log-level must be debug, info, warn or error\n");
        return CH_EXIT_USAGE;
    }
    /* First start: leave a commented config where the docs say it is. */
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        if (write(fd, default_config, sizeof(default_config) - 1) < 0)
            fprintf(stderr, "chela: warning: cannot write %s: %s\n", path, strerror(errno));
        close(fd);
    }
    rc = ch_config_load(path, out, &errs);
    if (rc) {
        for (size_t i = 0; i < errs.count; i++)
            fprintf(stderr, "chela: %s: %s\n", path, errs.msgs[i]);
        ch_config_errors_release(&errs);
        return rc == CH_EIO ? CH_EXIT_RUNTIME : CH_EXIT_USAGE;
    }
    ch_boot_logging(*out, b->log_format_flag, b->log_level_flag);
    return 0;
}

int ch_boot_listen_addr(struct ch_boot *b, const struct ch_config *c)
{
    struct ch_error err = {0};
    const char *bind = b->bind_flag ? b->bind_flag : ch_config_str(c, "gateway.bind", "loopback");
    const char *mode = ch_config_str(c, "gateway.auth.mode", "token");
    long port = ch_config_int(c, "gateway.port", 18789);
    char *end;

    if (b->port_flag) {
        errno = 0;
        port = strtol(b->port_flag, &end, 10);
        if (errno || *end || port < 0 || port > 65535) {
            fprintf(stderr, "chela gateway: --port must be 0..65535\n");
            return CH_EXIT_USAGE;
        }
    }
    b->port = (int)port;
    if (ch_net_resolve_bind(bind, b->addr, sizeof(b->addr), &err) != 0) {
        fprintf(stderr, "chela: gateway.bind: %s\n", err.msg);
        return CH_EXIT_USAGE;
    }
    if (!strcmp(mode, "none") && !ch_net_is_loopback(b->addr)) {
        fprintf(stderr,
                "chela: gateway.auth.mode 'none' is allowed only on loopback, not on %s; "
                "use a token\n",
                b->addr);
        return CH_EXIT_USAGE;
    }
    if (!strcmp(mode, "password") && !*ch_config_str(c, "gateway.auth.password", "")) {
        fprintf(stderr, "chela: gateway.auth.mode is 'password' but gateway.auth.password is empty\n");
        return CH_EXIT_USAGE;
    }
    return 0;
}

/* First start: an admin token, stored hashed, printed once. */
static int bootstrap_admin(struct ch_db *db, const char *config_path_hint)
{
    struct ch_token_rec t = {0};
    struct ch_error err = {0};
    char *done = NULL, *secret;
    int rc;

    if (ch_meta_get(db, "bootstrap.admin", &done) == 0 && done) {
        ch_free(done);
        return 0;
    }
    secret = ch_random_token("oc_tok_", 43);
    if (!secret)
        return CH_ENOMEM;
    t.name = "admin";
    t.source = "bootstrap";
    t.scopes = CH_SCOPE_ADMIN;
    t.created_ms = ch_now_ms();
    ch_sha256_hex(secret, strlen(secret), t.hash_hex);
    rc = ch_tokens_insert(db, &t, &err);
    if (rc == CH_EEXIST) { /* someone made an "admin" token by hand */
        t.name = "admin-bootstrap";
        rc = ch_tokens_insert(db, &t, &err);
    }
    if (rc == 0)
        rc = ch_meta_set(db, "bootstrap.admin", "done");
    if (rc == 0) {
        printf("Admin token (shown once, store it now): %s\n", secret);
        printf("Config: %s\n", config_path_hint);
        fflush(stdout);
    }
    ch_free_secret(secret);
    return rc;
}

int ch_boot_database(struct ch_boot *b, const char *state_dir, const struct ch_config *c, struct ch_token_list *tokens)
{
    struct ch_db_opts o = {0};
    struct ch_error err = {0};
    struct ch_db *db = NULL;
    int rc;

    b->db_path = ch_cli_db_path(state_dir);
    if (!b->db_path)
        return CH_EXIT_RUNTIME;
    o.path = b->db_path;
    o.migrate = true;
    o.sync_full = !strcmp(ch_config_str(c, "store.sync", "normal"), "full");
    o.busy_timeout_ms = (int)ch_config_int(c, "store.busyTimeoutMs", 5000);
    if (ch_db_open(&o, &db, &err) != 0) {
        fprintf(stderr, "chela: cannot open database %s: %s\n", b->db_path, err.msg);
        return CH_EXIT_RUNTIME;
    }
    rc = 0;
    if (!*ch_config_str(c, "gateway.auth.token", "") && !*ch_config_str(c, "gateway.auth.password", ""))
        rc = bootstrap_admin(db, c->path ? c->path : "(embedded defaults)");
    if (rc == 0)
        rc = ch_tokens_list(db, false, tokens);
    if (rc == 0) {
        struct ch_usage_row row = {0};
        if (ch_usage_totals(db, NULL, NULL, &row) == 0) {
            b->usage = row.usage;
            b->usage_requests = row.requests;
        }
        ch_usage_row_release(&row);
    }
    if (rc)
        fprintf(stderr, "chela: database %s: %s\n", b->db_path, ch_strerror(rc));
    ch_db_close(db);
    return rc ? CH_EXIT_RUNTIME : 0;
}

char *ch_boot_write_runfile(const char *state_dir, const char *addr, int port, const char *local_token)
{
    char *path = ch_sprintf("%s/gateway.json", state_dir), *tmp = ch_sprintf("%s/.gateway.json.tmp", state_dir);
    const char *host = strcmp(addr, "0.0.0.0") ? (strcmp(addr, "::") ? addr : "::1") : "127.0.0.1";
    bool v6 = strchr(host, ':') != NULL;
    FILE *f;
    int fd;

    if (!path || !tmp)
        goto fail;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f)
        goto fail;
    fprintf(f, "{\"pid\":%d,\"url\":\"http://%s%s%s:%d\",\"port\":%d,\"localToken\":\"%s\"}\n", (int)getpid(),
            v6 ? "[" : "", host, v6 ? "]" : "", port, port, local_token);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        goto fail;
    ch_free(tmp);
    return path;
fail:
    ch_log_warn("cannot write %s/gateway.json: %s; local CLI commands need --url and --token", state_dir,
                strerror(errno));
    if (tmp)
        unlink(tmp);
    ch_free(path);
    ch_free(tmp);
    return NULL;
}

void ch_boot_release(struct ch_boot *b)
{
    ch_free(b->db_path);
    b->db_path = NULL;
}
