/*
 * checks.c: value checks that schema rows attach to strings: listen
 * addresses, CIDR blocks, browser origins and header names.  They only
 * decide "well formed or not" and explain why; matching addresses against
 * CIDRs is the net layer's job.  Each returns 0 or CH_EINVAL with a short
 * reason in `why` that quotes the value (rows holding secrets have none).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "config/internal.h"

/* Longest textual IPv6 address with a zone-less embedded IPv4 is 45 chars. */
#define MAX_ADDR_TEXT 64

static bool is_ipv4(const char *s)
{
    struct in_addr a;

    return inet_pton(AF_INET, s, &a) == 1;
}

static bool is_ipv6(const char *s)
{
    struct in6_addr a;

    return inet_pton(AF_INET6, s, &a) == 1;
}

int cfg_check_bind(const char *s, char *why, size_t whylen)
{
    if (!strcmp(s, "loopback") || !strcmp(s, "lan") || !strcmp(s, "localhost") || is_ipv4(s) || is_ipv6(s))
        return 0;
    snprintf(why, whylen, "'%.40s' is not loopback, lan, localhost or an IP address", s);
    return CH_EINVAL;
}

int cfg_check_cidr(const char *s, char *why, size_t whylen)
{
    char addr[MAX_ADDR_TEXT];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    uint64_t prefix = 0;
    unsigned max_prefix;

    if (alen == 0 || alen >= sizeof(addr))
        goto bad;
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    if (is_ipv4(addr))
        max_prefix = 32;
    else if (is_ipv6(addr))
        max_prefix = 128;
    else
        goto bad;
    if (!slash)
        return 0; /* a bare address is a /32 or /128 */
    /* ch_str_to_u64 refuses an empty string, signs and junk such as "/8x". */
    if (ch_str_to_u64(ch_str_from(slash + 1), max_prefix, &prefix) || strlen(slash + 1) > 3) {
        snprintf(why, whylen, "'%.50s': prefix length must be 0..%u", s, max_prefix);
        return CH_EINVAL;
    }
    return 0;
bad:
    snprintf(why, whylen, "'%.50s' is not an IPv4/IPv6 address or CIDR block", s);
    return CH_EINVAL;
}

/* RFC 9110 tchar. */
/*
 * The configured system prompt shares a call's 1 MiB system prompt with the
 * workspace's AGENTS.md (64 KiB at most) and each request's own
 * instructions, so it gets most of it but not all: past that every run's
 * prompt would be cut or refused, which the operator should hear at load.
 */
int cfg_check_system_prompt(const char *s, char *why, size_t whylen)
{
    size_t n = strlen(s);

    if (n <= CFG_MAX_SYSTEM_PROMPT_BYTES)
        return 0;
    snprintf(why, whylen, "is %zu bytes; at most %d", n, CFG_MAX_SYSTEM_PROMPT_BYTES);
    return CH_EINVAL;
}

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

int cfg_check_header_name(const char *s, char *why, size_t whylen)
{
    const unsigned char *p = (const unsigned char *)s;

    if (!*p)
        goto bad;
    for (; *p; p++)
        if (!is_tchar(*p))
            goto bad;
    return 0;
bad:
    snprintf(why, whylen, "'%.50s' is not a valid header name", s);
    return CH_EINVAL;
}

/*
 * An origin as browsers send it (RFC 6454): scheme "://" host [":" port],
 * nothing after.  The host is a name, an IPv4 address or a [bracketed]
 * IPv6 address; a trailing slash is the usual mistake, so it is named.
 */
int cfg_check_origin(const char *s, char *why, size_t whylen)
{
    const char *host, *end, *p;
    size_t hlen;

    if (!strncmp(s, "http://", 7))
        host = s + 7;
    else if (!strncmp(s, "https://", 8))
        host = s + 8;
    else {
        snprintf(why, whylen, "'%.50s' is not an origin: it must start with http:// or https://", s);
        return CH_EINVAL;
    }
    if (*host == '[') {
        end = strchr(host, ']');
        if (!end)
            goto bad;
        end++;
    } else {
        end = host + strcspn(host, ":/?#");
    }
    hlen = (size_t)(end - host);
    if (hlen == 0)
        goto bad;
    for (p = host; p < end; p++)
        if (!(is_tchar((unsigned char)*p) || *p == '[' || *p == ']' || *p == ':') || *p == '*')
            goto bad;
    if (*end == ':') {
        const char *digits = end + 1;
        size_t nd = strspn(digits, "0123456789");
        uint64_t port;

        if (nd == 0 || nd > 5 || ch_str_to_u64((struct ch_str){digits, nd}, 65535, &port) || port == 0)
            goto bad;
        end = digits + nd;
    }
    if (*end == '/') {
        snprintf(why, whylen, "'%.50s' is not an origin: remove the path or trailing '/'", s);
        return CH_EINVAL;
    }
    if (*end)
        goto bad;
    return 0;
bad:
    snprintf(why, whylen, "'%.50s' is not an origin (scheme://host[:port])", s);
    return CH_EINVAL;
}

int cfg_check_cors_origin(const char *s, char *why, size_t whylen)
{
    if (!strcmp(s, "*"))
        return 0;
    return cfg_check_origin(s, why, whylen);
}
