/*
 * json5.c: the JSON5 grammar (spec.json5.org 1.0.0) on top of json5_lex.c,
 * building jansson values and a table of where each value and key starts.
 *
 * Recursive descent: value -> object | array | string | number | literal,
 * with depth capped at CH_JSON5_MAX_DEPTH so the C stack stays bounded.
 * Member names are copied into one block the document owns (entries hold
 * offsets until parsing ends, since the block may move while it grows), so
 * positions stay valid even if the caller later edits the tree.  Once the
 * whole text parsed, the table is sorted twice (by value, by parent+key) so
 * lookups are binary searches even for a 4 MiB file.
 */
#include <stdlib.h>
#include <string.h>

#include "config/json5_int.h"

static int parse_value(struct j5 *p, json_t **out);

static int pos_push(struct j5 *p, const struct ch_json5_pos *e)
{
    struct ch_json5_doc *d = p->doc;

    if (d->pos_count == d->pos_cap) {
        size_t ncap = d->pos_cap ? d->pos_cap * 2 : 64;
        struct ch_json5_pos *np = ch_realloc(d->pos, ncap * sizeof(*np));

        if (!np)
            return j5_fail_at(p, CH_ENOMEM, p->line, p->col, p->i, "out of memory");
        d->pos = np;
        d->pos_cap = ncap;
    }
    d->pos[d->pos_count++] = *e;
    return 0;
}

static int oom(struct j5 *p)
{
    return j5_fail_at(p, CH_ENOMEM, p->line, p->col, p->i, "out of memory");
}

/* Keys and strings in messages: cut long ones so the message stays readable. */
static const char *clip(const char *s, char *buf, size_t n)
{
    if (strlen(s) < n)
        return s;
    memcpy(buf, s, n - 4);
    memcpy(buf + n - 4, "...", 4);
    return buf;
}

static int parse_object(struct j5 *p, json_t **out)
{
    struct ch_json5_pos e;
    json_t *obj, *child;
    char *key = NULL;
    char clipped[48], what[48];
    size_t key_off;
    int rc = 0;

    j5_advance(p, 1); /* '{' */
    obj = json_object();
    if (!obj)
        return oom(p);
    for (;;) {
        memset(&e, 0, sizeof(e));
        if ((rc = j5_skip_space(p)))
            goto out;
        if (p->i < p->len && p->s[p->i] == '}') {
            j5_advance(p, 1);
            break;
        }
        e.key_line = p->line;
        e.key_column = p->col;
        key_off = p->i;
        if (p->i < p->len && (p->s[p->i] == '"' || p->s[p->i] == '\''))
            rc = j5_string(p);
        else if (j5_at_ident_start(p))
            rc = j5_identifier(p);
        else {
            j5_describe(p, what, sizeof(what));
            rc = j5_fail(p, "expected a key or '}', got %s", what);
        }
        if (rc)
            goto out;
        key = ch_strdup(p->tmp.data ? p->tmp.data : "");
        if (!key) {
            rc = oom(p);
            goto out;
        }
        /* Stricter than JSON5 (last wins): a repeated key is almost always a mistake. */
        if (json_object_get(obj, key)) {
            rc = j5_fail_at(p, CH_EINVAL, e.key_line, e.key_column, key_off, "duplicate key '%s'",
                            clip(key, clipped, sizeof(clipped)));
            goto out;
        }
        if ((rc = j5_skip_space(p)))
            goto out;
        if (p->i >= p->len || p->s[p->i] != ':') {
            j5_describe(p, what, sizeof(what));
            rc = j5_fail(p, "expected ':' after key '%s', got %s", clip(key, clipped, sizeof(clipped)), what);
            goto out;
        }
        j5_advance(p, 1);
        if ((rc = j5_skip_space(p)))
            goto out;
        e.line = p->line;
        e.column = p->col;
        if ((rc = parse_value(p, &child)))
            goto out;
        if (json_object_set_new(obj, key, child)) { /* steals child even on failure */
            rc = oom(p);
            goto out;
        }
        e.value = child;
        e.parent = obj;
        /* Until index_positions() fixes it up, `index` holds the offset of
         * the name in p->keys (a member's index is otherwise 0). */
        e.index = p->keys.len;
        rc = ch_buf_append(&p->keys, key, strlen(key) + 1);
        ch_free(key);
        key = NULL;
        if (rc) {
            rc = j5_fail_at(p, rc, p->line, p->col, p->i, "%s", ch_strerror(rc));
            goto out;
        }
        if ((rc = pos_push(p, &e)))
            goto out;
        if ((rc = j5_skip_space(p)))
            goto out;
        if (p->i < p->len && p->s[p->i] == ',') {
            j5_advance(p, 1);
            continue; /* a trailing comma is fine: the loop then sees '}' */
        }
        if (p->i < p->len && p->s[p->i] == '}') {
            j5_advance(p, 1);
            break;
        }
        j5_describe(p, what, sizeof(what));
        rc = j5_fail(p, "expected ',' or '}' after object member, got %s", what);
        goto out;
    }
out:
    ch_free(key);
    if (rc) {
        json_decref(obj);
        return rc;
    }
    *out = obj;
    return 0;
}

static int parse_array(struct j5 *p, json_t **out)
{
    struct ch_json5_pos e;
    json_t *arr, *child;
    char what[48];
    int rc = 0;

    j5_advance(p, 1); /* '[' */
    arr = json_array();
    if (!arr)
        return oom(p);
    for (;;) {
        memset(&e, 0, sizeof(e));
        if ((rc = j5_skip_space(p)))
            goto out;
        if (p->i < p->len && p->s[p->i] == ']') {
            j5_advance(p, 1);
            break;
        }
        e.line = p->line;
        e.column = p->col;
        if ((rc = parse_value(p, &child)))
            goto out;
        if (json_array_append_new(arr, child)) {
            rc = oom(p);
            goto out;
        }
        /* Recorded by (array, index) too: jansson shares one json_t for every
         * true, false and null, so only the parent can locate those. */
        e.value = child;
        e.parent = arr;
        e.index = json_array_size(arr) - 1;
        if ((rc = pos_push(p, &e)))
            goto out;
        if ((rc = j5_skip_space(p)))
            goto out;
        if (p->i < p->len && p->s[p->i] == ',') {
            j5_advance(p, 1);
            continue;
        }
        if (p->i < p->len && p->s[p->i] == ']') {
            j5_advance(p, 1);
            break;
        }
        j5_describe(p, what, sizeof(what));
        rc = j5_fail(p, "expected ',' or ']' after array element, got %s", what);
        goto out;
    }
out:
    if (rc) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return 0;
}

static int parse_string_value(struct j5 *p, json_t **out)
{
    int line = p->line, col = p->col, rc;
    size_t off = p->i, n;
    const char *s;
    json_t *v;

    if ((rc = j5_string(p)))
        return rc;
    s = p->tmp.data ? p->tmp.data : "";
    n = p->tmp.len;
    if (p->substitute_env && (rc = j5_substitute(p, line, col, off, &s, &n)))
        return rc;
    /* Both the decoder and the substitution checked UTF-8 and NULs, so the
     * unchecked constructor is safe and spares a second UTF-8 pass. */
    v = json_stringn_nocheck(s, n);
    if (!v)
        return oom(p);
    *out = v;
    return 0;
}

/* true, false, null; anything else unquoted is a mistake worth naming. */
static int parse_literal(struct j5 *p, json_t **out)
{
    static const struct {
        const char *word;
        json_t *(*make)(void);
    } lits[] = {{"true", json_true}, {"false", json_false}, {"null", json_null}};
    int line = p->line, col = p->col, rc;
    size_t off = p->i, k;
    char clipped[40];

    if ((rc = j5_identifier(p)))
        return rc;
    for (k = 0; k < CH_ARRAY_SIZE(lits); k++) {
        /* Escapes are not allowed in literals: the word must be spelled out. */
        if (!strcmp(p->tmp.data, lits[k].word) && p->i - off == strlen(lits[k].word)) {
            *out = lits[k].make();
            return 0;
        }
    }
    return j5_fail_at(p, CH_EINVAL, line, col, off,
                      "unexpected word '%s' (strings must be quoted; literals are true, false "
                      "and null)",
                      clip(p->tmp.data, clipped, sizeof(clipped)));
}

static int parse_value(struct j5 *p, json_t **out)
{
    char what[48];
    unsigned char c;
    int rc;

    if (p->i >= p->len)
        return j5_fail(p, "unexpected end of input, expected a value");
    c = p->s[p->i];
    if (c == '{' || c == '[') {
        /* Depth bounds the recursion, hence the C stack. */
        if (p->depth >= CH_JSON5_MAX_DEPTH)
            return j5_fail(p, "nesting deeper than %d levels", CH_JSON5_MAX_DEPTH);
        p->depth++;
        rc = c == '{' ? parse_object(p, out) : parse_array(p, out);
        p->depth--;
        return rc;
    }
    if (c == '"' || c == '\'')
        return parse_string_value(p, out);
    if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.')
        return j5_number(p, out);
    if (c == 'I' && p->len - p->i >= 8 && !memcmp(p->s + p->i, "Infinity", 8))
        return j5_number(p, out);
    if (c == 'N' && p->len - p->i >= 3 && !memcmp(p->s + p->i, "NaN", 3))
        return j5_number(p, out);
    if (j5_at_ident_start(p))
        return parse_literal(p, out);
    j5_describe(p, what, sizeof(what));
    return j5_fail(p, "unexpected %s, expected a value", what);
}

/* Pointers compared as integers: relational operators on pointers into
 * different objects are undefined in C, uintptr_t comparison is not. */
static int cmp_value(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const struct ch_json5_pos *)a)->value;
    uintptr_t y = (uintptr_t)((const struct ch_json5_pos *)b)->value;

    return x < y ? -1 : x > y;
}

/* Order by parent, then key (objects) or index (arrays). */
static int cmp_child(const struct ch_json5_pos *x, const struct ch_json5_pos *y)
{
    if (x->parent != y->parent)
        return (uintptr_t)x->parent < (uintptr_t)y->parent ? -1 : 1;
    if (x->key && y->key)
        return strcmp(x->key, y->key);
    if (x->key || y->key)
        return x->key ? 1 : -1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int cmp_child_ptr(const void *a, const void *b)
{
    return cmp_child(*(const struct ch_json5_pos *const *)a, *(const struct ch_json5_pos *const *)b);
}

static int index_positions(struct j5 *p)
{
    struct ch_json5_doc *d = p->doc;
    size_t k, n = 0;

    /* No members, no block (detach would allocate an empty string). */
    d->key_text = p->keys.data ? ch_buf_detach(&p->keys, NULL) : NULL;
    for (k = 0; k < d->pos_count; k++) {
        if (d->pos[k].key_line) {
            d->pos[k].key = d->key_text + d->pos[k].index;
            d->pos[k].index = 0;
        }
    }
    qsort(d->pos, d->pos_count, sizeof(*d->pos), cmp_value);
    d->by_parent = ch_malloc((d->pos_count ? d->pos_count : 1) * sizeof(*d->by_parent));
    if (!d->by_parent)
        return oom(p);
    for (k = 0; k < d->pos_count; k++)
        if (d->pos[k].parent)
            d->by_parent[n++] = &d->pos[k];
    qsort(d->by_parent, n, sizeof(*d->by_parent), cmp_child_ptr);
    d->by_parent_count = n;
    return 0;
}

int ch_json5_parse(const char *text, size_t len, bool substitute_env, struct ch_json5_doc *doc, struct ch_error *err)
{
    struct ch_json5_doc d;
    struct ch_json5_pos root_pos;
    struct j5 p;
    json_t *root = NULL;
    char what[48];
    int rc;

    memset(&d, 0, sizeof(d));
    memset(doc, 0, sizeof(*doc));
    memset(&p, 0, sizeof(p));
    if (err)
        memset(err, 0, sizeof(*err));
    p.s = (const unsigned char *)(text ? text : "");
    p.len = text ? len : 0;
    p.line = 1;
    p.col = 1;
    p.substitute_env = substitute_env;
    p.err = err;
    p.doc = &d;
    /* A decoded string is never longer than the input that spelled it. */
    ch_buf_init(&p.tmp, CH_JSON5_MAX_INPUT);
    ch_buf_init(&p.env, CH_JSON5_MAX_SUBST);
    /* Names plus their NULs: never more than twice the input. */
    ch_buf_init(&p.keys, 2 * (size_t)CH_JSON5_MAX_INPUT);
    /* Refuse oversized input before touching it: the cap bounds every
     * buffer below (strings, names, positions) by a multiple of it. */
    if (len > CH_JSON5_MAX_INPUT) {
        rc = j5_fail_at(&p, CH_E_TOO_LARGE, 0, 0, 0, "input is %zu bytes, over the %u MiB cap", len,
                        CH_JSON5_MAX_INPUT >> 20);
        goto out;
    }
    if ((rc = j5_skip_space(&p)))
        goto out;
    if (p.i >= p.len) {
        rc = j5_fail(&p, "empty document, expected a value");
        goto out;
    }
    /* A leading BOM (U+FEFF) was skipped above: JSON5 counts it as space. */
    memset(&root_pos, 0, sizeof(root_pos));
    root_pos.line = p.line;
    root_pos.column = p.col;
    if ((rc = parse_value(&p, &root)))
        goto out;
    root_pos.value = root;
    if ((rc = pos_push(&p, &root_pos)))
        goto out;
    if ((rc = j5_skip_space(&p)))
        goto out;
    if (p.i < p.len) {
        j5_describe(&p, what, sizeof(what));
        rc = j5_fail(&p, "unexpected %s after the top-level value", what);
        goto out;
    }
    rc = index_positions(&p);
out:
    /* The scratch buffers may hold a secret (a token, or one substituted in). */
    if (p.tmp.data)
        ch_wipe(p.tmp.data, p.tmp.cap);
    ch_buf_release(&p.tmp);
    if (p.env.data)
        ch_wipe(p.env.data, p.env.cap);
    ch_buf_release(&p.env);
    ch_buf_release(&p.keys); /* empty unless parsing failed */
    if (rc) {
        json_decref(root);
        ch_free(d.pos);
        ch_free(d.by_parent);
        ch_free(d.key_text);
        return rc;
    }
    d.root = root;
    *doc = d;
    return 0;
}

void ch_json5_doc_release(struct ch_json5_doc *doc)
{
    if (!doc)
        return;
    json_decref(doc->root);
    ch_free(doc->pos);
    ch_free(doc->by_parent);
    ch_free(doc->key_text);
    memset(doc, 0, sizeof(*doc));
}

void ch_json5_doc_pos(const struct ch_json5_doc *doc, const json_t *v, int *line, int *column)
{
    const struct ch_json5_pos *hit = NULL;
    struct ch_json5_pos key;

    *line = *column = 0;
    /* jansson shares true/false/null; a pointer cannot tell them apart. */
    if (!doc || !doc->pos || !v || json_is_boolean(v) || json_is_null(v))
        return;
    memset(&key, 0, sizeof(key));
    key.value = v;
    hit = bsearch(&key, doc->pos, doc->pos_count, sizeof(*doc->pos), cmp_value);
    if (hit) {
        *line = hit->line;
        *column = hit->column;
    }
}

static const struct ch_json5_pos *find_child(const struct ch_json5_doc *doc, const json_t *parent, const char *key,
                                             size_t index)
{
    struct ch_json5_pos probe;
    const struct ch_json5_pos *pp = &probe;
    const struct ch_json5_pos *const *hit;

    if (!doc || !doc->by_parent || !parent)
        return NULL;
    /* bsearch compares pointers to elements; the probe is one more level of
     * indirection so it has the same shape as by_parent's entries. */
    memset(&probe, 0, sizeof(probe));
    probe.parent = parent;
    probe.key = key;
    probe.index = key ? 0 : index;
    hit = bsearch(&pp, doc->by_parent, doc->by_parent_count, sizeof(*doc->by_parent), cmp_child_ptr);
    return hit ? *hit : NULL;
}

void ch_json5_doc_child_pos(const struct ch_json5_doc *doc, const json_t *parent, const char *key, size_t index,
                            int *line, int *column)
{
    const struct ch_json5_pos *e = find_child(doc, parent, key, index);

    *line = e ? e->line : 0;
    *column = e ? e->column : 0;
}

void ch_json5_doc_key_pos(const struct ch_json5_doc *doc, const json_t *parent, const char *key, int *line, int *column)
{
    const struct ch_json5_pos *e = key ? find_child(doc, parent, key, 0) : NULL;

    *line = e ? e->key_line : 0;
    *column = e ? e->key_column : 0;
}
