/*
 * schema.c: the JSON-schema subset tool definitions use (draft 2020-12
 * semantics for the keywords kept).  Two passes: ch_tools_schema_check()
 * at registration refuses any keyword not validated here (a schema that
 * promised `pattern` or `oneOf` but was not enforced would mislead the
 * model and the operator), and ch_tools_schema_validate() checks a tool
 * call's input, naming the first failure with its JSON path so the model
 * can fix its arguments ("input.headers.Authorization: expected string,
 * got integer").  Recursion follows the schema, whose depth is capped, so
 * a deeply nested input cannot exhaust the stack.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tools/internal.h"

#define MAX_SCHEMA_DEPTH 16
#define PATH_CAP 200 /* bytes of JSON path kept in messages */

static const char *const type_names[] = {"object", "string", "integer", "number", "boolean", "array", "null"};

static const char *const keywords[] = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "items",
    "minItems",
    "maxItems",
    /* annotations: no effect on validation */
    "description",
    "title",
    "default",
    "examples",
    "$schema",
};

/* ------------------------------------------------------------------ */
/* Paths                                                                */
/* ------------------------------------------------------------------ */

struct path {
    char s[PATH_CAP + 8];
    size_t len;
};

static bool plain_key(const char *k)
{
    if (!*k || !((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || *k == '_' || *k == '$'))
        return false;
    for (; *k; k++) {
        char c = *k;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '$' ||
              c == '-'))
            return false;
    }
    return true;
}

/* Append ".key", "[\"odd key\"]" or "[3]"; returns the old length so the
 * caller can pop.  Past PATH_CAP the path ends in "..." and stays so. */
static size_t path_push(struct path *p, const char *key, long index)
{
    size_t old = p->len, room = PATH_CAP - CH_MIN(p->len, PATH_CAP);
    int n;

    if (p->len >= PATH_CAP)
        return old;
    if (!key)
        n = snprintf(p->s + p->len, room + 1, "[%ld]", index);
    else if (plain_key(key))
        n = snprintf(p->s + p->len, room + 1, ".%s", key);
    else
        n = snprintf(p->s + p->len, room + 1, "[\"%.40s\"]", key);
    if (n < 0 || (size_t)n > room) {
        memcpy(p->s + PATH_CAP, "...", 4);
        p->len = PATH_CAP;
        return old;
    }
    p->len += (size_t)n;
    return old;
}

static void path_pop(struct path *p, size_t old)
{
    if (p->len < PATH_CAP || old < PATH_CAP) {
        p->len = old;
        p->s[old] = '\0';
    }
}

/* ------------------------------------------------------------------ */
/* Checking a schema                                                    */
/* ------------------------------------------------------------------ */

static bool is_type_name(const char *s)
{
    for (size_t i = 0; i < CH_ARRAY_SIZE(type_names); i++)
        if (!strcmp(s, type_names[i]))
            return true;
    return false;
}

static bool is_count(const json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) >= 0;
}

static int check_node(const json_t *s, struct path *p, int depth, struct ch_error *err);

static int check_type(const json_t *t, struct path *p, struct ch_error *err)
{
    size_t i;
    json_t *e;

    if (json_is_string(t)) {
        if (!is_type_name(json_string_value(t)))
            return ch_error_set(err, CH_EINVAL, "%s.type: unknown type \"%.32s\"", p->s, json_string_value(t));
        return 0;
    }
    if (!json_is_array(t) || json_array_size(t) == 0)
        return ch_error_set(err, CH_EINVAL, "%s.type: want a type name or a non-empty array", p->s);
    json_array_foreach(t, i, e)
    {
        if (!json_is_string(e) || !is_type_name(json_string_value(e)))
            return ch_error_set(err, CH_EINVAL, "%s.type[%zu]: not a type name", p->s, i);
    }
    return 0;
}

static int check_keyword(const char *k, const json_t *v, struct path *p, int depth, struct ch_error *err)
{
    size_t i, old;
    const char *pk;
    json_t *e;
    int rc = 0;

    if (!strcmp(k, "type"))
        return check_type(v, p, err);
    if (!strcmp(k, "properties")) {
        if (!json_is_object(v))
            return ch_error_set(err, CH_EINVAL, "%s.properties: want an object", p->s);
        json_object_foreach((json_t *)v, pk, e)
        {
            old = path_push(p, "properties", 0);
            path_push(p, pk, 0);
            rc = check_node(e, p, depth + 1, err);
            path_pop(p, old);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (!strcmp(k, "required")) {
        if (!json_is_array(v))
            return ch_error_set(err, CH_EINVAL, "%s.required: want an array of names", p->s);
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e))
                return ch_error_set(err, CH_EINVAL, "%s.required[%zu]: want a string", p->s, i);
        }
        return 0;
    }
    if (!strcmp(k, "additionalProperties") || !strcmp(k, "items")) {
        if (json_is_boolean(v) && k[0] == 'a')
            return 0;
        if (!json_is_object(v))
            return ch_error_set(err, CH_EINVAL, "%s.%s: want %s", p->s, k,
                                k[0] == 'a' ? "a boolean or a schema" : "one schema object");
        old = path_push(p, k, 0);
        rc = check_node(v, p, depth + 1, err);
        path_pop(p, old);
        return rc;
    }
    if (!strcmp(k, "enum")) {
        if (!json_is_array(v) || json_array_size(v) == 0)
            return ch_error_set(err, CH_EINVAL, "%s.enum: want a non-empty array", p->s);
        return 0;
    }
    if (!strcmp(k, "minimum") || !strcmp(k, "maximum")) {
        if (!json_is_number(v))
            return ch_error_set(err, CH_EINVAL, "%s.%s: want a number", p->s, k);
        return 0;
    }
    if (!strcmp(k, "minLength") || !strcmp(k, "maxLength") || !strcmp(k, "minItems") || !strcmp(k, "maxItems")) {
        if (!is_count(v))
            return ch_error_set(err, CH_EINVAL, "%s.%s: want a non-negative integer", p->s, k);
        return 0;
    }
    if (!strcmp(k, "description") || !strcmp(k, "title") || !strcmp(k, "$schema")) {
        if (!json_is_string(v))
            return ch_error_set(err, CH_EINVAL, "%s.%s: want a string", p->s, k);
    }
    return 0; /* default, examples: anything */
}

static int check_node(const json_t *s, struct path *p, int depth, struct ch_error *err)
{
    const char *k;
    json_t *v;
    int rc;

    if (depth > MAX_SCHEMA_DEPTH)
        return ch_error_set(err, CH_EINVAL, "%s: schema nested deeper than %d", p->s, MAX_SCHEMA_DEPTH);
    if (!json_is_object(s))
        return ch_error_set(err, CH_EINVAL, "%s: a schema must be an object", p->s);
    json_object_foreach((json_t *)s, k, v)
    {
        bool known = false;
        for (size_t i = 0; i < CH_ARRAY_SIZE(keywords) && !known; i++)
            known = !strcmp(k, keywords[i]);
        if (!known)
            return ch_error_set(err, CH_EINVAL,
                                "%s: keyword \"%.40s\" is not supported by chela's schema subset "
                                "(docs/internals/tools.md)",
                                p->s, k);
        if ((rc = check_keyword(k, v, p, depth, err)) != 0)
            return rc;
    }
    return 0;
}

int ch_tools_schema_check(const json_t *schema, struct ch_error *err)
{
    struct path p = {.s = "schema", .len = 6};

    return check_node(schema, &p, 0, err);
}

/* ------------------------------------------------------------------ */
/* Validating a value                                                   */
/* ------------------------------------------------------------------ */

struct vctx {
    struct path path;
    char *msg;
    size_t cap;
};

static int vfail(struct vctx *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int vfail(struct vctx *v, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (v->cap == 0)
        return CH_EINVAL;
    n = snprintf(v->msg, v->cap, "%s: ", v->path.s);
    if (n >= 0 && (size_t)n < v->cap) {
        va_start(ap, fmt);
        vsnprintf(v->msg + n, v->cap - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return CH_EINVAL;
}

static const char *value_type(const json_t *x)
{
    switch (json_typeof(x)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    default: return "null";
    }
}

static bool is_integral(const json_t *x)
{
    double d;

    if (json_is_integer(x))
        return true;
    if (!json_is_real(x))
        return false;
    d = json_real_value(x);
    return isfinite(d) && d == floor(d) && fabs(d) <= 9007199254740992.0; /* 2^53 */
}

static bool type_matches(const char *t, const json_t *x)
{
    if (!strcmp(t, "integer"))
        return is_integral(x);
    if (!strcmp(t, "number"))
        return json_is_number(x);
    return !strcmp(t, value_type(x));
}

/* Numbers compare by value (1 == 1.0), everything else structurally. */
static bool values_equal(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return json_number_value(a) == json_number_value(b);
    return json_equal((json_t *)a, (json_t *)b);
}

static int check_types(const json_t *t, const json_t *x, struct vctx *v)
{
    char want[96] = "";
    size_t i, off = 0;
    json_t *e;

    if (json_is_string(t)) {
        if (type_matches(json_string_value(t), x))
            return 0;
        return vfail(v, "expected %s, got %s", json_string_value(t), value_type(x));
    }
    json_array_foreach(t, i, e)
    {
        if (type_matches(json_string_value(e), x))
            return 0;
        off += (size_t)snprintf(want + off, sizeof(want) - CH_MIN(off, sizeof(want)), "%s%s", i ? " or " : "",
                                json_string_value(e));
        off = CH_MIN(off, sizeof(want));
    }
    return vfail(v, "expected %s, got %s", want, value_type(x));
}

static int check_enum(const json_t *en, const json_t *x, struct vctx *v)
{
    char list[160] = "", *got;
    size_t i, off = 0;
    json_t *e;
    int rc;

    json_array_foreach(en, i, e)
    {
        if (values_equal(e, x))
            return 0;
    }
    json_array_foreach(en, i, e)
    {
        char *s = json_dumps(e, JSON_ENCODE_ANY | JSON_COMPACT);
        if (s && off < sizeof(list))
            off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "", s);
        ch_free(s); /* jansson allocates with chela's allocator */
    }
    got = json_dumps(x, JSON_ENCODE_ANY | JSON_COMPACT);
    rc = vfail(v, "must be one of %s (got %.40s)", list, got ? got : "?");
    ch_free(got);
    return rc;
}

static int validate_node(const json_t *s, const json_t *x, struct vctx *v);

static int check_object(const json_t *s, const json_t *x, struct vctx *v)
{
    const json_t *props = json_object_get(s, "properties");
    const json_t *req = json_object_get(s, "required");
    const json_t *addl = json_object_get(s, "additionalProperties");
    const char *k;
    json_t *e;
    size_t i, old;
    int rc;

    json_array_foreach(req, i, e)
    {
        if (!json_object_get(x, json_string_value(e)))
            return vfail(v, "missing required property \"%.64s\"", json_string_value(e));
    }
    json_object_foreach((json_t *)x, k, e)
    {
        const json_t *ps = props ? json_object_get(props, k) : NULL;

        if (!ps && json_is_false(addl)) {
            char allowed[120] = "";
            size_t off = 0;
            const char *pk;
            json_t *pv;

            json_object_foreach((json_t *)props, pk, pv)
            {
                if (off < sizeof(allowed))
                    off += (size_t)snprintf(allowed + off, sizeof(allowed) - off, "%s%s", off ? ", " : "", pk);
            }
            return vfail(v, "unexpected property \"%.64s\" (allowed: %s)", k, off ? allowed : "none");
        }
        if (!ps && json_is_object(addl))
            ps = addl;
        if (!ps)
            continue;
        old = path_push(&v->path, k, 0);
        rc = validate_node(ps, e, v);
        path_pop(&v->path, old);
        if (rc)
            return rc;
    }
    return 0;
}

static int check_array(const json_t *s, const json_t *x, struct vctx *v)
{
    const json_t *items = json_object_get(s, "items");
    const json_t *mn = json_object_get(s, "minItems"), *mx = json_object_get(s, "maxItems");
    size_t n = json_array_size(x), i, old;
    json_t *e;
    int rc;

    if (mn && n < (size_t)json_integer_value(mn))
        return vfail(v, "must have at least %lld item%s", (long long)json_integer_value(mn),
                     json_integer_value(mn) == 1 ? "" : "s");
    if (mx && n > (size_t)json_integer_value(mx))
        return vfail(v, "must have at most %lld item%s", (long long)json_integer_value(mx),
                     json_integer_value(mx) == 1 ? "" : "s");
    if (!items)
        return 0;
    json_array_foreach(x, i, e)
    {
        old = path_push(&v->path, NULL, (long)i);
        rc = validate_node(items, e, v);
        path_pop(&v->path, old);
        if (rc)
            return rc;
    }
    return 0;
}

static int check_bounds(const json_t *s, const json_t *x, struct vctx *v)
{
    const json_t *mn = json_object_get(s, "minimum"), *mx = json_object_get(s, "maximum");
    double d = json_number_value(x);

    /* Two integers compare exactly; otherwise as doubles. */
    if (mn && (json_is_integer(mn) && json_is_integer(x) ? json_integer_value(x) < json_integer_value(mn)
                                                         : d < json_number_value(mn)))
        return vfail(v, "must be >= %g", json_number_value(mn));
    if (mx && (json_is_integer(mx) && json_is_integer(x) ? json_integer_value(x) > json_integer_value(mx)
                                                         : d > json_number_value(mx)))
        return vfail(v, "must be <= %g", json_number_value(mx));
    return 0;
}

static int check_length(const json_t *s, const json_t *x, struct vctx *v)
{
    const json_t *mn = json_object_get(s, "minLength"), *mx = json_object_get(s, "maxLength");
    size_t n = text_count_chars(json_string_value(x), json_string_length(x));

    if (mn && n < (size_t)json_integer_value(mn))
        return vfail(v, "must be at least %lld character%s long", (long long)json_integer_value(mn),
                     json_integer_value(mn) == 1 ? "" : "s");
    if (mx && n > (size_t)json_integer_value(mx))
        return vfail(v, "must be at most %lld character%s long (got %zu)", (long long)json_integer_value(mx),
                     json_integer_value(mx) == 1 ? "" : "s", n);
    return 0;
}

static int validate_node(const json_t *s, const json_t *x, struct vctx *v)
{
    const json_t *t = json_object_get(s, "type"), *en = json_object_get(s, "enum");
    int rc;

    if (t && (rc = check_types(t, x, v)) != 0)
        return rc;
    if (en && (rc = check_enum(en, x, v)) != 0)
        return rc;
    if (json_is_object(x))
        return check_object(s, x, v);
    if (json_is_array(x))
        return check_array(s, x, v);
    if (json_is_number(x))
        return check_bounds(s, x, v);
    if (json_is_string(x))
        return check_length(s, x, v);
    return 0;
}

int ch_tools_schema_validate(const json_t *schema, const json_t *value, const char *root, char *msg, size_t msgcap)
{
    struct vctx v = {.msg = msg, .cap = msgcap};
    int n;

    if (msgcap)
        msg[0] = '\0';
    n = snprintf(v.path.s, sizeof(v.path.s), "%.64s", root && *root ? root : "input");
    v.path.len = (size_t)CH_MAX(n, 0);
    if (!value) {
        /* A missing input is reported like a null one. */
        return vfail(&v, "expected a value, got nothing");
    }
    return validate_node(schema, value, &v);
}
