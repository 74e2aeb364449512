/*
 * route.c: the route table.  A pattern is '/'-separated segments, each a
 * literal, a `:name` parameter (one non-empty segment) or, last only, `*`
 * (the rest of the path, possibly empty, slashes included).  Among the
 * routes whose pattern matches and whose methods allow the request,
 * the most specific wins, segment by segment: literal > parameter > `*`;
 * earlier routes win ties.  A path that matches only routes of other
 * methods is a 405 with their union as Allow.  GET implies HEAD.
 */
#include <string.h>

#include "http/http.h"

enum { SEG_STAR = 1, SEG_PARAM = 2, SEG_LIT = 3 };
/* Two bits per segment, most significant first: comparing the integers
 * compares specificity segment by segment. */
#define SCORE_SEGMENTS 31

static void score_add(uint64_t *score, int pos, int kind)
{
    if (pos < SCORE_SEGMENTS)
        *score |= (uint64_t)kind << (2 * (SCORE_SEGMENTS - 1 - pos));
}

/* Match pattern against path; on success fill params (up to the cap),
 * *np and *score. */
static bool pattern_match(const char *pat, struct ch_str path, struct ch_str *params, size_t *np, uint64_t *score)
{
    const char *pp, *sp, *se;
    int pos = 0;

    *np = 0;
    *score = 0;
    if (!pat || pat[0] != '/' || path.len == 0 || path.p[0] != '/')
        return false;
    pp = pat + 1;
    sp = path.p + 1;
    se = path.p + path.len;
    for (;; pos++) {
        const char *pe = strchr(pp, '/');
        size_t plen = pe ? (size_t)(pe - pp) : strlen(pp);
        const char *sq = memchr(sp, '/', (size_t)(se - sp));
        size_t slen;

        if (!pe && plen == 1 && pp[0] == '*') {
            if (*np < CH_HTTP_MAX_PARAMS)
                params[(*np)++] = (struct ch_str){sp, (size_t)(se - sp)};
            score_add(score, pos, SEG_STAR);
            return true;
        }
        if (!sq)
            sq = se;
        slen = (size_t)(sq - sp);
        if (plen > 0 && pp[0] == ':') {
            if (slen == 0)
                return false;
            if (*np < CH_HTTP_MAX_PARAMS)
                params[(*np)++] = (struct ch_str){sp, slen};
            score_add(score, pos, SEG_PARAM);
        } else {
            if (plen != slen || memcmp(pp, sp, slen) != 0)
                return false;
            score_add(score, pos, SEG_LIT);
        }
        if (!pe)
            return sq == se; /* the pattern ended: so must the path */
        if (sq == se)
            return false; /* the pattern goes on, the path does not */
        pp = pe + 1;
        sp = sq + 1;
    }
}

/* True when pattern cannot match path, decided on the literal prefix: the
 * bytes compared in step until the first difference, a parameter or `*`
 * (undecided: false), or the pattern's end (false).  A difference inside a
 * literal segment is a different segment, which pattern_match refuses too;
 * with every /api/v1/ route sharing its first segments, this keeps a match
 * from splitting each route's segments (~130 instructions a route). */
static bool cannot_match(const char *pat, struct ch_str path)
{
    for (size_t i = 0;; i++) {
        char pc = pat[i];

        if (pc == '\0' || ((pc == ':' || pc == '*') && i > 0 && pat[i - 1] == '/'))
            return false;
        if (i >= path.len || path.p[i] != pc)
            return true;
    }
}

static int match_all(const struct ch_router *rt, unsigned method, struct ch_str path, struct ch_http_req *r,
                     unsigned *allowed, const struct ch_route **winner)
{
    struct ch_str best_params[CH_HTTP_MAX_PARAMS];
    size_t best_np = 0;
    uint64_t best_score = 0;
    const struct ch_route *best = NULL;
    unsigned union_mask = 0;

    for (size_t i = 0; rt && i < rt->count; i++) {
        const struct ch_route *ro = &rt->routes[i];
        struct ch_str params[CH_HTTP_MAX_PARAMS];
        size_t np;
        uint64_t score;
        unsigned mask = ro->methods;

        if (!ro->pattern || cannot_match(ro->pattern, path) || !pattern_match(ro->pattern, path, params, &np, &score))
            continue;
        if (mask & CH_M_GET)
            mask |= CH_M_HEAD;
        union_mask |= mask;
        if (!(mask & method))
            continue;
        if (!best || score > best_score) {
            best = ro;
            best_score = score;
            best_np = np;
            memcpy(best_params, params, np * sizeof(params[0]));
        }
    }
    *winner = best;
    if (best) {
        if (r) {
            r->route = best;
            r->param_count = best_np;
            memcpy(r->params, best_params, best_np * sizeof(best_params[0]));
        }
        return CH_ROUTE_OK;
    }
    if (union_mask) {
        if (allowed)
            *allowed = union_mask;
        return CH_ROUTE_BAD_METHOD;
    }
    return CH_ROUTE_NOT_FOUND;
}

int ch_router_match(const struct ch_router *rt, unsigned method, struct ch_str path, struct ch_http_req *r,
                    unsigned *allowed)
{
    struct ch_route_memo *mo = rt ? rt->memo : NULL;
    const struct ch_route *best = NULL;
    unsigned ok_allowed = 0;
    int rc;

    if (mo && mo->path_len && mo->method == method && mo->path_len == path.len &&
        memcmp(mo->path, path.p, path.len) == 0) {
        if (mo->rc == CH_ROUTE_OK && r) {
            struct ch_str params[CH_HTTP_MAX_PARAMS];
            size_t np = 0;
            uint64_t score;

            pattern_match(mo->route->pattern, path, params, &np, &score); /* matched before: fills params */
            r->route = mo->route;
            r->param_count = np;
            memcpy(r->params, params, np * sizeof(params[0]));
        } else if (mo->rc == CH_ROUTE_BAD_METHOD && allowed) {
            *allowed = mo->allowed;
        }
        return mo->rc;
    }
    rc = match_all(rt, method, path, r, &ok_allowed, &best);
    if (rc == CH_ROUTE_BAD_METHOD && allowed)
        *allowed = ok_allowed;
    if (mo && path.len > 0 && path.len <= sizeof(mo->path)) {
        mo->method = method;
        mo->path_len = path.len;
        memcpy(mo->path, path.p, path.len);
        mo->rc = rc;
        mo->allowed = ok_allowed;
        mo->route = best;
    }
    return rc;
}

void ch_http_methods_format(unsigned mask, char *out, size_t outcap)
{
    static const struct {
        unsigned bit;
        const char *name;
    } order[] = {
        {CH_M_GET, "GET"},       {CH_M_HEAD, "HEAD"},   {CH_M_POST, "POST"},       {CH_M_PUT, "PUT"},
        {CH_M_DELETE, "DELETE"}, {CH_M_PATCH, "PATCH"}, {CH_M_OPTIONS, "OPTIONS"},
    };
    size_t len = 0;

    if (outcap == 0)
        return;
    out[0] = '\0';
    for (size_t i = 0; i < CH_ARRAY_SIZE(order); i++) {
        size_t n;
        if (!(mask & order[i].bit))
            continue;
        n = strlen(order[i].name);
        /* ", " before every name but the first; stop rather than cut one. */
        if (len + (len ? 2 : 0) + n + 1 > outcap)
            break;
        if (len) {
            memcpy(out + len, ", ", 2);
            len += 2;
        }
        memcpy(out + len, order[i].name, n);
        len += n;
        out[len] = '\0';
    }
}
