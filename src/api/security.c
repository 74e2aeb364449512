/*
 * security.c: the IP allowlist (api.security.allowedIPs, every route) and
 * CORS (api.security.cors).  A preflight from a listed origin gets the
 * allowed methods and headers; any other origin gets no
 * Access-Control-Allow-Origin at all, so browsers refuse it.
 */
#include <string.h>

#include "api/internal.h"

static char *join_strings(const json_t *arr, const char *fallback)
{
    struct ch_buf b;
    const json_t *v;
    size_t i;

    ch_buf_init(&b, 4096);
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v))
            continue;
        if (b.len)
            ch_buf_append_str(&b, ", ");
        ch_buf_append_str(&b, json_string_value(v));
    }
    if (!b.len)
        ch_buf_append_str(&b, fallback);
    return ch_buf_detach(&b, NULL);
}

int ch_security_init(struct ch_api *a, struct ch_error *err)
{
    struct ch_security *s = &a->sec;
    const json_t *ips = ch_config_get(a->cfg, "api.security.allowedIPs");
    const json_t *origins = ch_config_get(a->cfg, "api.security.cors.origins");
    const json_t *v;
    size_t i;
    int rc;

    memset(s, 0, sizeof(*s));
    if (json_array_size(ips)) {
        s->allow = ch_calloc(json_array_size(ips), sizeof(*s->allow));
        if (!s->allow)
            return CH_ENOMEM;
        json_array_foreach(ips, i, v)
        {
            rc = ch_cidr_parse(json_string_value(v), &s->allow[s->allow_count], err);
            if (rc)
                return rc;
            s->allow_count++;
        }
    }
    s->cors_on = ch_config_bool(a->cfg, "api.security.cors.enabled", false);
    if (json_array_size(origins)) {
        s->origins = ch_calloc(json_array_size(origins), sizeof(char *));
        if (!s->origins)
            return CH_ENOMEM;
        json_array_foreach(origins, i, v)
        {
            s->origins[s->origin_count] = ch_strdup(json_string_value(v));
            if (!s->origins[s->origin_count])
                return CH_ENOMEM;
            s->origin_count++;
        }
    }
    s->cors_methods = join_strings(ch_config_get(a->cfg, "api.security.cors.methods"), "GET, POST, DELETE");
    s->cors_headers = join_strings(ch_config_get(a->cfg, "api.security.cors.headers"),
                                   "Authorization, Content-Type, X-Request-Id, x-openclaw-token");
    s->cors_max_age = ch_config_int(a->cfg, "api.security.cors.maxAgeSeconds", 600);
    if (!s->cors_methods || !s->cors_headers)
        return CH_ENOMEM;
    return 0;
}

void ch_security_release(struct ch_security *s)
{
    for (size_t i = 0; i < s->origin_count; i++)
        ch_free(s->origins[i]);
    ch_free(s->origins);
    ch_free(s->allow);
    ch_free(s->cors_methods);
    ch_free(s->cors_headers);
    memset(s, 0, sizeof(*s));
}

int ch_security_check_ip(struct ch_api *a, struct ch_http_req *r)
{
    if (!a->sec.allow_count || ch_cidr_list_match(a->sec.allow, a->sec.allow_count, (struct sockaddr *)&r->peer))
        return 0;
    ch_log_warn("refused %s: not in api.security.allowedIPs", r->remote_addr);
    ch_http_respond_error(r, 403, "forbidden_ip", "this address (%s) is not in api.security.allowedIPs",
                          r->remote_addr);
    return CH_EPERM;
}

static const char *listed_origin(struct ch_api *a, const struct ch_http_req *r)
{
    const struct ch_str *o = ch_http_req_header(r, "origin");

    if (!o || !a->sec.cors_on)
        return NULL;
    for (size_t i = 0; i < a->sec.origin_count; i++)
        if (ch_str_eq_cstr(*o, a->sec.origins[i]) || !strcmp(a->sec.origins[i], "*"))
            return a->sec.origins[i];
    return NULL;
}

int ch_security_preflight(struct ch_api *a, struct ch_http_req *r)
{
    const struct ch_str *o = ch_http_req_header(r, "origin");
    const char *ok;
    char age[24], *origin;

    if (!o || !ch_http_req_header(r, "access-control-request-method"))
        return CH_ENOTFOUND;
    ok = listed_origin(a, r);
    if (!ok) {
        ch_http_respond_error(r, 403, "cors_origin_denied", "this origin is not listed in api.security.cors.origins");
        return 0;
    }
    origin = ch_str_dup(*o);
    if (!origin) {
        ch_http_respond_error(r, 500, "internal", "out of memory");
        return 0;
    }
    snprintf(age, sizeof(age), "%lld", (long long)a->sec.cors_max_age);
    ch_http_add_header(r, "Access-Control-Allow-Origin", strcmp(ok, "*") ? origin : "*");
    ch_http_add_header(r, "Access-Control-Allow-Methods", a->sec.cors_methods);
    ch_http_add_header(r, "Access-Control-Allow-Headers", a->sec.cors_headers);
    ch_http_add_header(r, "Access-Control-Max-Age", age);
    ch_http_add_header(r, "Vary", "Origin");
    ch_free(origin);
    ch_http_respond(r, 204, NULL, NULL, 0);
    return 0;
}

void ch_security_cors_headers(struct ch_api *a, struct ch_http_req *r)
{
    const char *ok = listed_origin(a, r);
    char *origin;

    if (!ok)
        return;
    origin = ch_str_dup(*ch_http_req_header(r, "origin"));
    if (!origin)
        return;
    ch_http_add_header(r, "Access-Control-Allow-Origin", strcmp(ok, "*") ? origin : "*");
    ch_http_add_header(r, "Vary", "Origin");
    ch_free(origin);
}
