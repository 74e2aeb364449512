/*
 * json_tree.c: ch_llm_json_loadb, json_loadb(p, n, flags, err) built on
 * the non-allocating scanner (json_scan.c).  jansson's parser costs about 190
 * instructions a byte, most of it lexing; a request body of the
 * OpenAI-compatible API is parsed once per call, so the scanner validates
 * it and the tree is built from its tokens with jansson's own
 * constructors (the same calls jansson's parser makes: a duplicate key
 * replaces the earlier value in its place, keys keep their order).  What
 * the scanner declines (malformed text, a number it leaves to jansson,
 * "\u0000", deep nesting, more than TREE_MAX_TOKENS values, a duplicate
 * key under JSON_REJECT_DUPLICATES) goes to json_loadb, which parses it
 * or fails with its usual message.  Other flags go to jansson directly.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "providers/internal.h"

#define TREE_MAX_TOKENS 1024
#define STACK_TEXT 4096 /* string decoding scratch on the stack below this */
/* Every token takes at least one byte of text, so a body of at most
 * STACK_TOKENS bytes has its tokens on the stack; a larger one gets
 * min(n, TREE_MAX_TOKENS).  A fixed 20 KB array cost a large-bin malloc
 * and free (and glibc's fastbin consolidation) per call. */
#define STACK_TOKENS 256

static json_t *number(const struct llm_jdoc *d, const struct llm_jtok *t)
{
    char tmp[40], *end;
    double v;

    if (t->len >= sizeof(tmp))
        return NULL;
    memcpy(tmp, d->src + t->start, t->len);
    tmp[t->len] = '\0';
    if (t->is_int) /* at most 18 digits (the scanner's rule): no overflow */
        return json_integer((json_int_t)strtoll(tmp, NULL, 10));
    errno = 0;
    v = strtod(tmp, &end);
    /* jansson refuses an overflow ("real number overflow"); let it say so. */
    if (end != tmp + t->len || ((v == HUGE_VAL || v == -HUGE_VAL) && errno == ERANGE))
        return NULL;
    return json_real(v);
}

/* The value of token ti; buf has room for the longest string plus NUL.
 * With dups false a repeated key declines (jansson words the error). */
static json_t *build(const struct llm_jdoc *d, int ti, char *buf, bool dups)
{
    const struct llm_jtok *t = &d->toks[ti];
    json_t *v, *c;
    size_t n;
    int ci = ti + 1;

    switch (t->type) {
    case LLM_J_OBJ:
        v = json_object();
        for (uint32_t k = 0; v && k < t->count; k++) {
            int vi = ci + 1;
            /* The value first: it reuses buf, which the key then takes. */
            if ((c = build(d, vi, buf, dups)) == NULL) {
                json_decref(v);
                return NULL;
            }
            n = llm_jstr_decode(d, ci, buf);
            if (!dups && json_object_getn(v, buf, n)) {
                json_decref(c); /* a repeated key: jansson words the error */
                json_decref(v);
                return NULL;
            }
            if (json_object_setn_new_nocheck(v, buf, n, c)) { /* takes c */
                json_decref(v);
                return NULL;
            }
            ci = (int)d->toks[vi].end;
        }
        return v;
    case LLM_J_ARR:
        v = json_array();
        for (uint32_t k = 0; v && k < t->count; k++) {
            if ((c = build(d, ci, buf, dups)) == NULL || json_array_append_new(v, c)) {
                json_decref(v);
                return NULL;
            }
            ci = (int)d->toks[ci].end;
        }
        return v;
    case LLM_J_STR: n = llm_jstr_decode(d, ti, buf); return json_stringn_nocheck(buf, n);
    case LLM_J_NUM: return number(d, t);
    case LLM_J_TRUE: return json_true();
    case LLM_J_FALSE: return json_false();
    case LLM_J_NULL: return json_null();
    default: return NULL;
    }
}

json_t *ch_llm_json_loadb(const char *p, size_t n, size_t flags, json_error_t *err)
{
    struct llm_jdoc doc = {0};
    struct llm_jtok toks[STACK_TOKENS];
    char stack[STACK_TEXT], *buf = stack;
    json_t *v = NULL;

    if (flags & ~(size_t)JSON_REJECT_DUPLICATES)
        return json_loadb(p, n, flags, err);
    doc.cap = n <= STACK_TOKENS ? STACK_TOKENS : CH_MIN(n, (size_t)TREE_MAX_TOKENS);
    doc.toks = n <= STACK_TOKENS ? toks : ch_malloc(doc.cap * sizeof(*doc.toks));
    if (doc.toks && llm_jscan(&doc, p, n) == 0 && (n < sizeof(stack) || (buf = ch_malloc(n + 1)) != NULL)) {
        v = build(&doc, 0, buf, !(flags & JSON_REJECT_DUPLICATES));
        if (buf != stack)
            ch_free(buf);
    }
    if (doc.toks != toks)
        ch_free(doc.toks);
    /* Anything declined, or out of memory on the way: jansson decides. */
    if (!v)
        return json_loadb(p, n, flags, err);
    if (err) { /* as json_loadb leaves it on success (callers print it) */
        memset(err, 0, sizeof(*err));
        err->line = err->column = -1;
        err->position = (int)n; /* all of it read, to the end */
        snprintf(err->source, sizeof(err->source), "<buffer>");
    }
    return v;
}
