/*
 * tz.c: time zones from the system's TZif files (RFC 8536), without TZ.
 *
 * current_time needs the local time in an arbitrary IANA zone.  The libc
 * way (setenv("TZ"), tzset, localtime_r) changes process-wide state that
 * other threads read concurrently (curl's resolver threads call getenv
 * inside getaddrinfo; the logger formats times), so this file parses the
 * zone file itself: the version 2+ 64-bit transition table, and past its
 * end the POSIX TZ footer rule ("EST5EDT,M3.2.0,M11.1.0").  Pure
 * functions; the file is read on the thread pool by time_tool.c.
 */
#include <stdlib.h>
#include <string.h>

#include "tools/internal.h"

#define MAX_TRANSITIONS 100000
#define MAX_TYPES 256

struct tz_type {
    int32_t utoff;
    bool is_dst;
    char abbr[16];
};

/* A POSIX TZ rule date: J (1..365, no Feb 29), N (0..365), M (m.w.d). */
struct tz_date {
    char kind;
    int a, b, c;  /* J/N: a = day; M: a = month, b = week, c = weekday */
    int32_t secs; /* local time of day of the change, may exceed 24 h */
};

struct tz_rule {
    struct tz_type std, dst;
    bool has_dst;
    struct tz_date start, end;
};

struct tz_info {
    int64_t *trans; /* owned, ascending */
    uint8_t *idx;   /* owned, type index per transition */
    size_t timecnt;
    struct tz_type *types; /* owned */
    size_t typecnt;
    struct tz_rule rule;
    bool has_rule;
};

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const uint8_t *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* ------------------------------------------------------------------ */
/* Calendar                                                             */
/* ------------------------------------------------------------------ */

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days since 1970-01-01 of y-m-d (proleptic Gregorian; H. Hinnant). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int64_t year_of_days(int64_t z)
{
    int64_t era, doe, yoe, y, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    y = yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    return y + (mp >= 10); /* months Jan, Feb belong to the next civil year */
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* Days since the epoch of the rule date in year y. */
static int64_t rule_day(int64_t y, const struct tz_date *d)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int64_t jan1 = days_from_civil(y, 1, 1), first;
    int wd, day, len;

    if (d->kind == 'J')
        return jan1 + d->a - 1 + (is_leap(y) && d->a >= 60);
    if (d->kind == 'N')
        return jan1 + d->a;
    first = days_from_civil(y, d->a, 1);
    wd = (int)(((first + 4) % 7 + 7) % 7); /* 1970-01-01 was a Thursday */
    day = 1 + (d->c - wd + 7) % 7 + (d->b - 1) * 7;
    len = mdays[d->a - 1] + (d->a == 2 && is_leap(y));
    while (day > len) /* week 5 means "the last" */
        day -= 7;
    return first + day - 1;
}

/* ------------------------------------------------------------------ */
/* POSIX TZ strings                                                     */
/* ------------------------------------------------------------------ */

static bool parse_name(const char **s, char *out, size_t cap)
{
    const char *p = *s, *start;
    size_t n;

    if (*p == '<') {
        start = ++p;
        while (*p && *p != '>')
            p++;
        if (*p != '>')
            return false;
        n = (size_t)(p - start);
        p++;
    } else {
        start = p;
        while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))
            p++;
        n = (size_t)(p - start);
    }
    if (n < 3 || n >= cap)
        return false;
    memcpy(out, start, n);
    out[n] = '\0';
    *s = p;
    return true;
}

/* [+-]hh[:mm[:ss]] in seconds; hours up to max_h. */
static bool parse_hms(const char **s, int max_h, int32_t *out)
{
    const char *p = *s;
    int sign = 1, parts[3] = {0, 0, 0};
    char *end;

    if (*p == '+' || *p == '-')
        sign = *p++ == '-' ? -1 : 1;
    for (int i = 0; i < 3; i++) {
        long v;
        if (i && *p != ':')
            break;
        if (i)
            p++;
        if (*p < '0' || *p > '9')
            return false;
        v = strtol(p, &end, 10);
        if (v > (i ? 59 : max_h))
            return false;
        parts[i] = (int)v;
        p = end;
    }
    *out = sign * (parts[0] * 3600 + parts[1] * 60 + parts[2]);
    *s = p;
    return true;
}

static bool parse_num(const char **s, int lo, int hi, int *out)
{
    char *end;
    long v;

    if (**s < '0' || **s > '9')
        return false;
    v = strtol(*s, &end, 10);
    if (v < lo || v > hi)
        return false;
    *out = (int)v;
    *s = end;
    return true;
}

static bool parse_date(const char **s, struct tz_date *d)
{
    const char *p = *s;

    d->secs = 7200; /* 02:00 by default */
    if (*p == 'J') {
        p++;
        d->kind = 'J';
        if (!parse_num(&p, 1, 365, &d->a))
            return false;
    } else if (*p == 'M') {
        p++;
        d->kind = 'M';
        if (!parse_num(&p, 1, 12, &d->a) || *p++ != '.' || !parse_num(&p, 1, 5, &d->b) || *p++ != '.' ||
            !parse_num(&p, 0, 6, &d->c))
            return false;
    } else {
        d->kind = 'N';
        if (!parse_num(&p, 0, 365, &d->a))
            return false;
    }
    /* RFC 8536 3.3.1 extends the time to -167..167 hours. */
    if (*p == '/' && (p++, !parse_hms(&p, 167, &d->secs)))
        return false;
    *s = p;
    return true;
}

static bool parse_rule(const char *s, struct tz_rule *r)
{
    int32_t off;

    memset(r, 0, sizeof(*r));
    if (!parse_name(&s, r->std.abbr, sizeof(r->std.abbr)) || !parse_hms(&s, 24, &off))
        return false;
    r->std.utoff = -off; /* POSIX offsets are west-positive */
    if (!*s)
        return true;
    if (!parse_name(&s, r->dst.abbr, sizeof(r->dst.abbr)))
        return false;
    r->has_dst = true;
    r->dst.is_dst = true;
    r->dst.utoff = r->std.utoff + 3600;
    if (*s && *s != ',') {
        if (!parse_hms(&s, 24, &off))
            return false;
        r->dst.utoff = -off;
    }
    if (!*s) { /* no rule: the US rule, as glibc assumes */
        r->start = (struct tz_date){'M', 3, 2, 0, 7200};
        r->end = (struct tz_date){'M', 11, 1, 0, 7200};
        return true;
    }
    if (*s++ != ',' || !parse_date(&s, &r->start) || *s++ != ',' || !parse_date(&s, &r->end))
        return false;
    return *s == '\0';
}

static const struct tz_type *rule_type(const struct tz_rule *r, int64_t t)
{
    int64_t y, start, end;

    if (!r->has_dst)
        return &r->std;
    y = year_of_days(floor_div(t + r->std.utoff, 86400));
    start = rule_day(y, &r->start) * 86400 + r->start.secs - r->std.utoff;
    end = rule_day(y, &r->end) * 86400 + r->end.secs - r->dst.utoff;
    if (start < end)
        return t >= start && t < end ? &r->dst : &r->std;
    /* Southern hemisphere: DST spans the new year. */
    return t >= end && t < start ? &r->std : &r->dst;
}

/* ------------------------------------------------------------------ */
/* TZif                                                                 */
/* ------------------------------------------------------------------ */

void tz_free(struct tz_info *z)
{
    if (!z)
        return;
    ch_free(z->trans);
    ch_free(z->idx);
    ch_free(z->types);
    ch_free(z);
}

int tz_parse(const uint8_t *p, size_t n, struct tz_info **out)
{
    struct tz_info *z = NULL;
    uint32_t c[6]; /* isutcnt isstdcnt leapcnt timecnt typecnt charcnt */
    const uint8_t *d, *chars, *end = p + n;
    size_t v1len, need, i;
    int rc = CH_EINVAL;

    if (n < 44 || memcmp(p, "TZif", 4) || p[4] < '2')
        goto out; /* version 1 files (32-bit only) are long gone from tzdata */
    for (i = 0; i < 6; i++)
        c[i] = be32(p + 20 + 4 * i);
    v1len = (size_t)c[3] * 5 + (size_t)c[4] * 6 + c[5] + (size_t)c[2] * 8 + c[1] + c[0];
    if (c[3] > MAX_TRANSITIONS || c[4] > MAX_TYPES || c[2] > MAX_TRANSITIONS || v1len > n - 44 || n - 44 - v1len < 44)
        goto out;
    p += 44 + v1len; /* the version 2+ header and data follow */
    if (memcmp(p, "TZif", 4))
        goto out;
    for (i = 0; i < 6; i++)
        c[i] = be32(p + 20 + 4 * i);
    if (c[3] > MAX_TRANSITIONS || c[4] == 0 || c[4] > MAX_TYPES || c[5] == 0 || c[2] > MAX_TRANSITIONS)
        goto out;
    d = p + 44;
    need = (size_t)c[3] * 9 + (size_t)c[4] * 6 + c[5] + (size_t)c[2] * 12 + c[1] + c[0];
    if ((size_t)(end - d) < need)
        goto out;
    rc = CH_ENOMEM;
    z = ch_calloc(1, sizeof(*z));
    if (!z || (c[3] && (!(z->trans = ch_malloc(c[3] * sizeof(int64_t))) || !(z->idx = ch_malloc(c[3])))) ||
        !(z->types = ch_calloc(c[4], sizeof(*z->types))))
        goto out;
    rc = CH_EINVAL;
    z->timecnt = c[3];
    z->typecnt = c[4];
    for (i = 0; i < z->timecnt; i++) {
        z->trans[i] = be64(d + 8 * i);
        z->idx[i] = d[8 * z->timecnt + i];
        if (z->idx[i] >= z->typecnt || (i && z->trans[i] <= z->trans[i - 1]))
            goto out;
    }
    d += 9 * z->timecnt;
    chars = d + 6 * z->typecnt;
    for (i = 0; i < z->typecnt; i++) {
        const uint8_t *tt = d + 6 * i;
        size_t di = tt[5], len = 0;

        z->types[i].utoff = (int32_t)be32(tt);
        z->types[i].is_dst = tt[4] != 0;
        if (di >= c[5] || z->types[i].utoff == INT32_MIN)
            goto out;
        while (di + len < c[5] && chars[di + len] && len < sizeof(z->types[i].abbr) - 1)
            len++;
        memcpy(z->types[i].abbr, chars + di, len);
    }
    d = chars + c[5] + (size_t)c[2] * 12 + c[1] + c[0];
    /* The footer: "\n<POSIX TZ string>\n" (may be empty). */
    if (d < end && *d == '\n') {
        const uint8_t *nl = memchr(d + 1, '\n', (size_t)(end - d - 1));
        char rule[128];
        size_t len = nl ? (size_t)(nl - d - 1) : 0;

        if (nl && len > 0 && len < sizeof(rule)) {
            memcpy(rule, d + 1, len);
            rule[len] = '\0';
            z->has_rule = parse_rule(rule, &z->rule);
        }
    }
    rc = 0;
out:
    if (rc) {
        tz_free(z);
        z = NULL;
    }
    *out = z;
    return rc;
}

void tz_lookup(const struct tz_info *z, int64_t t, struct tz_local *out)
{
    const struct tz_type *ty;
    size_t lo = 0, hi = z->timecnt;

    if (z->timecnt == 0 || t < z->trans[0]) {
        ty = z->timecnt == 0 && z->has_rule ? rule_type(&z->rule, t) : &z->types[0];
    } else if (t >= z->trans[z->timecnt - 1] && z->has_rule) {
        ty = rule_type(&z->rule, t); /* past the table: the footer rule */
    } else {
        while (hi - lo > 1) { /* last transition <= t */
            size_t mid = lo + (hi - lo) / 2;
            if (z->trans[mid] <= t)
                lo = mid;
            else
                hi = mid;
        }
        ty = &z->types[z->idx[lo]];
    }
    out->utoff_s = ty->utoff;
    out->is_dst = ty->is_dst;
    memcpy(out->abbr, ty->abbr, sizeof(out->abbr));
}

bool tz_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0, comp = 0;

    if (n == 0 || n > 64 || name[0] == '/' || name[0] == '.' || name[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (ch == '/') {
            /* No empty, "." or ".." component: nothing outside TZDIR. */
            if (comp == 0 || name[i + 1] == '.' || name[i + 1] == '\0')
                return false;
            comp = 0;
            continue;
        }
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
              ch == '+' || ch == '-' || ch == '.'))
            return false;
        comp++;
    }
    return !strstr(name, "..");
}
