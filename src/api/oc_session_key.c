/*
 * oc_session_key.c: the session key a WebSocket method names, in OpenClaw's
 * canonical form (core/session_key.c).  OpenClaw stores, looks up and emits
 * only canonical keys, so `main`, `Main` and `agent:main:main` reach one
 * session; every method taking a key goes through here before the store.
 * The refusals are the reference's: a malformed `agent:` key is
 * INVALID_REQUEST `malformed session key "<key>"` with no method prefix
 * (resolveRequestedSessionAgentInput), the key as sent, trimmed.
 */
#include <stdio.h>
#include <string.h>

#include "api/oc_internal.h"

/* The key as the client sent it, without the blanks the canonical form
 * trims: what the reference prints in its refusals. */
static size_t trimmed(const char **s)
{
    size_t n = strlen(*s);

    while (n && (**s == ' ' || **s == '\t' || **s == '\n' || **s == '\r'))
        (*s)++, n--;
    while (n && ((*s)[n - 1] == ' ' || (*s)[n - 1] == '\t' || (*s)[n - 1] == '\n' || (*s)[n - 1] == '\r'))
        n--;
    return n;
}

int ch_oc_key_canon(const char *raw, char *out, size_t cap, char *why, size_t why_cap)
{
    const char *s = raw ? raw : "";
    size_t n = trimmed(&s);
    int rc = ch_session_key_canon(s, n, out, cap);

    if (!why)
        return rc;
    if (rc == CH_EINVAL)
        /* A key that reached here is at most CH_SESSION_KEY_MAX bytes
         * trimmed (longer ones are CH_E_TOO_LARGE), so it is printed
         * whole: cutting it could split a UTF-8 sequence. */
        snprintf(why, why_cap, "malformed session key \"%.*s\"", (int)n, s);
    else if (rc)
        snprintf(why, why_cap, "session key must be at most %d bytes in its canonical form (agent:main:<key>)",
                 CH_SESSION_KEY_MAX);
    return rc;
}

bool ch_oc_req_key(struct oc_req *q, const char *raw, char *out, size_t cap)
{
    char why[CH_SESSION_KEY_MAX + 64];

    if (ch_oc_key_canon(raw, out, cap, why, sizeof(why)) == 0)
        return true;
    ch_oc_res_err(q->conn, q->id, "INVALID_REQUEST", why, NULL);
    return false;
}

struct oc_sjob *ch_oc_sjob_new_key(struct oc_req *q, ch_store_job_run_cb run, const char *param)
{
    char key[CH_SESSION_KEY_MAX + 1];
    struct oc_sjob *j;

    if (!ch_oc_req_key(q, json_string_value(json_object_get(q->params, param)), key, sizeof(key)))
        return NULL;
    if ((j = ch_oc_sjob_new(q, run)) != NULL)
        memcpy(j->key, key, sizeof(key));
    return j;
}
