/*
 * oc_session_key.c: the session key a WebSocket method names, in OpenClaw's
 * canonical form (core/session_key.c).  OpenClaw stores, looks up and emits
 * only canonical keys, so `main`, `Main` and `agent:main:main` reach one
 * session; every method taking a key goes through here before the store.
 * The refusals are the reference's: a malformed `agent:` key is
 * INVALID_REQUEST `malformed session key "<key>"` with no method prefix
 * (resolveRequestedSessionAgentInput), the key as sent, trimmed.
 */
#include <string.h>

#include "api/oc_internal.h"

int ch_oc_key_canon(const char *raw, char *out, size_t cap, char *why, size_t why_cap)
{
    int rc = ch_session_key_canon(raw ? raw : "", raw ? strlen(raw) : 0, out, cap);

    if (rc && why)
        ch_session_key_why(rc, raw, why, why_cap);
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
