/*
 * fake_upstream.h: a tiny scripted HTTP/1.1 upstream for the LLM client
 * tests, on 127.0.0.1 with blocking sockets in its own threads (one
 * acceptor, one thread per connection), so the loop under test stays the
 * only thing on the test's thread.
 *
 * Each request takes the next scripted response, whatever its path, and
 * is recorded: method, path, the key it carried (x-api-key,
 * Authorization or x-goog-api-key, whichever is present) and its body.
 * Responses are sent whole (Content-Length), as a chunked SSE stream one
 * event at a time, cut off (the connection closes mid-body), stalled
 * (part of the body, then silence until the client goes away), or after a
 * delay.  Scaffolding uses libc malloc, so chela's allocator counts only
 * the code under test.
 */
#ifndef CH_FAKE_UPSTREAM_H
#define CH_FAKE_UPSTREAM_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum fu_mode {
    FU_WHOLE,     /* Content-Length, all at once */
    FU_SSE,       /* chunked, one "\n\n"-terminated event per chunk, delay_ms apart */
    FU_DROP,      /* claims more than it sends: `cut` body bytes, then close */
    FU_STALL,     /* chunked: `cut` body bytes, then nothing until the client leaves */
    FU_SLOW_HEAD, /* delay_ms of silence, then FU_WHOLE */
};

struct fu_resp {
    int status;
    const char *headers; /* extra header lines, each ending in \r\n; may be NULL */
    const char *body;    /* fu_push copies it */
    enum fu_mode mode;
    int delay_ms;
    size_t cut; /* FU_DROP / FU_STALL: body bytes sent first */
};

struct fu_req {
    char method[8];
    char path[256];
    char key[160];
    char *body; /* malloc'd, NUL-terminated */
};

#define FU_MAX 512 /* responses and requests per test */

struct fu {
    int lfd, port;
    pthread_t acceptor;
    pthread_mutex_t mu;
    struct fu_resp script[FU_MAX];
    size_t nscript, next;
    struct fu_req reqs[FU_MAX];
    size_t nreqs;
    pthread_t conns[FU_MAX];
    size_t nconns;
    bool stop;
};

struct fu_conn {
    struct fu *fu;
    int fd;
};

static bool fu_stopping(struct fu *fu)
{
    bool s;

    pthread_mutex_lock(&fu->mu);
    s = fu->stop;
    pthread_mutex_unlock(&fu->mu);
    return s;
}

static bool fu_send(int fd, const char *p, size_t n)
{
    ssize_t w;

    while (n) {
        w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static bool fu_sendf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fu_sendf(int fd, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return n > 0 && fu_send(fd, buf, (size_t)n);
}

/* Sleep ms in small steps; false when the server stops or the peer left. */
static bool fu_wait(struct fu *fu, int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char c;

    while (ms > 0) {
        int step = ms < 20 ? ms : 20;
        if (fu_stopping(fu))
            return false;
        if (poll(&p, 1, step) > 0 && recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) <= 0)
            return false; /* closed by the client */
        ms -= step;
    }
    return true;
}

static const char *fu_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
    }
}

static bool fu_chunk(int fd, const char *p, size_t n)
{
    return fu_sendf(fd, "%zx\r\n", n) && fu_send(fd, p, n) && fu_send(fd, "\r\n", 2);
}

/* Send one response; false when the connection must close. */
static bool fu_respond(struct fu *fu, int fd, const struct fu_resp *r)
{
    const char *body = r->body ? r->body : "";
    const char *ctype = r->mode == FU_WHOLE || r->mode == FU_SLOW_HEAD ? "application/json" : "text/event-stream";
    size_t len = strlen(body), cut = r->cut && r->cut < len ? r->cut : len;
    const char *p, *end;

    if (r->mode == FU_SLOW_HEAD && !fu_wait(fu, fd, r->delay_ms))
        return false;
    if (!fu_sendf(fd, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s", r->status, fu_reason(r->status), ctype,
                  r->headers ? r->headers : ""))
        return false;
    switch (r->mode) {
    case FU_WHOLE:
    case FU_SLOW_HEAD: return fu_sendf(fd, "Content-Length: %zu\r\n\r\n", len) && fu_send(fd, body, len);
    case FU_SSE:
        if (!fu_sendf(fd, "Transfer-Encoding: chunked\r\n\r\n"))
            return false;
        for (p = body; *p; p = end) {
            end = strstr(p, "\n\n");
            end = end ? end + 2 : p + strlen(p);
            if (!fu_chunk(fd, p, (size_t)(end - p)))
                return false;
            if (r->delay_ms && *end && !fu_wait(fu, fd, r->delay_ms))
                return false;
        }
        return fu_send(fd, "0\r\n\r\n", 5);
    case FU_DROP:
        fu_sendf(fd, "Content-Length: %zu\r\n\r\n", len + 1000);
        fu_send(fd, body, cut);
        return false;
    case FU_STALL:
        if (fu_sendf(fd, "Transfer-Encoding: chunked\r\n\r\n") && (!cut || fu_chunk(fd, body, cut)))
            while (fu_wait(fu, fd, 1000))
                ;
        return false;
    }
    return false;
}

/* One request: head, then Content-Length bytes of body.  false at EOF. */
static bool fu_read_request(struct fu *fu, int fd, struct fu_req *out)
{
    static const char *const key_headers[] = {"x-api-key", "authorization", "x-goog-api-key"};
    char *buf = malloc(1 << 20), *hend = NULL, *line, *colon;
    size_t have = 0, need = 0, i;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ssize_t n;

    memset(out, 0, sizeof(*out));
    while (!hend || have < need) {
        if (fu_stopping(fu) || have >= (1 << 20) - 1) {
            free(buf);
            return false;
        }
        if (poll(&p, 1, 20) <= 0)
            continue;
        n = recv(fd, buf + have, (1 << 20) - 1 - have, 0);
        if (n <= 0) {
            free(buf);
            return false;
        }
        have += (size_t)n;
        buf[have] = '\0';
        if (!hend && (hend = strstr(buf, "\r\n\r\n")) != NULL) {
            need = (size_t)(hend - buf) + 4;
            for (line = strstr(buf, "\r\n") + 2; line < hend; line = strstr(line, "\r\n") + 2) {
                colon = strchr(line, ':');
                if (!colon || colon > hend)
                    break;
                if (!strncasecmp(line, "content-length:", 15))
                    need += strtoul(colon + 1, NULL, 10);
                for (i = 0; i < 3; i++)
                    if ((size_t)(colon - line) == strlen(key_headers[i]) &&
                        !strncasecmp(line, key_headers[i], strlen(key_headers[i])))
                        sscanf(colon + 1, " %159[^\r]", out->key);
            }
        }
    }
    sscanf(buf, "%7s %255s", out->method, out->path);
    out->body = strdup(hend + 4);
    free(buf);
    return true;
}

static void *fu_conn_main(void *arg)
{
    struct fu_conn *c = arg;
    struct fu *fu = c->fu;
    struct fu_resp r, none = {500, NULL, "{\"error\":{\"message\":\"no scripted response\"}}", FU_WHOLE, 0, 0};
    struct fu_req q;

    while (fu_read_request(fu, c->fd, &q)) {
        pthread_mutex_lock(&fu->mu);
        if (fu->nreqs < FU_MAX)
            fu->reqs[fu->nreqs++] = q;
        else
            free(q.body);
        r = fu->next < fu->nscript ? fu->script[fu->next++] : none;
        pthread_mutex_unlock(&fu->mu);
        if (!fu_respond(fu, c->fd, &r))
            break;
    }
    shutdown(c->fd, SHUT_RDWR);
    close(c->fd);
    free(c);
    return NULL;
}

static void *fu_accept_main(void *arg)
{
    struct fu *fu = arg;
    struct pollfd p = {.fd = fu->lfd, .events = POLLIN};
    struct fu_conn *c;
    int fd;

    while (!fu_stopping(fu)) {
        if (poll(&p, 1, 20) <= 0)
            continue;
        fd = accept(fu->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        /* Head and body go out in separate writes: without this, Nagle
         * and the client's delayed ACK add 40 ms to every response. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
        c = malloc(sizeof(*c));
        c->fu = fu;
        c->fd = fd;
        pthread_mutex_lock(&fu->mu);
        if (fu->nconns < FU_MAX && pthread_create(&fu->conns[fu->nconns], NULL, fu_conn_main, c) == 0) {
            fu->nconns++;
        } else {
            close(fd);
            free(c);
        }
        pthread_mutex_unlock(&fu->mu);
    }
    return NULL;
}

static void fu_start(struct fu *fu)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int one = 1;

    memset(fu, 0, sizeof(*fu));
    pthread_mutex_init(&fu->mu, NULL);
    fu->lfd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(fu->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (fu->lfd < 0 || bind(fu->lfd, (struct sockaddr *)&a, sizeof(a)) || listen(fu->lfd, 64) ||
        getsockname(fu->lfd, (struct sockaddr *)&a, &len))
        abort();
    fu->port = ntohs(a.sin_port);
    if (pthread_create(&fu->acceptor, NULL, fu_accept_main, fu))
        abort();
}

/* Queue a response.  Its body is copied: a connection thread may still be
 * sending it after the test that queued it has freed its own. */
static void fu_push(struct fu *fu, struct fu_resp r)
{
    r.body = r.body ? strdup(r.body) : NULL;
    pthread_mutex_lock(&fu->mu);
    if (fu->nscript < FU_MAX)
        fu->script[fu->nscript++] = r;
    else
        free((char *)r.body);
    pthread_mutex_unlock(&fu->mu);
}

/* Scripted responses not served yet. */
static size_t fu_pending(struct fu *fu)
{
    size_t n;

    pthread_mutex_lock(&fu->mu);
    n = fu->nscript - fu->next;
    pthread_mutex_unlock(&fu->mu);
    return n;
}

static size_t fu_count(struct fu *fu)
{
    size_t n;

    pthread_mutex_lock(&fu->mu);
    n = fu->nreqs;
    pthread_mutex_unlock(&fu->mu);
    return n;
}

/* Copy of request i (the body stays owned by fu). */
static struct fu_req fu_get(struct fu *fu, size_t i)
{
    struct fu_req q = {0};

    pthread_mutex_lock(&fu->mu);
    if (i < fu->nreqs)
        q = fu->reqs[i];
    pthread_mutex_unlock(&fu->mu);
    return q;
}

static void fu_stop(struct fu *fu)
{
    size_t i, n;

    pthread_mutex_lock(&fu->mu);
    fu->stop = true;
    pthread_mutex_unlock(&fu->mu);
    pthread_join(fu->acceptor, NULL);
    pthread_mutex_lock(&fu->mu);
    n = fu->nconns;
    pthread_mutex_unlock(&fu->mu);
    for (i = 0; i < n; i++)
        pthread_join(fu->conns[i], NULL);
    close(fu->lfd);
    for (i = 0; i < fu->nreqs; i++)
        free(fu->reqs[i].body);
    for (i = 0; i < fu->nscript; i++)
        free((char *)fu->script[i].body);
    pthread_mutex_destroy(&fu->mu);
}

/* The whole file under tests/unit/data (malloc'd). */
static char *fu_data(const char *rel)
{
    char path[512];
    FILE *f;
    char *p;
    long n;

    snprintf(path, sizeof(path), "tests/unit/data/%s", rel);
    f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    p = malloc((size_t)n + 1);
    if (fread(p, 1, (size_t)n, f) != (size_t)n)
        n = 0;
    p[n] = '\0';
    fclose(f);
    return p;
}

#endif
