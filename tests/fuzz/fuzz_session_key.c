/*
 * fuzz_session_key.c: libFuzzer driver for core/session_key.c, OpenClaw's
 * canonical session key.
 *
 * Every surface canonicalizes the key a client sends and the store keeps
 * the result, which later lookups canonicalize again: so a canonical key
 * must be its own canonical form (else a session would be unreachable by
 * the very key the gateway showed), fit CH_SESSION_KEY_MAX, and live in an
 * agent's namespace or be one of the two special stores.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char a[CH_SESSION_KEY_MAX + 1], b[CH_SESSION_KEY_MAX + 1];
    size_t n;
    int rc;

    if (memchr(data, '\0', size)) /* every surface refuses control bytes in a key first */
        return 0;
    rc = ch_session_key_canon((const char *)data, size, a, sizeof(a));
    if (rc != 0) {
        if (rc != CH_EINVAL && rc != CH_E_TOO_LARGE)
            abort();
        return 0;
    }
    n = strlen(a);
    if (n == 0 || n > CH_SESSION_KEY_MAX)
        abort();
    if (strncmp(a, "agent:", 6) && strcmp(a, "global") && strcmp(a, "unknown"))
        abort();
    if (ch_session_key_canon(a, n, b, sizeof(b)) != 0 || strcmp(a, b))
        abort();
    return 0;
}
