/*
 * config.c: loading the configuration file into a struct ch_config.
 *
 * Order matters and is fixed: read the file (capped), parse JSON5 with
 * ${VAR} substitution, validate strictly against the schema collecting
 * every problem, deep-copy into `root` and fill defaults, then apply the
 * CHELA_/OPENCLAW_ environment overrides (validated against the same
 * rows).  Nothing is returned until all of it succeeded.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/internal.h"
#include "config/json5_int.h"

const struct cfg_env_override cfg_env_overrides[] = {
    {"CHELA_GATEWAY_TOKEN", "OPENCLAW_GATEWAY_TOKEN", "gateway.auth.token"},
    {"CHELA_GATEWAY_PASSWORD", "OPENCLAW_GATEWAY_PASSWORD", "gateway.auth.password"},
    {"CHELA_GATEWAY_PORT", "OPENCLAW_GATEWAY_PORT", "gateway.port"},
};
const size_t cfg_env_override_count = CH_ARRAY_SIZE(cfg_env_overrides);

bool cfg_errors_full(const struct ch_config_errors *e)
{
    return e->count >= CFG_MAX_ERRORS;
}

static int errors_push(struct ch_config_errors *e, char *msg)
{
    if (!msg)
        return CH_ENOMEM;
    if (e->count == e->cap) {
        size_t ncap = e->cap ? e->cap * 2 : 8;
        char **nm = ch_realloc(e->msgs, ncap * sizeof(*nm));

        if (!nm) {
            ch_free(msg);
            return CH_ENOMEM;
        }
        e->msgs = nm;
        e->cap = ncap;
    }
    e->msgs[e->count++] = msg;
    return 0;
}

int cfg_errors_add(struct ch_config_errors *e, const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    /* Past the cap, one last line says so and the rest is dropped. */
    if (e->count > CFG_MAX_ERRORS)
        return 0;
    if (e->count == CFG_MAX_ERRORS)
        return errors_push(e, ch_sprintf("too many errors; stopped after %d", CFG_MAX_ERRORS));
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return errors_push(e, ch_strdup(buf));
}

void ch_config_errors_release(struct ch_config_errors *e)
{
    if (!e)
        return;
    for (size_t k = 0; k < e->count; k++)
        ch_free(e->msgs[k]);
    ch_free(e->msgs);
    memset(e, 0, sizeof(*e));
}

void ch_config_free(struct ch_config *c)
{
    if (!c)
        return;
    json_decref(c->root);
    json_decref(c->file);
    ch_free(c->path);
    if (c->raw)
        ch_free_secret(c->raw); /* the file may hold tokens */
    ch_free(c);
}

/*
 * Read a whole file, at most CH_JSON5_MAX_INPUT bytes.  CH_ENOTFOUND when
 * it does not exist (the caller then uses defaults), CH_EIO otherwise.
 */
static int read_file(const char *path, char **out, size_t *outlen, struct ch_config_errors *errs)
{
    struct ch_buf b;
    char chunk[16384];
    ssize_t n;
    int fd, rc = CH_EIO;
    struct stat st;

    ch_buf_init(&b, CH_JSON5_MAX_INPUT);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return CH_ENOTFOUND;
        cfg_errors_add(errs, "cannot open %s: %s", path, strerror(errno));
        return CH_EIO;
    }
    if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
        cfg_errors_add(errs, "%s is not a regular file", path);
        goto out;
    }
    for (;;) {
        n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            cfg_errors_add(errs, "cannot read %s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        rc = ch_buf_append(&b, chunk, (size_t)n);
        if (rc == CH_E_TOO_LARGE) {
            cfg_errors_add(errs, "%s is larger than %u MiB", path, CH_JSON5_MAX_INPUT >> 20);
            rc = CH_EINVAL;
            goto out;
        }
        if (rc)
            goto out;
        rc = CH_EIO;
    }
    rc = 0;
    if (!b.data && ch_buf_append(&b, "", 0)) /* empty file: still hand back a string */
        rc = CH_ENOMEM;
out:
    close(fd);
    ch_wipe(chunk, sizeof(chunk));
    if (rc) {
        if (b.data)
            ch_wipe(b.data, b.cap);
        ch_buf_release(&b);
        return rc;
    }
    *out = ch_buf_detach(&b, outlen);
    return 0;
}

static char *absolute_path(const char *path)
{
    char buf[PATH_MAX];

    if (realpath(path, buf))
        return ch_strdup(buf);
    if (path[0] == '/' || !getcwd(buf, sizeof(buf)))
        return ch_strdup(path);
    return ch_sprintf("%s/%s", buf, path);
}

/* Parse and validate; on success *doc owns the tree. */
static int parse_and_validate(const struct cfg_schema *s, const char *text, size_t len, struct ch_json5_doc *doc,
                              struct ch_config_errors *errs)
{
    struct ch_error jerr;
    int rc;

    rc = ch_json5_parse(text, len, true, doc, &jerr);
    if (rc == CH_ENOMEM)
        return rc;
    if (rc)
        return cfg_errors_add(errs, "%s", jerr.msg) ? CH_ENOMEM : CH_EINVAL;
    rc = cfg_validate(s, doc->root, doc, errs);
    if (rc)
        ch_json5_doc_release(doc);
    return rc;
}

int ch_config_validate_text(const char *text, size_t len, struct ch_config_errors *errs)
{
    struct ch_json5_doc doc;
    struct cfg_schema *s = cfg_schema_new();
    int rc = CH_ENOMEM;

    if (!s)
        return rc;
    rc = parse_and_validate(s, text, len, &doc, errs);
    if (rc == 0)
        ch_json5_doc_release(&doc);
    cfg_schema_free(s);
    return rc;
}

/* Does an earlier row than i name the same key right below pat? */
static bool seen_before(const struct cfg_schema *s, size_t i, size_t plen, const char *key, size_t klen)
{
    for (size_t j = 0; j < i; j++) {
        const char *path = s->rows[j].path;
        const char *rest = plen ? path + plen + 1 : path;

        if (plen && (strncmp(path, s->rows[i].path, plen) || path[plen] != '.'))
            continue;
        if (!strncmp(rest, key, klen) && strchr(".[", rest[klen]))
            return true; /* strchr also matches the terminating NUL */
    }
    return false;
}

static int fill_object(const struct cfg_schema *s, json_t *obj, const char *pat);

/* Fill inside an existing child according to its row type. */
static int fill_child(const struct cfg_schema *s, enum cfg_type t, json_t *child, const char *full)
{
    char sub[CFG_MAX_PATTERN];
    const char *k;
    json_t *v;
    size_t i;
    int rc = 0;

    if (t == CFG_OBJECT && json_is_object(child))
        return fill_object(s, child, full);
    if (t == CFG_OBJECTS && json_is_array(child)) {
        if (snprintf(sub, sizeof(sub), "%s[]", full) >= (int)sizeof(sub))
            return 0; /* longer than any row: nothing to fill */
        json_array_foreach(child, i, v) if (json_is_object(v) && (rc = fill_object(s, v, sub))) return rc;
    } else if (t == CFG_MAP && json_is_object(child)) {
        if (snprintf(sub, sizeof(sub), "%s.*", full) >= (int)sizeof(sub))
            return 0;
        json_object_foreach(child, k, v) if (json_is_object(v) && (rc = fill_object(s, v, sub))) return rc;
    }
    return 0;
}

/*
 * For every key the schema lists right below `pat`: add its default when
 * absent, create grouping objects that end up holding some default, and
 * descend into objects, arrays of objects and maps that exist.
 */
static int fill_object(const struct cfg_schema *s, json_t *obj, const char *pat)
{
    size_t plen = strlen(pat);
    char full[CFG_MAX_PATTERN], key[CFG_MAX_PATTERN];
    int rc;

    for (size_t i = 0; i < s->count; i++) {
        const char *path = s->rows[i].path, *rest;
        const struct cfg_row *r;
        json_t *child, *v;
        size_t klen;
        int n;

        if (plen && (strncmp(path, pat, plen) || path[plen] != '.'))
            continue;
        rest = plen ? path + plen + 1 : path;
        klen = strcspn(rest, ".[");
        if (klen == 0 || klen >= sizeof(key) || (klen == 1 && rest[0] == '*') || seen_before(s, i, plen, rest, klen))
            continue;
        memcpy(key, rest, klen);
        key[klen] = '\0';
        n = snprintf(full, sizeof(full), "%s%s%s", pat, plen ? "." : "", key);
        if (n < 0 || (size_t)n >= sizeof(full))
            continue;
        r = cfg_schema_find(s, full);
        child = json_object_get(obj, key);
        if (child) {
            if ((rc = fill_child(s, r ? r->type : CFG_OBJECT, child, full)))
                return rc;
            continue;
        }
        if (r && r->def) {
            v = json_loads(r->def, JSON_DECODE_ANY, NULL);
            if (!v || json_object_set_new(obj, key, v))
                return CH_ENOMEM; /* the defaults are checked by a unit test */
            continue;
        }
        if (r && r->type != CFG_OBJECT)
            continue;
        child = json_object();
        if (!child || json_object_set_new(obj, key, child))
            return CH_ENOMEM;
        if ((rc = fill_object(s, child, full)))
            return rc;
        if (json_object_size(child) == 0)
            json_object_del(obj, key); /* nothing to default below: leave it out */
    }
    return 0;
}

int cfg_fill_defaults(const struct cfg_schema *s, json_t *root)
{
    return json_is_object(root) ? fill_object(s, root, "") : CH_EINVAL;
}

/* Set a dotted path in root, creating objects on the way. Steals v. */
static int set_path(json_t *root, const char *dotted, json_t *v)
{
    char seg[CFG_MAX_PATTERN];
    const char *p = dotted;
    json_t *node = root, *next;

    if (!v)
        return CH_ENOMEM;
    for (;;) {
        size_t n = strcspn(p, ".");

        if (n >= sizeof(seg))
            break;
        memcpy(seg, p, n);
        seg[n] = '\0';
        if (!p[n])
            return json_object_set_new(node, seg, v) ? CH_ENOMEM : 0;
        next = json_object_get(node, seg);
        if (!json_is_object(next)) {
            next = json_object();
            if (!next || json_object_set_new(node, seg, next))
                break;
        }
        node = next;
        p += n + 1;
    }
    json_decref(v);
    return CH_ENOMEM;
}

/*
 * CHELA_* then OPENCLAW_* (so CHELA_ wins); an empty variable counts as
 * unset, so `CHELA_GATEWAY_TOKEN= chela` does not blank the token.
 */
static int apply_env(const struct cfg_schema *s, json_t *root, struct ch_config_errors *errs)
{
    int rc = 0;

    for (size_t k = 0; k < cfg_env_override_count; k++) {
        const struct cfg_env_override *o = &cfg_env_overrides[k];
        const struct cfg_row *r = cfg_schema_find(s, o->path);
        const char *name = o->chela, *val = getenv(o->chela);
        uint64_t u;

        if (!val || !*val) {
            name = o->openclaw;
            val = getenv(o->openclaw);
        }
        if (!val || !*val || !r)
            continue;
        if (r->type == CFG_INT) {
            if (ch_str_to_u64(ch_str_from(val), (uint64_t)r->max, &u) || (int64_t)u < r->min) {
                if (cfg_errors_add(errs, "%s: expected an integer in [%lld, %lld], got '%.32s'", name,
                                   (long long)r->min, (long long)r->max, val))
                    return CH_ENOMEM;
                rc = CH_EINVAL;
                continue;
            }
            if (set_path(root, o->path, json_integer((json_int_t)u)))
                return CH_ENOMEM;
        } else if (!j5_utf8_valid(val, strlen(val))) {
            if (cfg_errors_add(errs, "%s: value is not valid UTF-8", name))
                return CH_ENOMEM;
            rc = CH_EINVAL;
        } else if (set_path(root, o->path, json_string(val))) {
            return CH_ENOMEM;
        }
    }
    return rc;
}

int ch_config_load(const char *path, struct ch_config **out, struct ch_config_errors *errs)
{
    struct ch_config *c;
    struct cfg_schema *s;
    struct ch_json5_doc doc;
    size_t len = 0;
    int rc = CH_ENOMEM;

    memset(&doc, 0, sizeof(doc));
    c = ch_calloc(1, sizeof(*c));
    s = cfg_schema_new();
    if (!c || !s)
        goto out;
    if (path) {
        if (!(c->path = absolute_path(path)))
            goto out;
        rc = read_file(path, &c->raw, &len, errs);
        if (rc && rc != CH_ENOTFOUND)
            goto out;
        c->file_exists = rc == 0;
    }
    if (c->file_exists) {
        if ((rc = parse_and_validate(s, c->raw, len, &doc, errs)))
            goto out;
        c->file = json_incref(doc.root);
    } else {
        c->file = json_object();
    }
    rc = CH_ENOMEM;
    if (!c->file || !(c->root = json_deep_copy(c->file)))
        goto out;
    if ((rc = cfg_fill_defaults(s, c->root)))
        goto out;
    rc = apply_env(s, c->root, errs);
out:
    ch_json5_doc_release(&doc);
    cfg_schema_free(s);
    if (rc) {
        /* A file that failed to parse may hold NULs; wipe all of it. */
        if (c && c->raw)
            ch_wipe(c->raw, len);
        ch_config_free(c);
        c = NULL;
    }
    *out = c;
    return rc;
}
