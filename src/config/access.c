/*
 * access.c: reading a loaded configuration: typed getters by dotted path,
 * the limits table, the redacted copy for `config show` and the status
 * endpoint, and the markdown reference.  All read-only on ch_config.
 */
#include <stdlib.h>
#include <string.h>

#include "config/internal.h"

#define REDACTED "__OPENCLAW_REDACTED__"
#define MAX_SEGMENT 256

const json_t *ch_config_get(const struct ch_config *c, const char *dotted)
{
    const json_t *node;
    const char *p = dotted;
    char seg[MAX_SEGMENT];

    if (!c || !dotted)
        return NULL;
    node = c->root;
    while (node && *p) {
        size_t n = strcspn(p, ".");
        uint64_t idx;

        if (n == 0 || n >= sizeof(seg))
            return NULL;
        memcpy(seg, p, n);
        seg[n] = '\0';
        if (json_is_object(node))
            node = json_object_get(node, seg);
        else if (json_is_array(node) && !ch_str_to_u64((struct ch_str){seg, n}, SIZE_MAX, &idx))
            node = json_array_get(node, (size_t)idx); /* "api.auth.tokens.0.name" */
        else
            return NULL;
        p += n;
        if (*p == '.')
            p++;
    }
    return node;
}

int64_t ch_config_int(const struct ch_config *c, const char *dotted, int64_t fallback)
{
    const json_t *v = ch_config_get(c, dotted);

    return json_is_integer(v) ? (int64_t)json_integer_value(v) : fallback;
}

double ch_config_real(const struct ch_config *c, const char *dotted, double fallback)
{
    const json_t *v = ch_config_get(c, dotted);

    return json_is_number(v) ? json_number_value(v) : fallback;
}

bool ch_config_bool(const struct ch_config *c, const char *dotted, bool fallback)
{
    const json_t *v = ch_config_get(c, dotted);

    return json_is_boolean(v) ? json_is_true(v) : fallback;
}

const char *ch_config_str(const struct ch_config *c, const char *dotted, const char *fallback)
{
    const json_t *v = ch_config_get(c, dotted);

    return json_is_string(v) ? json_string_value(v) : fallback;
}

uint64_t ch_config_size(const struct ch_config *c, const char *dotted, uint64_t fallback)
{
    const json_t *v = ch_config_get(c, dotted);
    uint64_t n;

    /* The validator keeps sizes non-negative; a getter on an unvalidated
     * key must still not turn -1 into 2^64-1. */
    if (json_is_integer(v))
        return json_integer_value(v) >= 0 ? (uint64_t)json_integer_value(v) : fallback;
    if (json_is_string(v) && ch_parse_size(json_string_value(v), &n) == 0)
        return n;
    return fallback;
}

int ch_config_duration_value(const json_t *v, int64_t *ms)
{
    const char *s = json_string_value(v);
    double days = json_is_number(v) ? json_number_value(v) : -1;
    char *end;

    /* OpenClaw's parseDurationMs with defaultUnit "d": a bare number is
     * days, whether written as a number or as a string. */
    if (s) {
        days = strtod(s, &end);
        if (end == s || *end)
            return ch_parse_duration_ms(s, ms);
    }
    if (!(days >= 0 && days <= 1e8)) /* also NaN */
        return CH_EINVAL;
    *ms = (int64_t)(days * 86400000.0);
    return 0;
}

int64_t ch_config_duration_ms(const struct ch_config *c, const char *dotted, int64_t fallback)
{
    int64_t ms;

    return ch_config_duration_value(ch_config_get(c, dotted), &ms) == 0 ? ms : fallback;
}

/* A validated limits.* value as an integer (byte limits may be "64KB"). */
static bool limit_value(const json_t *v, int64_t *out)
{
    uint64_t n;

    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return true;
    }
    if (json_is_string(v) && ch_parse_size(json_string_value(v), &n) == 0 && n <= (uint64_t)INT64_MAX) {
        *out = (int64_t)n;
        return true;
    }
    return false;
}

void ch_config_limits(const struct ch_config *c, struct ch_limits *out)
{
    const json_t *limits = ch_config_get(c, "limits"), *file_limits = NULL, *v;
    int64_t n;

    ch_limits_init(out);
    if (c && json_is_object(c->file))
        file_limits = json_object_get(c->file, "limits");
    for (int k = 0; k < CH_LIMIT__COUNT; k++) {
        const struct ch_limit_def *d = ch_limit_def_get((enum ch_limit_id)k);

        v = json_object_get(limits, d->name);
        /* Values were range-checked at load; ch_limits_set checks again. */
        if (limit_value(v, &n))
            ch_limits_set(out, d->name, n, NULL);
    }
    /*
     * api.security.maxBodySize is the OpenClaw spelling of the body limit;
     * it applies unless the file set limits.maxBodyBytes itself.
     */
    if (!json_object_get(file_limits, ch_limit_def_get(CH_LIMIT_MAX_BODY_BYTES)->name) &&
        limit_value(ch_config_get(c, "api.security.maxBodySize"), &n))
        ch_limits_set(out, ch_limit_def_get(CH_LIMIT_MAX_BODY_BYTES)->name, n, NULL);
}

static int redact(const struct cfg_schema *s, json_t *node, const char *pat);

/* Redact or descend into one child whose pattern is `pat`. */
static int redact_child(const struct cfg_schema *s, json_t *v, const char *pat, json_t **repl)
{
    const struct cfg_row *r = cfg_schema_find(s, pat);

    *repl = NULL;
    /* Any type is replaced, not only strings: a mistyped secret is still a
     * secret.  null stays null, so "unset" remains visible. */
    if (r && (r->flags & CFG_SECRET) && !json_is_null(v)) {
        *repl = json_string(REDACTED);
        return *repl ? 0 : CH_ENOMEM;
    }
    return redact(s, v, pat);
}

static int redact(const struct cfg_schema *s, json_t *node, const char *pat)
{
    const struct cfg_row *row = pat[0] ? cfg_schema_find(s, pat) : NULL;
    bool is_map = row && row->type == CFG_MAP;
    char child[CFG_MAX_PATTERN];
    json_t *v, *repl;
    void *it;
    size_t i;
    int n, rc;

    if (json_is_object(node)) {
        for (it = json_object_iter(node); it; it = json_object_iter_next(node, it)) {
            const char *k = json_object_iter_key(it);

            /* Map keys are data: every one of them takes the "*" row. */
            if (!is_map && strpbrk(k, ".[]*"))
                continue; /* cannot name a row */
            n = snprintf(child, sizeof(child), "%s%s%s", pat, pat[0] ? "." : "", is_map ? "*" : k);
            if (n < 0 || (size_t)n >= sizeof(child))
                continue;
            if ((rc = redact_child(s, json_object_iter_value(it), child, &repl)))
                return rc;
            if (repl && json_object_iter_set_new(node, it, repl))
                return CH_ENOMEM;
        }
    } else if (json_is_array(node)) {
        n = snprintf(child, sizeof(child), "%s[]", pat);
        if (n < 0 || (size_t)n >= sizeof(child))
            return 0;
        json_array_foreach(node, i, v)
        {
            if ((rc = redact_child(s, v, child, &repl)))
                return rc;
            if (repl && json_array_set_new(node, i, repl))
                return CH_ENOMEM;
        }
    }
    return 0;
}

int cfg_redact(const struct cfg_schema *s, json_t *root)
{
    return redact(s, root, "");
}

json_t *ch_config_redacted(const struct ch_config *c)
{
    struct cfg_schema *s;
    json_t *copy = NULL;

    /* Deep: a shallow copy would share the secret strings with c. */
    if (!c || !c->root)
        return NULL;
    s = cfg_schema_new();
    if (s)
        copy = json_deep_copy(c->root);
    if (copy && cfg_redact(s, copy)) {
        json_decref(copy);
        copy = NULL;
    }
    cfg_schema_free(s);
    return copy;
}

int ch_config_schema_markdown(struct ch_buf *out)
{
    struct cfg_schema *s = cfg_schema_new();
    int rc;

    if (!s)
        return CH_ENOMEM;
    rc = cfg_schema_markdown(s, out);
    cfg_schema_free(s);
    return rc;
}
