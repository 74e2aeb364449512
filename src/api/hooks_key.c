/*
 * hooks_key.c: the session a hook run goes to (OpenClaw's
 * resolveHookSessionKey, then its store key).
 *
 * The key is the caller's (or a mapping's rendered one), else
 * hooks.defaultSessionKey, else a fresh `hook:<uuid>`.  The checks run on
 * that key trimmed and lowercased, as OpenClaw runs its prefix check
 * (`HOOK:X` passes a `hook:` prefix, `AGENT:...` is reserved as
 * `agent:...` is); the run then goes to its canonical key, so `hook:abc`
 * and `HOOK:ABC` are one session, `agent:main:hook:abc`, which is what
 * OpenClaw stores and shows.
 */
#include <string.h>
#include <strings.h>

#include "api/hooks.h"

/* hooks.allowedSessionKeyPrefixes, compared as OpenClaw does: both sides
 * lowercased. */
static bool has_allowed_prefix(const json_t *prefixes, const char *key)
{
    size_t i;
    const json_t *p;

    if (json_array_size(prefixes) == 0)
        return true;
    json_array_foreach(prefixes, i, p)
    {
        const char *s = json_string_value(p);
        if (s && !strncasecmp(key, s, strlen(s)))
            return true;
    }
    return false;
}

static void prefixes_text(const json_t *prefixes, char *out, size_t cap)
{
    size_t i, n = 0;
    const json_t *p;

    out[0] = '\0';
    json_array_foreach(prefixes, i, p)
    {
        int w = snprintf(out + n, cap - n, "%s%s", i ? ", " : "", json_string_value(p));
        if (w < 0 || (size_t)w >= cap - n)
            break;
        n += (size_t)w;
    }
}

int ch_hooks_resolve_key(struct ch_api *a, struct ch_http_req *r, const char *requested, bool from_request,
                         struct ch_hook_in *in)
{
    struct ch_hooks *h = a->hooks;
    char list[512], uuid[37], gen[48], canon[CH_SESSION_KEY_MAX + 1];
    const char *key;
    int rc;

    if (requested) {
        if (from_request && !h->allow_request_key) {
            ch_hooks_refuse(a, r, 400, CH_HOOK_R_SESSION_KEY,
                            "sessionKey is disabled for external /hooks/agent payloads; set "
                            "hooks.allowRequestSessionKey=true to enable");
            return CH_EINVAL;
        }
        if (!ch_hooks_key_ok(requested)) {
            ch_hooks_refuse(a, r, 400, CH_HOOK_R_SESSION_KEY,
                            "sessionKey must be 1-%d printable characters without spaces", CH_STORE_MAX_KEY_BYTES);
            return CH_EINVAL;
        }
        /* OpenClaw's own sessions (agent:, cron:, subagent:, acp:) are not
         * a webhook sender's to write into, in any case. */
        if (ch_api_session_key_reserved(requested)) {
            ch_hooks_refuse(a, r, 400, CH_HOOK_R_SESSION_KEY,
                            "sessionKey uses a reserved prefix (agent:, cron:, subagent:, acp:)");
            return CH_EINVAL;
        }
        key = requested;
    } else if (h->default_key) {
        key = h->default_key; /* checked when the config was read */
    } else {
        ch_uuid4(uuid);
        snprintf(gen, sizeof(gen), "hook:%s", uuid);
        key = gen;
    }
    if (!has_allowed_prefix(h->prefixes, key)) {
        prefixes_text(h->prefixes, list, sizeof(list));
        ch_hooks_refuse(a, r, 400, CH_HOOK_R_SESSION_KEY, "sessionKey must start with one of: %s", list);
        return CH_EINVAL;
    }
    /* Not reserved, so never malformed: only too long once in agent:main:. */
    if ((rc = ch_api_session_key(key, canon)) != 0) {
        ch_hooks_refuse(a, r, 400, CH_HOOK_R_SESSION_KEY, "sessionKey is longer than %d bytes as agent:main:<key>",
                        CH_SESSION_KEY_MAX);
        return CH_EINVAL;
    }
    in->session_key = ch_strdup(canon);
    return in->session_key ? 0 : CH_ENOMEM;
}
