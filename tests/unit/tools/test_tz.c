/*
 * test_tz.c: the TZif reader and POSIX TZ rules (tools/tz.c), checked
 * against glibc.  The test process is single-threaded, so here (and only
 * here) setenv("TZ") + localtime_r is a safe oracle: every zone and rule
 * is compared at thousands of instants from 1970 to 2200, past the end of
 * the transition tables where the footer rule takes over, and at each
 * transition +-1 s.  Also: malformed and truncated files, name checks.
 */
#include <time.h>

#include "tools_test.h"

#define ZONEINFO "/usr/share/zoneinfo"

static uint64_t rng = 88172645463325252ull;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Compare tz_lookup with glibc at t; TZ must already be set. */
static void compare_at(const struct tz_info *z, int64_t t, const char *what)
{
    struct tz_local loc;
    time_t tt = (time_t)t;
    struct tm tm;

    tz_lookup(z, t, &loc);
    assert_non_null(localtime_r(&tt, &tm));
    if (loc.utoff_s != tm.tm_gmtoff || loc.is_dst != (tm.tm_isdst > 0) || strcmp(loc.abbr, tm.tm_zone))
        fail_msg("%s at %lld: got %d %s dst=%d, glibc %ld %s dst=%d", what, (long long)t, loc.utoff_s, loc.abbr,
                 loc.is_dst, tm.tm_gmtoff, tm.tm_zone, tm.tm_isdst);
}

static void compare_range(const struct tz_info *z, const char *what)
{
    const int64_t from = 0, to = 7258118400LL; /* 1970 .. 2200 */

    for (int i = 0; i < 4000; i++)
        compare_at(z, from + (int64_t)(next_rand() % (uint64_t)(to - from)), what);
    /* Every hour of two years past the tables (footer rule territory). */
    for (int64_t t = 4102444800LL; t < 4102444800LL + 2 * 366 * 86400LL; t += 3600)
        compare_at(z, t, what);
}

static struct tz_info *load_zone(const char *name)
{
    char path[256];
    struct tz_info *z = NULL;
    size_t n;
    char *buf;

    snprintf(path, sizeof(path), "%s/%s", ZONEINFO, name);
    buf = tfile_read(path, &n);
    if (!buf)
        fail_msg("%s missing: is tzdata installed?", path);
    assert_int_equal(tz_parse((const uint8_t *)buf, n, &z), 0);
    free(buf);
    return z;
}

static void test_real_zones(void **state)
{
    static const char *const zones[] = {
        "America/New_York",  "Europe/London",     "Australia/Sydney",   "Asia/Seoul",       "UTC",
        "America/Sao_Paulo", "Africa/Casablanca", "Pacific/Chatham",    "Asia/Kolkata",     "America/St_Johns",
        "Europe/Dublin",     "Antarctica/Troll",  "Pacific/Kiritimati", "America/Santiago", "Asia/Tehran",
        "Etc/GMT+9",
    };
    char tz[80];

    (void)state;
    for (size_t i = 0; i < CH_ARRAY_SIZE(zones); i++) {
        struct tz_info *z = load_zone(zones[i]);
        snprintf(tz, sizeof(tz), ":%s/%s", ZONEINFO, zones[i]);
        setenv("TZ", tz, 1);
        tzset();
        compare_range(z, zones[i]);
        tz_free(z);
    }
    unsetenv("TZ");
    tzset();
}

static void test_known_instants(void **state)
{
    struct tz_info *ny = load_zone("America/New_York"), *syd = load_zone("Australia/Sydney");
    struct tz_info *seoul = load_zone("Asia/Seoul");
    struct tz_local l;

    (void)state;
    tz_lookup(seoul, 1719792000, &l); /* 2024-07-01T00:00Z */
    assert_int_equal(l.utoff_s, 9 * 3600);
    assert_string_equal(l.abbr, "KST");
    assert_false(l.is_dst);
    /* 2024-03-10 02:00 EST = 07:00Z: the spring-forward instant. */
    tz_lookup(ny, 1710053999, &l);
    assert_int_equal(l.utoff_s, -5 * 3600);
    tz_lookup(ny, 1710054000, &l);
    assert_int_equal(l.utoff_s, -4 * 3600);
    assert_string_equal(l.abbr, "EDT");
    assert_true(l.is_dst);
    /* 2100-07-01 and 2100-12-01: beyond the table, from the footer. */
    tz_lookup(ny, 4118083200LL, &l);
    assert_int_equal(l.utoff_s, -4 * 3600);
    tz_lookup(ny, 4131734400LL, &l);
    assert_int_equal(l.utoff_s, -5 * 3600);
    /* Southern hemisphere: DST across the new year. */
    tz_lookup(syd, 4103049600LL, &l); /* 2100-01-08 */
    assert_int_equal(l.utoff_s, 11 * 3600);
    assert_string_equal(l.abbr, "AEDT");
    tz_lookup(syd, 4118083200LL, &l);
    assert_int_equal(l.utoff_s, 10 * 3600);
    /* Before the first transition: type 0 (local mean time). */
    tz_lookup(ny, -5000000000LL, &l);
    assert_int_equal(l.utoff_s, -17762);
    tz_free(ny);
    tz_free(syd);
    tz_free(seoul);
}

/* A version 2 TZif with no transitions: only the footer rule counts. */
static size_t make_tzif(uint8_t *out, const char *footer)
{
    static const uint8_t type[6] = {0, 0, 0, 0, 0, 0};
    uint8_t head[44] = "TZif2";
    size_t n = 0, fl = strlen(footer);

    memset(head + 5, 0, sizeof(head) - 5);
    head[39] = 1; /* typecnt (big-endian, bytes 36..39) */
    head[43] = 4; /* charcnt: "UTC\0" */
    for (int v = 0; v < 2; v++) {
        memcpy(out + n, head, 44);
        n += 44;
        memcpy(out + n, type, 6);
        n += 6;
        memcpy(out + n, "UTC", 4);
        n += 4;
    }
    out[n++] = '\n';
    memcpy(out + n, footer, fl);
    n += fl;
    out[n++] = '\n';
    return n;
}

static void test_posix_rules(void **state)
{
    static const char *const rules[] = {
        "AEST-10AEDT,M10.1.0,M4.1.0/3",
        "EST5EDT,M3.2.0,M11.1.0",
        "<+0330>-3:30",
        "CET-1CEST,M3.5.0,M10.5.0/3",
        "IST-1GMT0,M10.5.0,M3.5.0/1",
        "NZST-12NZDT,M9.5.0,M4.1.0/3",
        "XST3XDT,J60/2,J300/2",
        "YST3YDT,59/2,299/2",
        "<-03>3<-02>,M3.5.0/-2,M10.5.0/-1",
        "<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45",
        "HST10",
        "ABC-5:30:15",
    };
    /* RFC 8536 3.3.1's all-year DST.  glibc picks the rule's year from
     * UTC, so around new year it disagrees; Python's zoneinfo agrees with
     * tz.c (year of local standard time): DST at every instant. */
    static const char *const all_year[] = {"EST5EDT,0/0,J365/25", "WART4WARST,J1/0,J365/25"};
    static const int64_t instants[] = {852092079, 852092079 - 86400 * 200, 852076800, 852094800, 4102444799LL, 0};
    uint8_t buf[256];
    struct tz_info *z;
    char tz[128];

    (void)state;
    for (size_t i = 0; i < CH_ARRAY_SIZE(rules); i++) {
        size_t n = make_tzif(buf, rules[i]);
        assert_int_equal(tz_parse(buf, n, &z), 0);
        snprintf(tz, sizeof(tz), "%s", rules[i]);
        setenv("TZ", tz, 1);
        tzset();
        compare_range(z, rules[i]);
        tz_free(z);
    }
    unsetenv("TZ");
    tzset();
    for (size_t i = 0; i < CH_ARRAY_SIZE(all_year); i++) {
        size_t n = make_tzif(buf, all_year[i]);
        assert_int_equal(tz_parse(buf, n, &z), 0);
        for (size_t k = 0; k < CH_ARRAY_SIZE(instants); k++) {
            struct tz_local l;
            tz_lookup(z, instants[k], &l);
            assert_true(l.is_dst);
            assert_int_equal(l.utoff_s, i == 0 ? -4 * 3600 : -3 * 3600);
        }
        tz_free(z);
    }
}

static void test_bad_files(void **state)
{
    struct tz_info *z = (struct tz_info *)1;
    uint8_t buf[256];
    size_t n, full;
    char *real;

    (void)state;
    assert_int_equal(tz_parse((const uint8_t *)"", 0, &z), CH_EINVAL);
    assert_null(z);
    assert_int_equal(tz_parse((const uint8_t *)"TZif", 4, &z), CH_EINVAL);
    n = make_tzif(buf, "UTC0");
    buf[4] = 0; /* version 1 */
    assert_int_equal(tz_parse(buf, n, &z), CH_EINVAL);
    n = make_tzif(buf, "UTC0");
    buf[54 + 39] = 0; /* v2 typecnt 0 (the v1 block is 54 bytes) */
    assert_int_equal(tz_parse(buf, n, &z), CH_EINVAL);
    n = make_tzif(buf, "UTC0");
    buf[54 + 32] = 0xff; /* v2 timecnt huge */
    assert_int_equal(tz_parse(buf, n, &z), CH_EINVAL);
    /* A footer that does not parse is ignored: the table still works. */
    n = make_tzif(buf, "garbage,,,");
    assert_int_equal(tz_parse(buf, n, &z), 0);
    tz_free(z);
    /* Every truncation of a real file fails cleanly or parses. */
    real = tfile_read(ZONEINFO "/Europe/Berlin", &full);
    assert_non_null(real);
    for (n = 0; n < full; n++) {
        if (tz_parse((const uint8_t *)real, n, &z) == 0)
            tz_free(z);
    }
    /* Corrupt type indices and unordered transitions are refused. */
    for (size_t i = 0; i < full; i += 7) {
        char saved = real[i];
        real[i] = (char)0xff;
        if (tz_parse((const uint8_t *)real, full, &z) == 0) {
            struct tz_local l;
            tz_lookup(z, 0, &l);
            tz_lookup(z, 5000000000LL, &l);
            tz_free(z);
        }
        real[i] = saved;
    }
    free(real);
}

static void test_names(void **state)
{
    (void)state;
    assert_true(tz_name_valid("Asia/Seoul"));
    assert_true(tz_name_valid("UTC"));
    assert_true(tz_name_valid("Etc/GMT+9"));
    assert_true(tz_name_valid("America/Argentina/Buenos_Aires"));
    assert_true(tz_name_valid("America/Port-au-Prince"));
    assert_false(tz_name_valid(""));
    assert_false(tz_name_valid(NULL));
    assert_false(tz_name_valid("../etc/passwd"));
    assert_false(tz_name_valid("/etc/passwd"));
    assert_false(tz_name_valid("Asia//Seoul"));
    assert_false(tz_name_valid("Asia/../../etc/passwd"));
    assert_false(tz_name_valid("Asia/.hidden"));
    assert_false(tz_name_valid("Asia/"));
    assert_false(tz_name_valid("Asia/Se oul"));
    assert_false(tz_name_valid("-rf"));
    assert_false(tz_name_valid("Asia\\Seoul"));
    assert_false(tz_name_valid("a..b"));
    assert_false(tz_name_valid("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_zones), cmocka_unit_test(test_known_instants), cmocka_unit_test(test_posix_rules),
        cmocka_unit_test(test_bad_files),  cmocka_unit_test(test_names),
    };
    size_t blocks;
    int rc;

    ch_alloc_install();
    blocks = ch_alloc_live_blocks();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (ch_alloc_live_blocks() != blocks) {
        fprintf(stderr, "leak: %zu blocks\n", ch_alloc_live_blocks() - blocks);
        return 1;
    }
    return rc;
}
