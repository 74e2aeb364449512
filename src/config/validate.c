/*
 * validate.c: strict validation of a parsed document against the schema.
 *
 * Walks the document and the schema together, carrying two paths: the
 * schema pattern ("api.auth.tokens[].name") used to find rows, and the
 * display path ("api.auth.tokens[2].name") used in messages.  Every
 * problem is recorded (up to CFG_MAX_ERRORS) rather than stopping at the
 * first, so one run of `chela config validate` shows them all.  Unknown
 * keys are errors, except "x-*" and "$schema", which are allowed in any
 * fixed-key object and never looked into.
 */
#include <stdio.h>
#include <string.h>

#include "config/internal.h"

/* Display paths hold user keys; past this they are cut (messages only). */
#define MAX_DISPLAY 384

struct walk {
    const struct cfg_schema *s;
    const struct ch_json5_doc *doc; /* borrowed, may be NULL: no positions */
    struct ch_config_errors *errs;
    char pat[CFG_MAX_PATTERN];
    char disp[MAX_DISPLAY];
    int rc; /* CH_ENOMEM once an error could not be recorded */
};

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* " (line L:C)" or "" when the position is unknown. */
static void where(char *out, size_t n, int line, int col)
{
    if (line > 0)
        snprintf(out, n, " (line %d:%d)", line, col);
    else
        out[0] = '\0';
}

/* Position of the value (parent, key/index); root when parent is NULL. */
static void value_where(const struct walk *w, const json_t *parent, const char *key, size_t index, const json_t *v,
                        char *out, size_t n)
{
    int line = 0, col = 0;

    if (parent)
        ch_json5_doc_child_pos(w->doc, parent, key, index, &line, &col);
    else
        ch_json5_doc_pos(w->doc, v, &line, &col);
    where(out, n, line, col);
}

#define problem(w, ...)                                                                                                \
    do {                                                                                                               \
        if (cfg_errors_add((w)->errs, __VA_ARGS__))                                                                    \
            (w)->rc = CH_ENOMEM;                                                                                       \
    } while (0)

/* Append ".key" / "[i]" to both paths; returns the old lengths to restore. */
static bool push(struct walk *w, const char *pat_seg, const char *disp_seg, bool sep, size_t *plen, size_t *dlen)
{
    size_t pl = strlen(w->pat), dl = strlen(w->disp);
    int n;

    *plen = pl;
    *dlen = dl;
    n = snprintf(w->pat + pl, sizeof(w->pat) - pl, "%s%s", sep && pl ? "." : "", pat_seg);
    if (n < 0 || (size_t)n >= sizeof(w->pat) - pl) {
        w->pat[pl] = '\0';
        return false; /* longer than any row: cannot match */
    }
    /* A display path too long for the buffer is cut; it is only for humans. */
    snprintf(w->disp + dl, sizeof(w->disp) - dl, "%s%s", sep && dl ? "." : "", disp_seg);
    return true;
}

static void pop(struct walk *w, size_t plen, size_t dlen)
{
    w->pat[plen] = '\0';
    w->disp[dlen] = '\0';
}

static void check_value(struct walk *w, const struct cfg_row *row, const json_t *v, const json_t *parent,
                        const char *key, size_t index);

/* True once the error list is full; the first time, it records that the
 * walk stopped (cfg_errors_add turns the 101st message into that note). */
static bool stop(struct walk *w)
{
    if (!cfg_errors_full(w->errs))
        return false;
    problem(w, "stopped");
    return true;
}

static bool ignored_key(const char *k)
{
    return !strncmp(k, "x-", 2) || !strcmp(k, "$schema");
}

static void check_object(struct walk *w, const json_t *obj)
{
    const char *k;
    json_t *v;
    char at[40];
    size_t plen, dlen;

    json_object_foreach((json_t *)obj, k, v)
    {
        const struct cfg_row *row;
        int line, col;

        if (stop(w))
            return;
        if (ignored_key(k))
            continue;
        /* A key holding pattern syntax could otherwise spell a row's path. */
        if (strpbrk(k, ".[]*") == NULL && push(w, k, k, true, &plen, &dlen)) {
            row = cfg_schema_find(w->s, w->pat);
            if (row || cfg_schema_has_children(w->s, w->pat)) {
                check_value(w, row, v, obj, k, 0);
                pop(w, plen, dlen);
                continue;
            }
            pop(w, plen, dlen);
        }
        ch_json5_doc_key_pos(w->doc, obj, k, &line, &col);
        where(at, sizeof(at), line, col);
        problem(w, "unknown key '%s%s%s'%s", w->disp, w->disp[0] ? "." : "", k, at);
    }
}

/* Keys flagged required in the object at the current pattern. */
static void check_required(struct walk *w, const json_t *obj, const json_t *parent, const char *key, size_t index)
{
    size_t n = strlen(w->pat);
    char at[40];

    for (size_t r = 0; r < w->s->count; r++) {
        const struct cfg_row *row = &w->s->rows[r];
        const char *name;
        const json_t *v;

        /* Direct children only: "<pat>.<name>" with no further segment. */
        if (!(row->flags & CFG_REQUIRED) || strncmp(row->path, w->pat, n) || (n && row->path[n] != '.'))
            continue;
        name = row->path + (n ? n + 1 : 0);
        if (strpbrk(name, ".["))
            continue;
        v = json_object_get(obj, name);
        if (!v) {
            value_where(w, parent, key, index, obj, at, sizeof(at));
            problem(w, "%s%s%s: required key missing%s", w->disp, n ? "." : "", name, at);
        } else if (json_is_string(v) && json_string_length(v) == 0) {
            value_where(w, obj, name, 0, v, at, sizeof(at));
            problem(w, "%s%s%s: must not be empty%s", w->disp, n ? "." : "", name, at);
        }
    }
}

/* "a, b, c" from "a|b|c", for messages. */
static void enum_list(const char *values, char *out, size_t n)
{
    size_t k = 0;

    for (; *values && k + 3 < n; values++) {
        if (*values == '|') {
            out[k++] = ',';
            out[k++] = ' ';
        } else {
            out[k++] = *values;
        }
    }
    out[k] = '\0';
}

static void check_string(struct walk *w, const struct cfg_row *row, const char *s, const char *at)
{
    char why[96];

    if (row->type == CFG_ENUM || (row->type == CFG_STRINGS && row->values)) {
        if (!cfg_enum_has(row->values, s)) {
            char allowed[160];

            enum_list(row->values, allowed, sizeof(allowed));
            if (row->flags & CFG_SECRET)
                problem(w, "%s: value not allowed (allowed: %s)%s", w->disp, allowed, at);
            else
                problem(w, "%s: '%.64s' is not allowed (allowed: %s)%s", w->disp, s, allowed, at);
        }
        return;
    }
    if (row->check && row->check(s, why, sizeof(why)))
        problem(w, "%s: %s%s", w->disp, why, at);
}

static void out_of_range(struct walk *w, const struct cfg_row *row, const char *num, const char *at)
{
    const char *unit = row->unit && strcmp(row->unit, "count") ? row->unit : "";

    problem(w, "%s: %s is out of range [%lld, %lld]%s%s%s", w->disp, num, (long long)row->min, (long long)row->max,
            unit[0] ? " " : "", unit, at);
}

/* Integers stay integers: a double would print INT64_MAX as 9.2e+18. */
static void check_range_int(struct walk *w, const struct cfg_row *row, int64_t v, const char *at)
{
    char num[32];

    if (v >= row->min && v <= row->max)
        return;
    snprintf(num, sizeof(num), "%lld", (long long)v);
    out_of_range(w, row, num, at);
}

static void check_range(struct walk *w, const struct cfg_row *row, double v, const char *at)
{
    char num[32];

    if (v >= (double)row->min && v <= (double)row->max)
        return;
    snprintf(num, sizeof(num), "%.17g", v);
    out_of_range(w, row, num, at);
}

static void check_elements(struct walk *w, const struct cfg_row *row, const json_t *arr)
{
    size_t i, plen, dlen;
    json_t *el;
    char seg[32], at[40];
    const struct cfg_row *sub;

    json_array_foreach(arr, i, el)
    {
        if (stop(w))
            return;
        snprintf(seg, sizeof(seg), "[%zu]", i);
        if (!push(w, "[]", seg, false, &plen, &dlen))
            return; /* cannot happen: array rows are short */
        value_where(w, arr, NULL, i, el, at, sizeof(at));
        if (row->type == CFG_STRINGS) {
            if (!json_is_string(el))
                problem(w, "%s: expected string, got %s%s", w->disp, json_kind(el), at);
            else
                check_string(w, row, json_string_value(el), at);
        } else {
            /* Objects: "<path>[]" may have a row of its own, or only key rows. */
            sub = cfg_schema_find(w->s, w->pat);
            check_value(w, sub, el, arr, NULL, i);
        }
        pop(w, plen, dlen);
    }
}

static void check_map(struct walk *w, const json_t *obj)
{
    const struct cfg_row *sub;
    const char *k;
    json_t *v;
    size_t plen, dlen;

    if (!push(w, "*", "", true, &plen, &dlen))
        return;
    sub = cfg_schema_find(w->s, w->pat);
    if (!sub && !cfg_schema_has_children(w->s, w->pat)) {
        pop(w, plen, dlen);
        return; /* free-form values */
    }
    pop(w, plen, dlen);
    json_object_foreach((json_t *)obj, k, v)
    {
        if (stop(w))
            return;
        push(w, "*", k, true, &plen, &dlen);
        check_value(w, sub, v, obj, k, 0);
        pop(w, plen, dlen);
    }
}

static void check_value(struct walk *w, const struct cfg_row *row, const json_t *v, const json_t *parent,
                        const char *key, size_t index)
{
    enum cfg_type t = row ? row->type : CFG_OBJECT;
    const char *name = w->disp[0] ? w->disp : "top level";
    uint64_t bytes;
    int64_t ms;
    char at[40];

    value_where(w, parent, key, index, v, at, sizeof(at));
    switch (t) {
    case CFG_OBJECT:
    case CFG_MAP:
        if (!json_is_object(v))
            break;
        if (t == CFG_MAP)
            check_map(w, v);
        else {
            /* Missing keys first: they belong at the object's opening brace. */
            check_required(w, v, parent, key, index);
            check_object(w, v);
        }
        return;
    case CFG_STRING:
    case CFG_ENUM:
        if (!json_is_string(v))
            break;
        check_string(w, row, json_string_value(v), at);
        return;
    case CFG_INT:
        if (!json_is_integer(v))
            break;
        check_range_int(w, row, (int64_t)json_integer_value(v), at);
        return;
    case CFG_NUMBER:
        if (!json_is_number(v))
            break;
        check_range(w, row, json_number_value(v), at);
        return;
    case CFG_BOOL:
        if (!json_is_boolean(v))
            break;
        return;
    case CFG_STRINGS:
    case CFG_OBJECTS:
        if (!json_is_array(v))
            break;
        check_elements(w, row, v);
        return;
    case CFG_SIZE:
        if (json_is_integer(v)) {
            check_range_int(w, row, (int64_t)json_integer_value(v), at);
        } else if (json_is_string(v)) {
            if (ch_parse_size(json_string_value(v), &bytes))
                problem(w, "%s: '%.64s' is not a size (write e.g. 512KB, 1MB, 2GB or bytes)%s", name,
                        json_string_value(v), at);
            else
                check_range_int(w, row, (int64_t)bytes, at); /* parse caps at 9e18 */
        } else {
            problem(w, "%s: expected size (\"1MB\" or an integer), got %s%s", name, json_kind(v), at);
        }
        return;
    case CFG_DURATION: {
        /* A bare number is days where the row says so (unit "d", OpenClaw's
         * defaultUnit); elsewhere it is refused as ambiguous. */
        bool days = row->unit && !strcmp(row->unit, "d");

        if (!json_is_string(v) && !(days && json_is_number(v)))
            break;
        if (days ? ch_config_duration_value(v, &ms) : ch_parse_duration_ms(json_string_value(v), &ms))
            problem(w, "%s: %s%.64s%s is not a duration (write e.g. 500ms, 30s, 5m, 12h, 7d%s)%s", name,
                    json_is_string(v) ? "'" : "", json_is_string(v) ? json_string_value(v) : "a negative number",
                    json_is_string(v) ? "'" : "", days ? ", or a number of days" : "", at);
        else if (days && (ms < row->min || ms > row->max))
            problem(w, "%s: %.1f days is out of range [%lld, %lld] days%s", name, (double)ms / 86400000.0,
                    (long long)(row->min / 86400000), (long long)(row->max / 86400000), at);
        else
            check_range_int(w, row, ms, at);
        return;
    }
    }
    if (t == CFG_ENUM) {
        char allowed[160];

        enum_list(row->values, allowed, sizeof(allowed));
        problem(w, "%s: expected string (one of: %s), got %s%s", name, allowed, json_kind(v), at);
        return;
    }
    problem(w, "%s: expected %s, got %s%s", name, cfg_type_name(t), json_kind(v), at);
}

int cfg_validate(const struct cfg_schema *s, const json_t *root, const struct ch_json5_doc *doc,
                 struct ch_config_errors *errs)
{
    struct walk w;
    size_t before = errs->count;

    memset(&w, 0, sizeof(w));
    w.s = s;
    w.doc = doc;
    w.errs = errs;
    check_value(&w, NULL, root, NULL, NULL, 0);
    if (w.rc)
        return w.rc;
    return errs->count > before ? CH_EINVAL : 0;
}
