/*
 * addr.c: addresses without I/O.  Bind names ("loopback", "lan") to
 * literals, loopback tests, printable peer addresses, CIDR lists for the
 * IP allowlist and trusted proxies (IPv4, IPv6, and IPv4-mapped IPv6
 * peers, which a dual-stack listener reports for IPv4 clients), and the
 * per-socket TCP options.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <string.h>

#include "net/net.h"

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int ch_net_resolve_bind(const char *bind, char *out, size_t outcap, struct ch_error *err)
{
    char tmp[INET6_ADDRSTRLEN + 2];
    unsigned char bin[16];
    const char *lit = NULL;
    size_t n;

    if (!bind || !*bind)
        return ch_error_set(err, CH_EINVAL, "bind address is empty");
    if (strcmp(bind, "loopback") == 0 || strcmp(bind, "localhost") == 0) {
        lit = "127.0.0.1";
    } else if (strcmp(bind, "lan") == 0) {
        lit = "0.0.0.0";
    } else {
        n = strlen(bind);
        /* Accept "[::1]" as written in URLs. */
        if (n >= 2 && bind[0] == '[' && bind[n - 1] == ']') {
            bind++;
            n -= 2;
        }
        if (n >= sizeof(tmp))
            return ch_error_set(err, CH_EINVAL, "bind address is too long");
        memcpy(tmp, bind, n);
        tmp[n] = '\0';
        if (inet_pton(AF_INET, tmp, bin) != 1 && inet_pton(AF_INET6, tmp, bin) != 1)
            return ch_error_set(err, CH_EINVAL, "bind \"%.64s\" is not loopback, lan, localhost or an IP address", tmp);
        lit = tmp;
    }
    if (strlen(lit) >= outcap)
        return ch_error_set(err, CH_EINVAL, "bind address does not fit");
    strcpy(out, lit);
    return 0;
}

bool ch_net_is_loopback(const char *addr)
{
    struct in6_addr a6;
    struct in_addr a4;

    if (!addr)
        return false;
    if (inet_pton(AF_INET, addr, &a4) == 1)
        return ((const uint8_t *)&a4)[0] == 127;
    if (inet_pton(AF_INET6, addr, &a6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&a6))
            return true;
        return memcmp(a6.s6_addr, v4mapped_prefix, 12) == 0 && a6.s6_addr[12] == 127;
    }
    return false;
}

/* The address bytes of sa, unmapping ::ffff:a.b.c.d to IPv4.
 * Returns the family, or 0 for anything else. */
static int sockaddr_bytes(const struct sockaddr *sa, uint8_t out[16])
{
    if (!sa)
        return 0;
    if (sa->sa_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return AF_INET;
    }
    if (sa->sa_family == AF_INET6) {
        const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        if (memcmp(b, v4mapped_prefix, 12) == 0) {
            memcpy(out, b + 12, 4);
            return AF_INET;
        }
        memcpy(out, b, 16);
        return AF_INET6;
    }
    return 0;
}

bool ch_net_sockaddr_is_loopback(const struct sockaddr *sa)
{
    static const uint8_t v6loop[16] = {[15] = 1};
    uint8_t b[16];

    switch (sockaddr_bytes(sa, b)) {
    case AF_INET: return b[0] == 127;
    case AF_INET6: return memcmp(b, v6loop, 16) == 0;
    default: return false;
    }
}

void ch_net_addr_str(const struct sockaddr *sa, char *out, size_t outcap)
{
    uint8_t b[16];
    int fam;

    if (outcap == 0)
        return;
    out[0] = '\0';
    fam = sockaddr_bytes(sa, b);
    /* Mapped peers print as IPv4: that is what operators write in CIDRs. */
    if (fam == 0 || !inet_ntop(fam, b, out, (socklen_t)outcap))
        out[0] = '\0';
}

/* Strict decimal prefix length: digits only, no sign, no leading zeros. */
static int parse_prefix(const char *s, int max, int *out)
{
    int v = 0;

    if (!*s || (s[0] == '0' && s[1]))
        return CH_EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return CH_EINVAL;
        v = v * 10 + (*s - '0');
        if (v > max)
            return CH_EINVAL;
    }
    *out = v;
    return 0;
}

int ch_cidr_parse(const char *s, struct ch_cidr *out, struct ch_error *err)
{
    char addr[INET6_ADDRSTRLEN + 1];
    const char *slash;
    struct ch_cidr c;
    size_t n;
    int bytes;

    memset(&c, 0, sizeof(c));
    if (!s || !*s)
        return ch_error_set(err, CH_EINVAL, "empty CIDR");
    slash = strchr(s, '/');
    n = slash ? (size_t)(slash - s) : strlen(s);
    if (n == 0 || n >= sizeof(addr))
        return ch_error_set(err, CH_EINVAL, "\"%.64s\" is not an IP address or CIDR", s);
    memcpy(addr, s, n);
    addr[n] = '\0';
    if (inet_pton(AF_INET, addr, c.addr) == 1) {
        c.family = AF_INET;
        c.prefix = 32;
    } else if (inet_pton(AF_INET6, addr, c.addr) == 1) {
        c.family = AF_INET6;
        c.prefix = 128;
    } else {
        return ch_error_set(err, CH_EINVAL, "\"%.64s\" is not an IP address or CIDR", s);
    }
    if (slash && parse_prefix(slash + 1, c.prefix, &c.prefix) != 0)
        return ch_error_set(err, CH_EINVAL, "\"%.64s\": the prefix length must be 0-%d", s,
                            c.family == AF_INET ? 32 : 128);
    /* ::ffff:10.0.0.0/104 means 10.0.0.0/8; store it as IPv4 so it
     * matches however the peer arrives. */
    if (c.family == AF_INET6 && c.prefix >= 96 && memcmp(c.addr, v4mapped_prefix, 12) == 0) {
        memmove(c.addr, c.addr + 12, 4);
        memset(c.addr + 4, 0, 12);
        c.family = AF_INET;
        c.prefix -= 96;
    }
    /* Clear host bits, so "10.1.2.3/8" is stored as 10.0.0.0/8. */
    bytes = c.family == AF_INET ? 4 : 16;
    for (int i = 0; i < bytes; i++) {
        int keep = c.prefix - i * 8;
        if (keep <= 0)
            c.addr[i] = 0;
        else if (keep < 8)
            c.addr[i] &= (uint8_t)(0xff << (8 - keep));
    }
    *out = c;
    return 0;
}

bool ch_cidr_match(const struct ch_cidr *c, const struct sockaddr *sa)
{
    uint8_t b[16];
    int full, rest;

    if (!c || sockaddr_bytes(sa, b) != c->family)
        return false;
    full = c->prefix / 8;
    rest = c->prefix % 8;
    if (memcmp(b, c->addr, (size_t)full) != 0)
        return false;
    if (rest == 0)
        return true;
    return (b[full] & (uint8_t)(0xff << (8 - rest))) == c->addr[full];
}

bool ch_cidr_list_match(const struct ch_cidr *list, size_t n, const struct sockaddr *sa)
{
    for (size_t i = 0; i < n; i++) {
        if (ch_cidr_match(&list[i], sa))
            return true;
    }
    return false;
}

void ch_net_tune_tcp(uv_tcp_t *t)
{
    uv_os_fd_t fd;

    /* Responses are written whole, once per loop iteration: Nagle would
     * only add a delayed-ACK round trip (40 ms) to every keep-alive reply. */
    uv_tcp_nodelay(t, 1);
    /* libuv opens and accepts with SOCK_CLOEXEC already; this covers
     * sockets adopted with uv_tcp_open.  One fcntl per connection. */
    if (uv_fileno((uv_handle_t *)t, &fd) == 0) {
        int fl = fcntl(fd, F_GETFD);
        if (fl >= 0 && !(fl & FD_CLOEXEC))
            fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
    }
}
