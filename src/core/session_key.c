/*
 * session_key.c: OpenClaw's canonical session key (resolveSessionStoreKey
 * in its gateway): every key a client sends names a session in an agent's
 * namespace, `agent:<agentId>:<rest>`, lowercased, so `main`, `Main` and
 * `agent:main:main` are one session, and `s1`, `S1` and `agent:main:s1`
 * another.  OpenClaw stores, looks up and emits the canonical form; chela
 * does the same, so a client may send any of them and still meet the
 * session and the events it expects.
 *
 * Kept as the reference keeps them: `global` and `unknown` (its two
 * special stores); the case of a Signal group id (`signal:group:<id>`)
 * and of a Matrix room's tail (`matrix:channel|group:<room>`, up to a
 * `:thread:`), which are the platforms' own case-sensitive ids.  Only
 * ASCII letters are folded (JavaScript's toLowerCase folds all of Unicode;
 * keys are printable ASCII in every client seen).
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/core.h"

static bool starts_ci(const char *s, size_t n, const char *prefix)
{
    size_t k = strlen(prefix);
    return n >= k && !strncasecmp(s, prefix, k);
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

/* Marks in keep[] the bytes of s whose case the reference preserves. */
static void preserved_spans(const char *s, size_t n, bool *keep)
{
    size_t i, j, body = 0;

    /* signal:group:<id>, at the start or after a ':', anywhere */
    for (i = 0; i + 13 <= n; i++) {
        if ((i == 0 || s[i - 1] == ':') && starts_ci(s + i, n - i, "signal:group:")) {
            for (j = i + 13; j < n && s[j] != ':'; j++)
                keep[j] = true;
        }
    }
    /* matrix:channel:<tail> or matrix:group:<tail> after agent:<id>: wrappers */
    while (starts_ci(s + body, n - body, "agent:")) {
        const char *c = memchr(s + body + 6, ':', n - body - 6);
        if (!c)
            break;
        body = (size_t)(c - s) + 1;
    }
    while (body < n && s[body] == ':')
        body++;
    for (const char *m = "matrix:channel:\0matrix:group:\0"; *m; m += strlen(m) + 1) {
        size_t k = strlen(m), end = n, t;

        if (!starts_ci(s + body, n - body, m) || body + k >= n)
            continue;
        for (t = n; t-- > body + k;) /* the last ":thread:" splits the tail */
            if (t + 8 <= n && starts_ci(s + t, n - t, ":thread:")) {
                end = t;
                break;
            }
        for (j = body + k; j < n; j++)
            keep[j] = j < end || j >= end + 8;
    }
}

int ch_session_key_canon(const char *in, size_t n, char *out, size_t cap)
{
    static const char main_key[] = "agent:main:main", prefix[] = "agent:main:";
    bool keep[CH_SESSION_KEY_MAX + 1] = {false};
    size_t i, len;

    while (n && (*in == ' ' || *in == '\t' || *in == '\n' || *in == '\r'))
        in++, n--;
    while (n && (in[n - 1] == ' ' || in[n - 1] == '\t' || in[n - 1] == '\n' || in[n - 1] == '\r'))
        n--;
    if (n > CH_SESSION_KEY_MAX)
        return CH_E_TOO_LARGE;
    if (n == 0 || (n == 4 && starts_ci(in, n, "main"))) {
        if (cap < sizeof(main_key))
            return CH_E_TOO_LARGE;
        memcpy(out, main_key, sizeof(main_key));
        return 0;
    }
    if (starts_ci(in, n, "agent:")) {
        const char *c = memchr(in + 6, ':', n - 6);
        size_t id0 = 6, id1 = c ? (size_t)(c - in) : n;

        while (id0 < id1 && in[id0] == ' ')
            id0++;
        while (id1 > id0 && in[id1 - 1] == ' ')
            id1--;
        /* The reference's parse: an id, then a rest that does not start
         * with ':'; else "malformed session key". */
        if (!c || id0 == id1 || (size_t)(c - in) + 1 >= n || c[1] == ':')
            return CH_EINVAL;
        len = n;
        i = 0;
    } else if ((n == 6 && (starts_ci(in, n, "global"))) || (n == 7 && starts_ci(in, n, "unknown"))) {
        len = n;
        i = 0;
    } else if (in[0] == ':') {
        /* "agent:main::x" would be malformed: the reference stores it and
         * then refuses it as a key, chela refuses it at once. */
        return CH_EINVAL;
    } else {
        len = n + sizeof(prefix) - 1;
        i = sizeof(prefix) - 1;
    }
    if (len >= cap || len > CH_SESSION_KEY_MAX)
        return CH_E_TOO_LARGE;
    memcpy(out, prefix, i);
    preserved_spans(in, n, keep);
    for (size_t j = 0; j < n; j++)
        out[i + j] = keep[j] ? in[j] : lower(in[j]);
    out[len] = '\0';
    return 0;
}

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

void ch_session_key_why(int rc, const char *raw, char *why, size_t cap)
{
    size_t n = raw ? strlen(raw) : 0;

    while (n && blank(*raw))
        raw++, n--;
    while (n && blank(raw[n - 1]))
        n--;
    if (rc == CH_EINVAL && n <= CH_SESSION_KEY_MAX)
        /* Printed whole (at most CH_SESSION_KEY_MAX bytes): cutting it
         * could split a UTF-8 sequence. */
        snprintf(why, cap, "malformed session key \"%.*s\"", (int)n, raw);
    else
        snprintf(why, cap, "session key must be at most %d bytes in its canonical form (agent:main:<key>)",
                 CH_SESSION_KEY_MAX);
}

/*
 * Sessions a run makes for itself and no one returns to: OpenClaw's
 * "synthetic" keys, which its session maintenance deletes once stale
 * (isSyntheticSessionMaintenanceKey: hook:, cron:, subagent:, acp:,
 * acp-bridge:, node:, heartbeat, explicit:model-run-), plus the fresh
 * session of each stateless /v1 call (openai:<uuid>, openresponses:<uuid>;
 * OpenClaw archives those instead, which chela has no form for).  A
 * conversation, a channel chat, a named or user session is never one.
 */
bool ch_session_key_disposable(const char *key)
{
    static const char *const prefixes[] = {
        "hook:",   "cron:",         "subagent:", "acp:", "acp-bridge:", "node:", "explicit:model-run-",
        "openai:", "openresponses:"};
    const char *rest = key, *c;
    size_t n;

    if (!key)
        return false;
    if (!strncmp(key, "agent:", 6)) {
        if (!(c = strchr(key + 6, ':')) || c == key + 6)
            return false;
        rest = c + 1;
    }
    for (size_t i = 0; i < CH_ARRAY_SIZE(prefixes); i++)
        if (!strncmp(rest, prefixes[i], strlen(prefixes[i])) && rest[strlen(prefixes[i])])
            return true;
    n = strlen(rest);
    return !strcmp(rest, "heartbeat") || (n > 10 && !strcmp(rest + n - 10, ":heartbeat")) ||
           strstr(rest, ":heartbeat:") != NULL;
}
