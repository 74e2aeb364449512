/*
 * json5_env.c: ${VAR} substitution inside JSON5 string values.
 *
 * "${NAME}" takes the environment variable NAME (unset is an error that
 * names it), "${NAME:-text}" falls back to text when NAME is unset or
 * empty (as in the shell), and "$${" stands for a literal "${".  It runs
 * on the decoded string, after escapes.  The output of one document is
 * capped (CH_JSON5_MAX_SUBST) so a file of many "${BIG}" cannot balloon.
 */
#include <stdlib.h>
#include <string.h>

#include "config/json5_int.h"

/* Length of a variable name at s (ASCII letters, digits, '_'; no leading digit). */
static size_t var_name_len(const char *s, size_t n)
{
    size_t k = 0;

    while (k < n && (j5_ascii_ident((unsigned char)s[k], k == 0) && s[k] != '$'))
        k++;
    return k;
}

/* Longest variable name accepted: POSIX names are short; this is a typo guard. */
#define MAX_VAR_NAME 128

int j5_substitute(struct j5 *p, int line, int col, size_t off, const char **res, size_t *reslen)
{
    const char *in = p->tmp.data ? p->tmp.data : ""; /* NULL until the first append */
    size_t n = p->tmp.len, k = 0, name_len, def_from, def_len, before;
    char name[MAX_VAR_NAME + 1];
    const char *val;
    bool has_def;
    int rc = 0;

    *res = in;
    *reslen = n;
    if (!memchr(in, '$', n))
        return 0;
    ch_buf_reset(&p->env);
    while (k < n && !rc) {
        if (in[k] == '$' && k + 2 < n && in[k + 1] == '$' && in[k + 2] == '{') {
            rc = ch_buf_append(&p->env, "${", 2); /* "$${" is the escape for "${" */
            k += 3;
            continue;
        }
        if (!(in[k] == '$' && k + 1 < n && in[k + 1] == '{')) {
            rc = ch_buf_append_char(&p->env, in[k++]);
            continue;
        }
        name_len = var_name_len(in + k + 2, n - k - 2);
        if (name_len == 0 || name_len > MAX_VAR_NAME)
            return j5_fail_at(p, CH_EINVAL, line, col, off,
                              "bad ${...} in string: expected a variable name (letters, digits, "
                              "'_'), or write $${ for a literal ${");
        memcpy(name, in + k + 2, name_len);
        name[name_len] = '\0';
        k += 2 + name_len;
        has_def = k + 1 < n && in[k] == ':' && in[k + 1] == '-';
        def_from = k + 2;
        if (has_def) {
            const char *close = memchr(in + def_from, '}', n - def_from);

            if (!close)
                return j5_fail_at(p, CH_EINVAL, line, col, off, "unterminated ${%s:-...}", name);
            def_len = (size_t)(close - (in + def_from));
            k = def_from + def_len + 1;
        } else if (k < n && in[k] == '}') {
            def_len = 0;
            k++;
        } else {
            return j5_fail_at(p, CH_EINVAL, line, col, off, "bad ${%s...}: expected '}' or ':-default}' after the name",
                              name);
        }
        val = getenv(name);
        before = p->env.len;
        if (val && (*val || !has_def))
            rc = ch_buf_append_str(&p->env, val);
        else if (has_def)
            rc = ch_buf_append(&p->env, in + def_from, def_len);
        else
            return j5_fail_at(p, CH_EINVAL, line, col, off,
                              "environment variable '%s' is not set (use ${%s:-default} for a "
                              "fallback)",
                              name, name);
        p->subst_total += p->env.len - before;
        if (p->subst_total > CH_JSON5_MAX_SUBST)
            rc = CH_E_TOO_LARGE;
    }
    if (rc == CH_E_TOO_LARGE)
        return j5_fail_at(p, rc, line, col, off, "${...} substitution produces more than %u MiB",
                          CH_JSON5_MAX_SUBST >> 20);
    if (rc)
        return j5_fail_at(p, rc, line, col, off, "%s", ch_strerror(rc));
    if (!j5_utf8_valid(p->env.data, p->env.len))
        return j5_fail_at(p, CH_EINVAL, line, col, off, "string is not valid UTF-8 after ${...} substitution");
    *res = p->env.data ? p->env.data : "";
    *reslen = p->env.len;
    return 0;
}
