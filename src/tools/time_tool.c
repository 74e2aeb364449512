/*
 * time_tool.c: the current_time tool.  UTC and unix milliseconds come
 * from the clock directly; the local time in an IANA zone needs the zone
 * file, which is read and parsed on libuv's thread pool (file I/O never
 * runs on the loop) by tz.c's own TZif reader rather than setenv("TZ"),
 * which would race with every other thread reading the environment.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tools/internal.h"

#define MAX_ZONE_FILE_BYTES (256 * 1024) /* the largest tzdata file is ~4 KiB */

static const char *const weekdays[] = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"};

struct time_work {
    uv_work_t req;
    struct ch_tool_call *call; /* borrowed: the call waits for after_work */
    char path[512];
    char zone[72];
    int64_t now_ms;
    int rc; /* 0, CH_ENOTFOUND, CH_EINVAL (not a TZif file) */
    struct tz_local local;
};

static int64_t div_floor(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* "2025-03-01T19:00:00.123" for unix ms plus an offset. */
static void format_local(int64_t ms, int32_t off_s, char *out, size_t cap, int *wday)
{
    int64_t secs = div_floor(ms, 1000) + off_s;
    time_t tt = (time_t)secs;
    struct tm tm;
    char base[32];

    gmtime_r(&tt, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "%s.%03d", base, (int)(ms - div_floor(ms, 1000) * 1000));
    *wday = tm.tm_wday;
}

static void format_offset(int32_t off, char out[8])
{
    int32_t a = off < 0 ? -off : off;

    snprintf(out, 8, "%c%02d:%02d", off < 0 ? '-' : '+', (int)(a / 3600) % 100, (int)(a % 3600) / 60);
}

/* The UTC part of every answer. */
static int append_utc(struct ch_buf *b, json_t *j, int64_t now_ms)
{
    char utc[40];
    int wday;

    format_local(now_ms, 0, utc, sizeof(utc), &wday);
    json_object_set_new(j, "utc", json_sprintf("%sZ", utc));
    json_object_set_new(j, "unixMs", json_integer(now_ms));
    json_object_set_new(j, "weekdayUtc", json_string(weekdays[wday]));
    return ch_buf_appendf(b, "UTC: %sZ (%s)\nUnix time (ms): %lld\n", utc, weekdays[wday], (long long)now_ms);
}

static void reply_time(struct ch_tool_call *call, int64_t now_ms, const char *zone, const struct tz_local *loc)
{
    json_t *j = json_object();
    struct ch_buf b;
    char local[40], off[8];
    int wday, rc;

    ch_buf_init(&b, 1024);
    rc = j ? append_utc(&b, j, now_ms) : CH_ENOMEM;
    if (rc == 0 && zone) {
        format_local(now_ms, loc->utoff_s, local, sizeof(local), &wday);
        format_offset(loc->utoff_s, off);
        json_object_set_new(j, "timezone", json_string(zone));
        json_object_set_new(j, "local", json_sprintf("%s%s", local, off));
        json_object_set_new(j, "weekday", json_string(weekdays[wday]));
        json_object_set_new(j, "utcOffset", json_string(off));
        json_object_set_new(j, "utcOffsetSeconds", json_integer(loc->utoff_s));
        json_object_set_new(j, "abbreviation", json_string(loc->abbr));
        json_object_set_new(j, "isDst", json_boolean(loc->is_dst));
        rc = ch_buf_appendf(&b, "Local time in %s: %s%s (%s), %s, UTC%s, daylight saving %s\n", zone, local, off,
                            weekdays[wday], loc->abbr, off, loc->is_dst ? "in effect" : "not in effect");
    }
    if (rc) {
        json_decref(j);
        ch_buf_release(&b);
        ch_tool_call_replyf(call, true, "current_time failed: %s", ch_strerror(rc));
        return;
    }
    ch_tool_call_reply(call, false, b.data, b.len, j);
    ch_buf_release(&b);
}

/* Thread pool: read and parse the zone file; no loop state touched. */
static void time_work(uv_work_t *req)
{
    struct time_work *w = ch_container_of(req, struct time_work, req);
    struct tz_info *z = NULL;
    struct stat st;
    uint8_t *buf = NULL;
    ssize_t got = 0;
    int fd;

    w->rc = CH_ENOTFOUND;
    /* tz_name_valid kept the name inside tz_dir; symlinks are followed
     * because tzdata links zones (US/Eastern -> America/New_York). */
    fd = open(w->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > MAX_ZONE_FILE_BYTES ||
        !(buf = ch_malloc((size_t)st.st_size)))
        goto out;
    while (got < st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)(st.st_size - got));
        if (r <= 0)
            goto out;
        got += r;
    }
    w->rc = tz_parse(buf, (size_t)got, &z);
    if (w->rc == 0)
        tz_lookup(z, div_floor(w->now_ms, 1000), &w->local);
    tz_free(z);
out:
    ch_free(buf);
    close(fd);
}

static void time_after_work(uv_work_t *req, int status)
{
    struct time_work *w = ch_container_of(req, struct time_work, req);
    struct ch_tool_call *call = w->call;

    ch_tool_call_set_state(call, NULL);
    if (status == UV_ECANCELED) {
        ch_tool_call_replyf(call, true, "current_time was cancelled");
    } else if (w->rc) {
        ch_tool_call_mark_refused(call);
        ch_tool_call_replyf(call, true,
                            "unknown time zone \"%s\": not found in the tz database; "
                            "use an IANA name such as \"Asia/Seoul\", \"Europe/Berlin\" or "
                            "\"UTC\"",
                            w->zone);
    } else {
        reply_time(call, w->now_ms, w->zone, &w->local);
    }
    ch_free(w);
}

static int time_start(struct ch_tool_call *call, const json_t *input)
{
    struct ch_tools *t = ch_tool_call_tools(call);
    const char *zone = json_string_value(json_object_get(input, "timezone"));
    struct time_work *w;
    int n;

    if (!zone) {
        reply_time(call, ch_now_ms(), NULL, NULL);
        return 0;
    }
    if (!tz_name_valid(zone)) {
        ch_tool_call_mark_refused(call);
        ch_tool_call_replyf(call, true,
                            "timezone \"%.64s\" is not an IANA zone name; use a name "
                            "such as \"Asia/Seoul\" or \"America/New_York\"",
                            zone);
        return 0;
    }
    w = ch_calloc(1, sizeof(*w));
    if (!w)
        return CH_ENOMEM;
    w->call = call;
    w->now_ms = ch_now_ms();
    snprintf(w->zone, sizeof(w->zone), "%s", zone);
    n = snprintf(w->path, sizeof(w->path), "%s/%s", t->tz_dir, zone);
    if (n < 0 || (size_t)n >= sizeof(w->path) || uv_queue_work(ch_tools_loop(t), &w->req, time_work, time_after_work)) {
        ch_free(w);
        return CH_EIO;
    }
    ch_tool_call_set_state(call, w);
    return 0;
}

static void time_abort(struct ch_tool_call *call)
{
    struct time_work *w = ch_tool_call_state(call);

    /* Cancelled before it ran: after_work gets UV_ECANCELED.  Already
     * running: it finishes (a small file read) and replies as usual. */
    if (w)
        uv_cancel((uv_req_t *)&w->req);
}

const struct ch_tool_spec tools_current_time_spec = {
    .name = "current_time",
    .description = "Get the current date and time: UTC in ISO 8601, unix milliseconds, and the "
                   "local time in an IANA time zone when one is given.",
    .input_schema = "{\"type\":\"object\",\"properties\":{\"timezone\":{\"type\":\"string\",\"minLength\":1,"
                    "\"maxLength\":64,\"description\":\"IANA time zone name such as Asia/Seoul or "
                    "America/New_York; omit for UTC only\"}},\"additionalProperties\":false}",
    .start = time_start,
    .abort = time_abort,
};
