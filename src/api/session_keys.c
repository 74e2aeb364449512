/*
 * session_keys.c: the session keys clients send, as every surface takes
 * them.  OpenClaw canonicalizes a key before storing or looking it up
 * (core/session_key.c), so `s1`, `S1` and `agent:main:s1` are one session;
 * chela's surfaces do the same and keep their own checks (reserved
 * namespaces) on the key as the client wrote it, trimmed and lowercased,
 * as OpenClaw runs its prefix checks.
 *
 * chela's REST API (seed 002) calls a session a conversation: its id is
 * the session key outside the `agent:main:` namespace, so a client's own
 * ids (`c-1`, `conv_<uuid>`) come back from listings as it gave them.
 */
#include <string.h>
#include <strings.h>

#include "api/internal.h"

#define MAIN_NS "agent:main:"

int ch_api_session_key(const char *raw, char out[CH_SESSION_KEY_MAX + 1])
{
    return ch_session_key_canon(raw, strlen(raw), out, CH_SESSION_KEY_MAX + 1);
}

const char *ch_api_conversation_id(const char *key)
{
    char back[CH_SESSION_KEY_MAX + 1];
    const char *rest;

    if (!key || strncmp(key, MAIN_NS, sizeof(MAIN_NS) - 1))
        return key;
    rest = key + sizeof(MAIN_NS) - 1;
    /* Only where the id names the key again: `agent:main:agent:x:y` or
     * `agent:main:global` without the namespace would be another session
     * (or none). */
    if (ch_api_session_key(rest, back) != 0 || strcmp(back, key))
        return key;
    return rest;
}

/* raw trimmed of white space starts with prefix, ASCII case ignored. */
static bool trimmed_starts_ci(const char *raw, const char *prefix)
{
    while (*raw == ' ' || *raw == '\t' || *raw == '\n' || *raw == '\r')
        raw++;
    return !strncasecmp(raw, prefix, strlen(prefix));
}

bool ch_api_session_key_reserved(const char *raw)
{
    static const char *const reserved[] = {"agent:", "cron:", "subagent:", "acp:"};

    for (size_t i = 0; i < CH_ARRAY_SIZE(reserved); i++)
        if (trimmed_starts_ci(raw, reserved[i]))
            return true;
    return false;
}

bool ch_api_session_key_internal(const char *canon)
{
    static const char *const internal[] = {"cron:", "subagent:", "acp:"};
    const char *rest = canon;

    /* OpenClaw's isSubagentSessionKey and friends: the namespace at the
     * start, or as the rest of an agent:<id>: key (canonical keys are
     * lowercase). */
    if (!strncmp(canon, "agent:", 6) && (rest = strchr(canon + 6, ':')) != NULL)
        rest++;
    for (size_t i = 0; i < CH_ARRAY_SIZE(internal); i++) {
        size_t k = strlen(internal[i]);
        if (!strncmp(canon, internal[i], k) || (rest && !strncmp(rest, internal[i], k)))
            return true;
    }
    return false;
}
