/*
 * oc_schema.c: closed-object validation of OpenClaw frames and params, with
 * the error texts OpenClaw's formatValidationErrors() prints (spec 1.3,
 * packages/gateway-protocol/src/validation-errors.ts).  The trees come from
 * oc_schema_gen.c, generated from protocol.schema.json.
 *
 * Per object the order is the validators': required, then unexpected
 * properties, then the properties in schema order, then patternProperties.
 * v3 (AJV allErrors) reports every missing and unexpected property; v4
 * (TypeBox 1.x) only the first of each.  The reference texts were produced
 * by the real validators (tests/conformance/connect_errors.mjs) and are
 * checked by tests/unit/api/test_oc_connect.c.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "api/oc_internal.h"

#define MAX_PARTS 48
#define MAX_PART_BYTES 320
#define MAX_PATH_BYTES 256

struct parts {
    char *p[MAX_PARTS]; /* owned */
    size_t n;
    enum oc_wording w;
};

static void add_part(struct parts *ps, const char *path, bool root_word, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void add_part(struct parts *ps, const char *path, bool root_word, const char *fmt, ...)
{
    char msg[MAX_PART_BYTES], part[MAX_PART_BYTES + MAX_PATH_BYTES + 8];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (path[0])
        snprintf(part, sizeof(part), "at %s: %s", path, msg);
    else if (root_word)
        snprintf(part, sizeof(part), "at root: %s", msg);
    else
        snprintf(part, sizeof(part), "%s", msg);
    /* Duplicates are dropped, as the reference does with a Set. */
    for (size_t i = 0; i < ps->n; i++)
        if (!strcmp(ps->p[i], part))
            return;
    if (ps->n < MAX_PARTS) {
        char *dup = ch_strdup(part);
        if (dup)
            ps->p[ps->n++] = dup;
    }
}

static void child_path(char *out, const char *base, const char *key)
{
    size_t n = CH_MIN(strlen(base), (size_t)MAX_PATH_BYTES - 2);

    /* Called for every property checked: no printf here. */
    memcpy(out, base, n);
    out[n++] = '/';

    /* JSON pointer escaping (RFC 6901): ~ -> ~0, / -> ~1. */
    for (const char *k = key; *k && n + 3 < MAX_PATH_BYTES; k++) {
        if (*k == '~' || *k == '/') {
            out[n++] = '~';
            out[n++] = *k == '~' ? '0' : '1';
        } else {
            out[n++] = *k;
        }
    }
    out[n] = '\0';
}

/* JavaScript's number formatting for the integers a schema holds. */
static void fmt_num(char *out, size_t cap, double v)
{
    if (v == floor(v) && fabs(v) < 1e17)
        snprintf(out, cap, "%lld", (long long)v);
    else
        snprintf(out, cap, "%g", v);
}

static size_t utf8_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            c++;
    return c;
}

static bool in_list(const char *const *vals, const char *s)
{
    for (; vals && *vals; vals++)
        if (!strcmp(*vals, s))
            return true;
    return false;
}

static bool is_integer(const json_t *v)
{
    double d;
    if (json_is_integer(v))
        return true;
    if (!json_is_real(v))
        return false;
    d = json_real_value(v);
    return isfinite(d) && d == floor(d);
}

static const char *not_word(const struct parts *ps)
{
    return ps->w == OC_WORDING_V3 ? "NOT" : "not";
}

static void check(const struct oc_node *n, const json_t *v, const char *path, struct parts *ps);

static void check_object(const struct oc_node *n, const json_t *v, const char *path, struct parts *ps)
{
    char cp[MAX_PATH_BYTES];
    const char *key;
    json_t *val;

    for (const char *const *r = n->required; r && *r; r++) {
        if (!json_object_get(v, *r)) {
            add_part(ps, path, false, "must have required property '%s'", *r);
            if (ps->w == OC_WORDING_V4)
                break;
        }
    }
    if (n->flags & OC_F_CLOSED) {
        json_object_foreach((json_t *)v, key, val)
        {
            bool known = false;
            for (const struct oc_prop *p = n->props; p && p->name; p++)
                if (!strcmp(p->name, key)) {
                    known = true;
                    break;
                }
            if (!known) {
                add_part(ps, path, true, "unexpected property '%.100s'", key);
                if (ps->w == OC_WORDING_V4)
                    break;
            }
        }
    }
    for (const struct oc_prop *p = n->props; p && p->name; p++) {
        val = json_object_get(v, p->name);
        if (!val)
            continue;
        child_path(cp, path, p->name);
        check(p->node, val, cp, ps);
    }
    if (n->items && !n->props) {
        json_object_foreach((json_t *)v, key, val)
        {
            child_path(cp, path, key);
            check(n->items, val, cp, ps);
        }
    }
}

static void check_enum(const struct oc_node *n, const json_t *v, const char *path, struct parts *ps)
{
    bool member = json_is_string(v) && in_list(n->values, json_string_value(v));
    /* v3 wrote every enum as an anyOf of string constants (TypeBox 0.34). */
    bool anyof = (n->flags & OC_F_ENUM_ANYOF) || ((n->flags & OC_F_ENUM) && ps->w == OC_WORDING_V3);

    if (member)
        return;
    if (!anyof && (n->flags & OC_F_ENUM)) {
        add_part(ps, path, false, "must be equal to one of the allowed values");
        return;
    }
    if (!json_is_string(v))
        add_part(ps, path, false, "must be string");
    add_part(ps, path, false, "must be equal to constant");
    if (anyof)
        add_part(ps, path, false, "must match a schema in anyOf");
}

static void check(const struct oc_node *n, const json_t *v, const char *path, struct parts *ps)
{
    static const char *const tname[] = {"any", "string", "integer", "number", "boolean", "object", "array", "null"};
    char num[32], cp[MAX_PATH_BYTES];
    bool type_ok;

    if (!n)
        return;
    if (n->flags & OC_F_NULLABLE) {
        struct parts inner = {.w = ps->w};
        if (json_is_null(v))
            return;
        check(n->items, v, path, &inner);
        if (inner.n == 0)
            return;
        for (size_t i = 0; i < inner.n; i++) {
            /* Already formatted with their paths: copy verbatim. */
            bool dup = false;
            for (size_t k = 0; k < ps->n; k++)
                dup = dup || !strcmp(ps->p[k], inner.p[i]);
            if (!dup && ps->n < MAX_PARTS)
                ps->p[ps->n++] = inner.p[i];
            else
                ch_free(inner.p[i]);
        }
        add_part(ps, path, false, "must be null");
        add_part(ps, path, false, "must match a schema in anyOf");
        return;
    }
    if (n->flags & (OC_F_ENUM | OC_F_ENUM_ANYOF | OC_F_CONST)) {
        check_enum(n, v, path, ps);
        return;
    }
    switch (n->type) {
    case OC_T_STRING: type_ok = json_is_string(v); break;
    case OC_T_INT: type_ok = is_integer(v); break;
    case OC_T_NUM: type_ok = json_is_number(v); break;
    case OC_T_BOOL: type_ok = json_is_boolean(v); break;
    case OC_T_OBJ: type_ok = json_is_object(v); break;
    case OC_T_ARR: type_ok = json_is_array(v); break;
    case OC_T_NULL: type_ok = json_is_null(v); break;
    default: return;
    }
    if (!type_ok) {
        add_part(ps, path, false, "must be %s", tname[n->type]);
        return;
    }
    if (n->type == OC_T_STRING) {
        size_t len = utf8_chars(json_string_value(v), json_string_length(v));
        if (n->min_len >= 0 && len < (size_t)n->min_len)
            add_part(ps, path, false, "must %s have fewer than %d characters", not_word(ps), (int)n->min_len);
        if (n->max_len >= 0 && len > (size_t)n->max_len)
            add_part(ps, path, false, "must %s have more than %d characters", not_word(ps), (int)n->max_len);
    } else if (n->type == OC_T_INT || n->type == OC_T_NUM) {
        double d = json_number_value(v);
        if ((n->flags & OC_F_MIN) && d < n->minimum) {
            fmt_num(num, sizeof(num), n->minimum);
            add_part(ps, path, false, "must be >= %s", num);
        }
        if ((n->flags & OC_F_MAX) && d > n->maximum) {
            fmt_num(num, sizeof(num), n->maximum);
            add_part(ps, path, false, "must be <= %s", num);
        }
    } else if (n->type == OC_T_ARR) {
        size_t cnt = json_array_size(v);
        if (n->min_len >= 0 && cnt < (size_t)n->min_len)
            add_part(ps, path, false, "must %s have fewer than %d items", not_word(ps), (int)n->min_len);
        if (n->max_len >= 0 && cnt > (size_t)n->max_len)
            add_part(ps, path, false, "must %s have more than %d items", not_word(ps), (int)n->max_len);
        if (n->items) {
            for (size_t i = 0; i < cnt && ps->n < MAX_PARTS; i++) {
                char idx[24];
                snprintf(idx, sizeof(idx), "%zu", i);
                child_path(cp, path, idx);
                check(n->items, json_array_get(v, i), cp, ps);
            }
        }
    } else if (n->type == OC_T_OBJ) {
        check_object(n, v, path, ps);
    }
}

int ch_oc_schema_check(const struct oc_node *n, const json_t *v, enum oc_wording w, struct ch_buf *out)
{
    struct parts ps = {.w = w};
    static const json_t *absent;

    check(n, v ? v : absent, "", &ps);
    if (!v && n && n->type != OC_T_ANY && ps.n == 0)
        add_part(&ps, "", false, "must be %s", n->type == OC_T_OBJ ? "object" : "present");
    for (size_t i = 0; i < ps.n; i++) {
        if (out) {
            if (i)
                ch_buf_append_str(out, "; ");
            ch_buf_append_str(out, ps.p[i]);
        }
        ch_free(ps.p[i]);
    }
    return ps.n ? CH_EINVAL : 0;
}

const struct oc_node *ch_oc_method_schema(const char *method)
{
    for (const struct oc_method_schema *m = ch_oc_method_schemas; m->method; m++)
        if (!strcmp(m->method, method))
            return m->node;
    return NULL;
}

/* RequestFrame (spec 1.2), closed. */
static const struct oc_node req_nonempty = {OC_T_STRING, 0, 1, -1, 0, 0, NULL, NULL, NULL, NULL};
static const struct oc_node req_type = {OC_T_STRING, OC_F_CONST, -1,  -1, 0, 0, (const char *const[]){"req", NULL},
                                        NULL,        NULL,       NULL};
static const struct oc_node req_any = {OC_T_ANY, 0, -1, -1, 0, 0, NULL, NULL, NULL, NULL};
static const struct oc_node req_trace = {OC_T_STRING, 0, -1, 128, 0, 0, NULL, NULL, NULL, NULL};
static const struct oc_prop req_props[] = {
    {"type", &req_type},  {"id", &req_nonempty},       {"method", &req_nonempty},
    {"params", &req_any}, {"traceparent", &req_trace}, {NULL, NULL},
};
const struct oc_node ch_oc_request_frame_schema = {
    OC_T_OBJ, OC_F_CLOSED, -1, -1, 0, 0, NULL, req_props, (const char *const[]){"type", "id", "method", NULL}, NULL};
