/*
 * hosts.c: who a tool may talk to, without I/O.  allowHosts patterns
 * ("host", "*.domain", with an optional ":port"), URLs parsed by libcurl's
 * own URL parser (so the host checked is the host the transfer connects
 * to: no parser differential for "http://2130706433/", "0x7f.1", "%31..."
 * or backslash tricks), and the classification of IP addresses that
 * web_fetch must not reach (RFC 6890 special-purpose registries, with the
 * IPv4 forms embedded in IPv6 judged by their IPv4 address).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/curl_dl.h"
#include "tools/internal.h"

#define MAX_PATTERN_BYTES 260
#define MAX_URL_BYTES 8192

static void lower_ascii(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

/* Canonical text of an IP literal (inet_ntop), so "0:0::1" matches "::1". */
static void canon_ip(char *host, size_t cap)
{
    uint8_t b[16];
    char tmp[INET6_ADDRSTRLEN];

    if (inet_pton(AF_INET6, host, b) == 1 && inet_ntop(AF_INET6, b, tmp, sizeof(tmp)))
        snprintf(host, cap, "%s", tmp);
}

static bool host_chars_ok(const char *h)
{
    for (; *h; h++) {
        char c = *h;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_' || c == ':'))
            return false;
    }
    return true;
}

static int parse_pattern(const char *in, struct host_pat *out, const char *setting, size_t idx, struct ch_error *err)
{
    char buf[MAX_PATTERN_BYTES + 1], *host = buf, *colon, *end;
    size_t n;
    long port = -1;

    if (!in || (n = strlen(in)) == 0 || n > MAX_PATTERN_BYTES)
        return ch_error_set(err, CH_EINVAL, "%s[%zu]: empty or longer than %d bytes", setting, idx, MAX_PATTERN_BYTES);
    if (strstr(in, "://"))
        return ch_error_set(err, CH_EINVAL, "%s[%zu]: write the host, not a URL (\"%.64s\")", setting, idx, in);
    memcpy(buf, in, n + 1);
    lower_ascii(buf);
    out->wildcard = false;
    if (!strcmp(buf, "*"))
        return ch_error_set(err, CH_EINVAL, "%s[%zu]: \"*\" would allow every host; list the hosts (or \"*.domain\")",
                            setting, idx);
    if (!strncmp(buf, "*.", 2)) {
        out->wildcard = true;
        host += 2;
    }
    if (host[0] == '[') {
        end = strchr(host, ']');
        if (!end)
            return ch_error_set(err, CH_EINVAL, "%s[%zu]: \"%s\" lacks the closing ]", setting, idx, in);
        *end = '\0';
        colon = end[1] == ':' ? end + 1 : NULL;
        if (end[1] && !colon)
            return ch_error_set(err, CH_EINVAL, "%s[%zu]: junk after ] in \"%s\"", setting, idx, in);
        host++;
    } else {
        colon = strchr(host, ':');
        if (colon && strchr(colon + 1, ':'))
            colon = NULL; /* a bare IPv6 address: no port */
    }
    if (colon) {
        *colon = '\0';
        port = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || *end || port < 1 || port > 65535)
            return ch_error_set(err, CH_EINVAL, "%s[%zu]: bad port in \"%s\"", setting, idx, in);
    }
    n = strlen(host);
    if (n && host[n - 1] == '.')
        host[--n] = '\0';
    if (!n || !host_chars_ok(host) || strchr(host, '*'))
        return ch_error_set(err, CH_EINVAL, "%s[%zu]: \"%s\" is not a host, *.domain, host:port or [IPv6]", setting,
                            idx, in);
    canon_ip(host, sizeof(buf) - (size_t)(host - buf));
    out->host = ch_strdup(host);
    out->port = (int)port;
    return out->host ? 0 : ch_error_set(err, CH_ENOMEM, "out of memory");
}

int host_list_init(struct host_list *l, const char *const *v, size_t n, const char *setting, struct ch_error *err)
{
    int rc = 0;

    l->v = NULL;
    l->n = 0;
    if (n == 0)
        return 0;
    if (n > CH_TOOLS_MAX_ALLOW_HOSTS)
        return ch_error_set(err, CH_EINVAL, "%s: more than %d entries", setting, CH_TOOLS_MAX_ALLOW_HOSTS);
    l->v = ch_calloc(n, sizeof(*l->v));
    if (!l->v)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = parse_pattern(v[i], &l->v[i], setting, i, err);
        if (rc == 0)
            l->n++;
    }
    if (rc)
        host_list_release(l);
    return rc;
}

void host_list_release(struct host_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        ch_free(l->v[i].host);
    ch_free(l->v);
    l->v = NULL;
    l->n = 0;
}

bool host_list_match(const struct host_list *l, const char *host, int port)
{
    size_t hl = strlen(host);

    for (size_t i = 0; i < l->n; i++) {
        const struct host_pat *p = &l->v[i];
        size_t dl = strlen(p->host);

        if (p->port >= 0 && p->port != port)
            continue;
        if (!p->wildcard) {
            if (!strcasecmp(host, p->host))
                return true;
            continue;
        }
        /* "*.example.com": a label, a dot, then the domain; not the apex. */
        if (hl > dl + 1 && host[hl - dl - 1] == '.' && !strcasecmp(host + hl - dl, p->host))
            return true;
    }
    return false;
}

/* ------------------------------------------------------------------ */
/* URLs                                                                 */
/* ------------------------------------------------------------------ */

static char *url_part(CURLU *h, CURLUPart what, unsigned flags)
{
    char *s = NULL, *copy;

    if (curl_url_get(h, what, &s, flags) != CURLUE_OK || !s)
        return NULL;
    copy = ch_strdup(s);
    curl_free(s);
    return copy;
}

void tool_url_release(struct tool_url *u)
{
    ch_free(u->url);
    ch_free(u->host);
    memset(u, 0, sizeof(*u));
}

int tool_url_parse(const char *base, const char *url, struct tool_url *out, char *msg, size_t msgcap)
{
    struct tool_url u = {0};
    struct ch_error cerr = {0};
    char *s = NULL, hostb[256], hbuf[300];
    CURLUcode uc;
    CURLU *h;
    size_t n;
    int rc = CH_EINVAL;

    if (!url || !*url || strlen(url) > MAX_URL_BYTES) {
        snprintf(msg, msgcap, "the url is empty or longer than %d bytes", MAX_URL_BYTES);
        return CH_EINVAL;
    }
    /* The URL parser is libcurl's, loaded at first use (tools run on the
     * loop thread, the one thread that calls libcurl). */
    if (ch_curl_load(&cerr) != 0) {
        snprintf(msg, msgcap, "%s", cerr.msg);
        return CH_EIO;
    }
    h = curl_url();
    if (!h)
        return CH_ENOMEM;
    if (base && curl_url_set(h, CURLUPART_URL, base, 0) != CURLUE_OK) {
        snprintf(msg, msgcap, "bad base url");
        goto out;
    }
    uc = curl_url_set(h, CURLUPART_URL, url, 0);
    if (uc != CURLUE_OK) {
        if (uc == CURLUE_OUT_OF_MEMORY)
            rc = CH_ENOMEM;
        snprintf(msg, msgcap, "\"%.200s\" is not a valid absolute http(s) URL (%s)", url, curl_url_strerror(uc));
        goto out;
    }
    s = url_part(h, CURLUPART_SCHEME, 0);
    if (!s || (strcmp(s, "http") && strcmp(s, "https"))) {
        snprintf(msg, msgcap, "only http and https URLs are allowed, not \"%.20s:\"", s ? s : "?");
        goto out;
    }
    snprintf(u.scheme, sizeof(u.scheme), "%s", s);
    ch_free(s);
    if ((s = url_part(h, CURLUPART_USER, 0)) != NULL || (s = url_part(h, CURLUPART_PASSWORD, 0)) != NULL) {
        snprintf(msg, msgcap,
                 "credentials in the URL are not allowed; send an Authorization "
                 "header instead");
        goto out;
    }
    if ((s = url_part(h, CURLUPART_ZONEID, 0)) != NULL) {
        snprintf(msg, msgcap, "IPv6 zone ids are not allowed in URLs");
        goto out;
    }
    s = url_part(h, CURLUPART_HOST, 0);
    n = s ? strlen(s) : 0;
    if (n >= sizeof(hostb)) {
        snprintf(msg, msgcap, "the URL's host is longer than %zu bytes", sizeof(hostb) - 1);
        goto out;
    }
    memcpy(hostb, s ? s : "", n + 1);
    ch_free(s);
    s = NULL;
    if (n >= 2 && hostb[0] == '[' && hostb[n - 1] == ']') {
        memmove(hostb, hostb + 1, n - 2);
        hostb[n -= 2] = '\0';
    }
    if (n && hostb[n - 1] == '.')
        hostb[--n] = '\0';
    if (!n) {
        snprintf(msg, msgcap, "the URL has no host");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)hostb[i] >= 0x80) {
            snprintf(msg, msgcap,
                     "non-ASCII host names are not supported; use the punycode "
                     "(xn--) form");
            goto out;
        }
    }
    lower_ascii(hostb);
    canon_ip(hostb, sizeof(hostb));
    if (inet_pton(AF_INET, hostb, u.ip) == 1)
        u.ip_family = AF_INET;
    else if (inet_pton(AF_INET6, hostb, u.ip) == 1)
        u.ip_family = AF_INET6;
    /* Write the normalised host back, so the URL transferred names exactly
     * the host that was checked (and pinned). */
    snprintf(hbuf, sizeof(hbuf), u.ip_family == AF_INET6 ? "[%s]" : "%s", hostb);
    if (curl_url_set(h, CURLUPART_HOST, hbuf, 0) != CURLUE_OK ||
        curl_url_set(h, CURLUPART_FRAGMENT, NULL, 0) != CURLUE_OK) {
        snprintf(msg, msgcap, "the URL's host \"%.100s\" is not valid", hostb);
        goto out;
    }
    u.host = ch_strdup(hostb);
    if (!u.host) {
        rc = CH_ENOMEM;
        goto out;
    }
    s = url_part(h, CURLUPART_PORT, CURLU_DEFAULT_PORT);
    u.port = s ? atoi(s) : 0;
    ch_free(s);
    s = NULL;
    u.url = url_part(h, CURLUPART_URL, 0);
    if (!u.url || u.port <= 0 || u.port > 65535) {
        rc = u.url ? CH_EINVAL : CH_ENOMEM;
        snprintf(msg, msgcap, "the URL could not be normalised");
        goto out;
    }
    rc = 0;
out:
    ch_free(s);
    curl_url_cleanup(h);
    if (rc)
        tool_url_release(&u);
    else
        *out = u;
    return rc;
}

/* ------------------------------------------------------------------ */
/* Addresses                                                            */
/* ------------------------------------------------------------------ */

static const char *v4_reason(const uint8_t *b)
{
    if (b[0] == 0)
        return "unspecified (0.0.0.0/8)";
    if (b[0] == 10 || (b[0] == 172 && (b[1] & 0xF0) == 16) || (b[0] == 192 && b[1] == 168))
        return "private";
    if (b[0] == 100 && (b[1] & 0xC0) == 64)
        return "CGNAT (shared address space)";
    if (b[0] == 127)
        return "loopback";
    if (b[0] == 169 && b[1] == 254)
        return "link-local";
    if (b[0] == 192 && b[1] == 0 && b[2] == 0)
        return "reserved (IETF protocol assignments)";
    if ((b[0] == 192 && b[1] == 0 && b[2] == 2) || (b[0] == 198 && b[1] == 51 && b[2] == 100) ||
        (b[0] == 203 && b[1] == 0 && b[2] == 113))
        return "documentation";
    if (b[0] == 192 && b[1] == 88 && b[2] == 99)
        return "reserved (6to4 relay anycast)";
    if (b[0] == 198 && (b[1] & 0xFE) == 18)
        return "reserved (benchmarking)";
    if ((b[0] & 0xF0) == 224)
        return "multicast";
    if ((b[0] & 0xF0) == 240)
        return "reserved";
    return NULL;
}

static bool zeros(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

static const char *v6_reason(const uint8_t *b)
{
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};

    if (zeros(b, 10) && b[10] == 0xff && b[11] == 0xff)
        return v4_reason(b + 12); /* ::ffff:a.b.c.d, IPv4-mapped */
    if (zeros(b, 15))
        return b[15] == 1 ? "loopback" : b[15] == 0 ? "unspecified" : "reserved (IPv4-compatible)";
    if (zeros(b, 12))
        return "reserved (IPv4-compatible)"; /* deprecated, RFC 4291 2.5.5.1 */
    if (!memcmp(b, nat64, 12))
        return v4_reason(b + 12); /* 64:ff9b::/96, NAT64 well-known prefix */
    if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && b[4] == 0 && b[5] == 1)
        return "reserved (local-use NAT64)";
    if (b[0] == 0x01 && b[1] == 0x00 && zeros(b + 2, 6))
        return "reserved (discard-only)";
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
        return "documentation";
    if (b[0] == 0x3f && b[1] == 0xff && (b[2] & 0xF0) == 0)
        return "documentation";
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] < 0x02)
        return "reserved (IETF protocol assignments, Teredo)"; /* 2001::/23 */
    if (b[0] == 0x20 && b[1] == 0x02)
        return v4_reason(b + 2); /* 6to4 carries its IPv4 address */
    if ((b[0] & 0xFE) == 0xFC)
        return "private (unique local)";
    if (b[0] == 0xFE && (b[1] & 0xC0) == 0x80)
        return "link-local";
    if (b[0] == 0xFE && (b[1] & 0xC0) == 0xC0)
        return "reserved (site-local)";
    if (b[0] == 0xFF)
        return "multicast";
    return NULL;
}

const char *addr_block_reason(int family, const uint8_t *bytes)
{
    if (family == AF_INET)
        return v4_reason(bytes);
    if (family == AF_INET6)
        return v6_reason(bytes);
    return "not an IP address";
}

const char *sockaddr_block_reason(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return v4_reason((const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr);
    if (sa->sa_family == AF_INET6)
        return v6_reason(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
    return "not an IP address";
}
