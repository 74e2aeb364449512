/*
 * time.c: clocks and date formats.  The HTTP Date header is cached per
 * second because every response carries one.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/core.h"

int64_t ch_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t ch_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t ch_mono_ms(void)
{
    return ch_mono_ns() / 1000000ull;
}

/* Per-thread cache: the loop thread formats it at most once a second. */
const char *ch_http_date(char out[30])
{
    static __thread time_t cached_sec = -1;
    static __thread char cached[30];
    time_t now = time(NULL);

    if (now != cached_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(cached, sizeof(cached), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        cached_sec = now;
    }
    memcpy(out, cached, 30);
    return out;
}

void ch_time_iso8601(int64_t ms, char out[32])
{
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    char tmp[24];

    gmtime_r(&sec, &tm);
    strftime(tmp, sizeof(tmp), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%03dZ", tmp, (int)(ms % 1000));
}
