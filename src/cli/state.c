/*
 * state.c: where the CLI finds things.  The state directory is `--state
 * DIR` > $CHELA_HOME > ~/.chela (HOME, else the passwd entry); the config
 * is `--config PATH` > DIR/chela.json5; the database DIR/chela.db; and a
 * running gateway advertises its URL and an ephemeral local admin token in
 * DIR/gateway.json (contract: "chela gateway").  Paths are made absolute
 * but never resolved, since the directory may not exist yet.
 */
#include <errno.h>
#include <jansson.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

/* gateway.json is a few hundred bytes; anything bigger is not ours. */
#define GATEWAY_JSON_MAX (64 * 1024)
/* PATH_MAX-sized cwd is plenty; longer cwds fail cleanly (NULL). */
#define CWD_MAX 4096

/* An owned absolute copy of p, without trailing slashes (except "/"). */
static char *absolute(const char *p)
{
    char cwd[CWD_MAX];
    char *out;
    size_t len;

    if (!p || !*p)
        return NULL;
    if (p[0] == '/') {
        out = ch_strdup(p);
    } else {
        if (!getcwd(cwd, sizeof(cwd)))
            return NULL;
        /* "." alone means the cwd itself; "./x" keeps its harmless "./". */
        out = strcmp(p, ".") ? ch_sprintf("%s/%s", strcmp(cwd, "/") ? cwd : "", p) : ch_strdup(cwd);
    }
    if (!out)
        return NULL;
    len = strlen(out);
    while (len > 1 && out[len - 1] == '/')
        out[--len] = '\0';
    return out;
}

char *ch_cli_state_dir(const char *flag)
{
    const char *env, *home;
    struct passwd *pw;

    if (flag && *flag)
        return absolute(flag);
    env = getenv("CHELA_HOME");
    if (env && *env)
        return absolute(env);
    home = getenv("HOME");
    if (!home || !*home) {
        /* No HOME (daemons, cron): fall back to the passwd entry. */
        pw = getpwuid(getuid());
        home = pw ? pw->pw_dir : NULL;
    }
    if (!home || !*home)
        return NULL;
    return ch_sprintf("%s%s.chela", home, home[strlen(home) - 1] == '/' ? "" : "/");
}

char *ch_cli_config_path(const char *state_dir, const char *flag)
{
    if (flag && *flag)
        return absolute(flag);
    if (!state_dir)
        return NULL;
    return ch_sprintf("%s/chela.json5", state_dir);
}

char *ch_cli_db_path(const char *state_dir)
{
    return state_dir ? ch_sprintf("%s/chela.db", state_dir) : NULL;
}

/* Copy a non-empty string member into *out (left NULL when absent or
 * empty).  CH_ENOMEM only when the copy fails. */
static int dup_member(json_t *root, const char *key, char **out)
{
    const char *s = json_string_value(json_object_get(root, key));

    if (!s || !*s)
        return 0;
    *out = ch_strdup(s);
    return *out ? 0 : CH_ENOMEM;
}

int ch_cli_local_gateway(const char *state_dir, char **url, char **token)
{
    char *path = NULL, *u = NULL, *t = NULL;
    json_t *root = NULL;
    json_error_t jerr;
    struct stat st;
    int rc = CH_ENOMEM;

    if (url)
        *url = NULL;
    if (token)
        *token = NULL;
    if (!state_dir)
        return CH_ENOTFOUND;
    path = ch_sprintf("%s/gateway.json", state_dir);
    if (!path)
        goto out;
    if (stat(path, &st) != 0) {
        rc = errno == ENOENT || errno == ENOTDIR ? CH_ENOTFOUND : CH_EIO;
        goto out;
    }
    rc = CH_E_TOO_LARGE;
    if (!S_ISREG(st.st_mode) || st.st_size > GATEWAY_JSON_MAX)
        goto out;
    rc = CH_EINVAL;
    root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root))
        goto out;
    rc = url ? dup_member(root, "url", &u) : 0;
    if (rc == 0 && token)
        rc = dup_member(root, "localToken", &t);
out:
    json_decref(root);
    ch_free(path);
    if (rc) {
        ch_free(u);
        ch_free_secret(t);
        return rc;
    }
    if (url)
        *url = u;
    if (token)
        *token = t;
    return 0;
}
