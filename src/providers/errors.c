/*
 * errors.c: provider failures sorted into the six classes the gateway
 * reports (rate_limit, timeout, context_length, auth, refusal, unknown),
 * whether a retry can help, and the delay a server asked for.
 *
 * Inputs are the HTTP status plus the provider's error body, whose shapes
 * are {"type":"error","error":{type,message}} (Anthropic),
 * {"error":{message,type,code}} (OpenAI and most compatible servers) and
 * {"error":{code,message,status,details[]}} (Google).  Retry-After follows
 * RFC 9110 section 10.2.3; retry-after-ms is the OpenAI/Azure extension.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "providers/internal.h"

#define MAX_RETRY_AFTER_MS (24LL * 3600 * 1000) /* a server asking for more is wrong */

const char *ch_llm_stop_name(enum ch_llm_stop s)
{
    static const char *const names[] = {"end_turn", "tool_use", "max_tokens", "stop_sequence", "refusal", "error"};
    return (unsigned)s < CH_ARRAY_SIZE(names) ? names[s] : "error";
}

const char *ch_llm_err_name(enum ch_llm_err e)
{
    static const char *const names[] = {"rate_limit", "timeout", "context_length", "auth", "refusal", "unknown"};
    return (unsigned)e < CH_ARRAY_SIZE(names) ? names[e] : "unknown";
}

bool ch_llm_stop_is_failure(enum ch_llm_stop s, enum ch_llm_err *err)
{
    if (s != CH_LLM_STOP_REFUSAL && s != CH_LLM_STOP_ERROR)
        return false;
    if (err)
        *err = s == CH_LLM_STOP_REFUSAL ? CH_LLM_ERR_REFUSAL : CH_LLM_ERR_UNKNOWN;
    return true;
}

/* ASCII case-insensitive substring search. */
static bool contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle), i;

    if (!hay)
        return false;
    for (; *hay; hay++) {
        for (i = 0; i < n && hay[i]; i++)
            if (tolower((unsigned char)hay[i]) != tolower((unsigned char)needle[i]))
                break;
        if (i == n)
            return true;
    }
    return false;
}

static bool any_ci(const char *const *words, size_t n, const char *a, const char *b, const char *c)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (contains_ci(a, words[i]) || contains_ci(b, words[i]) || contains_ci(c, words[i]))
            return true;
    return false;
}

static bool says_context(const char *type, const char *code, const char *msg)
{
    static const char *const words[] = {
        "context_length",    "context length",     "maximum context",
        "context window",    "prompt is too long", "too long",
        "too many tokens",   "request_too_large",  "exceeds the maximum number of tokens",
        "input token count",
    };
    return any_ci(words, CH_ARRAY_SIZE(words), type, code, msg);
}

void llm_classify_fields(int status, const char *type, const char *code, const char *message,
                         struct ch_llm_failure *out)
{
    static const char *const rate[] = {"rate_limit", "rate limit", "resource_exhausted", "too many requests", "quota"};
    static const char *const auth[] = {"authentication",  "permission", "unauthenticated",   "invalid_api_key",
                                       "invalid api key", "billing",    "api key not valid", "permission_denied"};
    static const char *const badkey[] = {"api key not valid", "api_key_invalid", "invalid api key", "invalid_api_key"};
    static const char *const busy[] = {"overloaded", "unavailable", "api_error", "internal", "server_error"};
    static const char *const slow[] = {"timeout", "timed out", "deadline_exceeded"};
    static const char *const refused[] = {"content_policy", "content_filter", "safety"};

    out->err = CH_LLM_ERR_UNKNOWN;
    out->retryable = false;
    out->retry_after_ms = -1;
    if (message && message[0])
        snprintf(out->message, sizeof(out->message), "%s", message);
    else if (status)
        snprintf(out->message, sizeof(out->message), "HTTP %d%s%s", status, type ? ": " : "", type ? type : "");
    else
        snprintf(out->message, sizeof(out->message), "%s", type ? type : "provider error");
    ch_str_utf8_fix(out->message); /* the provider's words, cut at a byte */

    if (status == 429 || (status == 0 && any_ci(rate, CH_ARRAY_SIZE(rate), type, code, NULL))) {
        out->err = CH_LLM_ERR_RATE_LIMIT;
        /* OpenAI's insufficient_quota is a 429 that waiting does not fix. */
        out->retryable = !contains_ci(code, "insufficient_quota") && !contains_ci(type, "insufficient_quota");
    } else if (status == 401 || status == 403 || status == 402 ||
               (status == 0 && any_ci(auth, CH_ARRAY_SIZE(auth), type, code, NULL)) ||
               /* Google answers a bad key with 400 INVALID_ARGUMENT. */
               (status == 400 && any_ci(badkey, CH_ARRAY_SIZE(badkey), message, code, NULL))) {
        out->err = CH_LLM_ERR_AUTH;
    } else if (status == 408 || status == 504 || status == 524 || any_ci(slow, CH_ARRAY_SIZE(slow), type, code, NULL)) {
        out->err = CH_LLM_ERR_TIMEOUT;
        out->retryable = true;
    } else if ((status == 400 || status == 413 || status == 422 || status == 0) && says_context(type, code, message)) {
        out->err = CH_LLM_ERR_CONTEXT_LENGTH;
    } else if ((status == 400 || status == 0) && any_ci(refused, CH_ARRAY_SIZE(refused), type, code, NULL)) {
        out->err = CH_LLM_ERR_REFUSAL;
    } else if (status >= 500 || (status == 0 && any_ci(busy, CH_ARRAY_SIZE(busy), type, code, NULL))) {
        out->retryable = true; /* overloaded (529), 500, 502, 503 */
    }
}

/* Google's RetryInfo: details[] {"@type": ".../google.rpc.RetryInfo",
 * "retryDelay": "37s" or "1.5s"}. */
static int64_t google_retry_delay(json_t *err)
{
    json_t *details = json_object_get(err, "details"), *d;
    const char *delay;
    double secs;
    char unit[4];
    size_t i;

    json_array_foreach(details, i, d)
    {
        if (!contains_ci(llm_jstr(d, "@type"), "RetryInfo"))
            continue;
        delay = llm_jstr(d, "retryDelay");
        if (delay && sscanf(delay, "%lf%3s", &secs, unit) == 2 && strcmp(unit, "s") == 0 && secs >= 0 &&
            secs * 1000 <= (double)MAX_RETRY_AFTER_MS)
            return (int64_t)(secs * 1000 + 0.5);
    }
    return -1;
}

void llm_classify_json(int status, json_t *root, struct ch_llm_failure *out)
{
    json_t *e = json_object_get(root, "error");
    const char *type, *code = NULL, *msg;
    char codebuf[24];
    json_t *jc;

    if (json_is_string(e)) { /* {"error": "text"}: Ollama and friends */
        llm_classify_fields(status, NULL, NULL, json_string_value(e), out);
        return;
    }
    if (!json_is_object(e))
        e = root;
    type = llm_jstr(e, "type");
    if (!type)
        type = llm_jstr(e, "status"); /* Google: "RESOURCE_EXHAUSTED" */
    jc = json_object_get(e, "code");
    if (json_is_string(jc)) {
        code = json_string_value(jc);
    } else if (json_is_integer(jc)) {
        snprintf(codebuf, sizeof(codebuf), "%lld", (long long)json_integer_value(jc));
        code = codebuf;
        /* An in-stream Google error carries its HTTP status as the code. */
        if (status == 0)
            status = (int)json_integer_value(jc);
    }
    msg = llm_jstr(e, "message");
    llm_classify_fields(status, type, code, msg, out);
    out->retry_after_ms = google_retry_delay(e);
}

void ch_llm_classify_http(enum ch_llm_api api, int status, const char *body, size_t body_len,
                          struct ch_llm_failure *out)
{
    json_t *j = NULL;
    char text[200];
    size_t n;

    (void)api; /* the three shapes do not collide, so one reader serves all */
    if (body && body_len)
        j = json_loadb(body, body_len, 0, NULL);
    if (json_is_object(j)) {
        llm_classify_json(status, j, out);
        json_decref(j);
        return;
    }
    json_decref(j);
    /* Not JSON (a proxy's HTML page, a transport message): use its start. */
    n = body ? CH_MIN(body_len, sizeof(text) - 1) : 0;
    memcpy(text, body ? body : "", n);
    text[n] = '\0';
    llm_classify_fields(status, NULL, NULL, n ? text : NULL, out);
    if (status == 0)
        out->retryable = true; /* no response at all: a connection error */
}

void ch_llm_classify_transport(int rc, const char *detail, struct ch_llm_failure *out)
{
    llm_classify_fields(0, NULL, NULL, detail && detail[0] ? detail : ch_strerror(rc), out);
    out->err = rc == CH_ETIMEDOUT ? CH_LLM_ERR_TIMEOUT : CH_LLM_ERR_UNKNOWN;
    out->retryable = true;
}

/* ------------------------------------------------------------------ */
/* Retry-After                                                           */
/* ------------------------------------------------------------------ */

static int month_index(const char *m)
{
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int i;

    for (i = 0; i < 12; i++)
        if (strcmp(m, months[i]) == 0)
            return i;
    return -1;
}

/* IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", obsolete RFC 850
 * "Sunday, 06-Nov-94 08:49:37 GMT" and asctime "Sun Nov  6 08:49:37 1994"
 * (RFC 9110 section 5.6.7 requires recipients to accept all three). */
static int parse_http_date(struct ch_str in, int64_t *out_ms)
{
    struct tm tm = {0};
    char s[64], wd[16], mon[4], tz[4] = "GMT";
    int day, year, h, mi, sec, n = 0;
    time_t t;

    if (in.len >= sizeof(s))
        return CH_EINVAL;
    memcpy(s, in.p, in.len);
    s[in.len] = '\0';
    if (sscanf(s, "%15[A-Za-z], %d %3s %d %d:%d:%d %3s%n", wd, &day, mon, &year, &h, &mi, &sec, tz, &n) == 8 && n > 0)
        ; /* IMF-fixdate */
    else if (sscanf(s, "%15[A-Za-z], %d-%3[A-Za-z]-%d %d:%d:%d %3s%n", wd, &day, mon, &year, &h, &mi, &sec, tz, &n) ==
                 8 &&
             n > 0)
        year += year < 70 ? 2000 : 1900; /* RFC 850's two-digit year */
    else if (sscanf(s, "%15[A-Za-z] %3s %d %d:%d:%d %d%n", wd, mon, &day, &h, &mi, &sec, &year, &n) != 7 || n == 0)
        return CH_EINVAL;
    if (s[n] != '\0' || strcmp(tz, "GMT") != 0 || month_index(mon) < 0 || day < 1 || day > 31 || h < 0 || h > 23 ||
        mi < 0 || mi > 59 || sec < 0 || sec > 60 || year < 1970 || year > 9999)
        return CH_EINVAL;
    tm.tm_year = year - 1900;
    tm.tm_mon = month_index(mon);
    tm.tm_mday = day;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = timegm(&tm);
    if (t == (time_t)-1)
        return CH_EINVAL;
    *out_ms = (int64_t)t * 1000;
    return 0;
}

/* Non-negative decimal, optionally with a fraction ("1.5"): milliseconds
 * after scaling by `scale` (1000 for seconds, 1 for milliseconds). */
static int parse_number(const char *s, int64_t scale, int64_t *out_ms)
{
    struct ch_str v = ch_str_trim(ch_str_from(s));
    double x = 0, frac = 0.1;
    size_t i = 0;
    bool digits = false;

    for (; i < v.len && isdigit((unsigned char)v.p[i]); i++, digits = true)
        x = x * 10 + (v.p[i] - '0');
    if (i < v.len && v.p[i] == '.')
        for (i++; i < v.len && isdigit((unsigned char)v.p[i]); i++, frac /= 10, digits = true)
            x += (v.p[i] - '0') * frac;
    if (!digits || i != v.len)
        return CH_EINVAL;
    x *= (double)scale;
    *out_ms = x > (double)MAX_RETRY_AFTER_MS ? MAX_RETRY_AFTER_MS : (int64_t)(x + 0.5);
    return 0;
}

int ch_llm_retry_after(const char *retry_after, const char *retry_after_ms, int64_t now_ms, int64_t *out_ms)
{
    int64_t v, when;

    if (retry_after_ms && parse_number(retry_after_ms, 1, &v) == 0) {
        *out_ms = v;
        return 0;
    }
    if (!retry_after)
        return CH_ENOTFOUND;
    if (parse_number(retry_after, 1000, &v) == 0) {
        *out_ms = v;
        return 0;
    }
    if (parse_http_date(ch_str_trim(ch_str_from(retry_after)), &when) == 0) {
        v = when - now_ms;
        *out_ms = v < 0 ? 0 : CH_MIN(v, MAX_RETRY_AFTER_MS);
        return 0;
    }
    return CH_ENOTFOUND;
}
