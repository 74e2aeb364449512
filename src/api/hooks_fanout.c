/*
 * hooks_fanout.c: hooks.mappings[] with forEach, OpenClaw v4's fan-out (its
 * `gmail` preset uses it).  A payload holding an array under the
 * mapping's forEach key becomes one run per item (at most
 * CH_HOOK_FANOUT_MAX; the rest are dropped and logged), each rendered as if
 * the array held that item alone, so `{{messages[0].id}}` names the item.
 *
 * Every item is rendered and checked before any is queued, so a bad item
 * is a 400 with nothing started.  Each item is then queued durably like a
 * single hook run (hooks_agent.c), and the request is answered once all
 * are: 202 {ok, runId, runIds, dispatched} (200 when every item named an
 * earlier run), or the first failure's status with the runs that were
 * queued.  No items: 204.
 *
 * Each item gets a derived idempotency key, a digest of the caller's key
 * (or OpenClaw's "hook-fanout-item"), the sub-path, the item's rendered
 * message and fields, and its occurrence among identical items.  A batch
 * sent again (a push that was retried, a client that timed out) thus
 * names the runs it already started instead of starting them twice.
 * Without a caller's key an earlier run counts while it is queued or
 * running and for 5 min after it ended, as OpenClaw's replay cache does;
 * with one, for 24 h like any hook idempotency key.
 */
#include <stdio.h>
#include <string.h>

#include "api/hooks.h"

#define MAX_ERRORS 5 /* OpenClaw lists the first five failures */
/* The rendered messages of one request, all items together: 200 items of
 * a template that renders the whole payload would otherwise hold hundreds
 * of MB at once (and store them). */
#define MAX_TOTAL_BYTES (16 * 1024 * 1024)

struct ch_hook_fan {
    struct ch_api *api;      /* borrowed */
    struct ch_http_req *req; /* ref held until freed */
    size_t n, pending;       /* items; items not reported yet */
    bool queuing;            /* ch_hooks_fanout is still handing items out */
    bool gone;               /* the client left: count, do not answer */
    char **run_ids;          /* owned, [n]; NULL where the item failed */
    size_t failed, replayed;
    int fail_status; /* the first failure's */
    enum ch_hook_reason fail_why;
    json_t *errors; /* the first failures' messages */
};

int ch_hooks_scope_digest(const char *msg, size_t len, const json_t *fields, char hex[65])
{
    char *f = json_dumps(fields, JSON_COMPACT | JSON_SORT_KEYS);
    struct ch_buf all;
    int rc;

    if (!f)
        return CH_ENOMEM;
    ch_buf_init(&all, SIZE_MAX);
    rc = ch_buf_append(&all, msg, len);
    if (rc == 0)
        rc = ch_buf_append_char(&all, '\0');
    if (rc == 0)
        rc = ch_buf_append_str(&all, f);
    if (rc == 0)
        ch_sha256_hex(all.data, all.len, hex);
    ch_buf_release(&all);
    ch_free(f);
    return rc;
}

/* The payload with key holding item alone (a shallow copy; new ref). */
static json_t *item_payload(const json_t *body, const char *key, json_t *item)
{
    json_t *p = json_copy((json_t *)body);

    if (p && json_object_set_new(p, key, json_pack("[O]", item)) != 0) {
        json_decref(p);
        p = NULL;
    }
    return p;
}

/* The items of body under m's forEach key: their count, capped (the
 * dropped ones logged). */
static size_t item_count(const json_t *m, const json_t *body, const json_t **arr)
{
    const char *key = json_string_value(json_object_get(m, "forEach"));
    const char *id = json_string_value(json_object_get(m, "id"));
    size_t total;

    *arr = json_object_get(body, key);
    total = json_is_array(*arr) ? json_array_size(*arr) : 0;
    if (total > CH_HOOK_FANOUT_MAX)
        ch_log_warn("hooks: mapping %s fan-out dropped %zu items beyond the %d-item cap", id ? id : key,
                    total - CH_HOOK_FANOUT_MAX, CH_HOOK_FANOUT_MAX);
    if (total == 0)
        ch_log_info("hooks: mapping %s matched with no items to dispatch", id ? id : key);
    return CH_MIN(total, (size_t)CH_HOOK_FANOUT_MAX);
}

/* "fanout:<hex>": the caller's key (or OpenClaw's default), the sub-path,
 * the item's scope and its occurrence among identical items. */
static char *derived_key(const char *caller, struct ch_str sub, const char *scope, size_t occurrence)
{
    char *text =
        ch_sprintf("%s\n%.*s\n%s\n%zu", caller ? caller : "hook-fanout-item", (int)sub.len, sub.p, scope, occurrence);
    char hex[65];

    if (!text)
        return NULL;
    ch_sha256_hex(text, strlen(text), hex);
    ch_free(text);
    return ch_sprintf("fanout:%s", hex);
}

static void fan_free(struct ch_hook_fan *f)
{
    for (size_t i = 0; i < f->n; i++)
        ch_free(f->run_ids[i]);
    ch_free(f->run_ids);
    json_decref(f->errors);
    ch_http_req_unref(f->req);
    ch_free(f);
}

static void fan_finish(struct ch_hook_fan *f)
{
    size_t ok = f->n - f->failed;
    json_t *ids = json_array(), *body;
    int status;
    enum ch_hook_reason why;

    for (size_t i = 0; ids && i < f->n; i++)
        if (f->run_ids[i])
            json_array_append_new(ids, json_string(f->run_ids[i]));
    if (f->failed == 0) {
        why = f->replayed == f->n ? CH_HOOK_R_REPLAY : CH_HOOK_R_MAPPING;
        status = f->replayed == f->n ? 200 : 202;
        body = json_pack("{s:b, s:s*, s:o*, s:I}", "ok", 1, "runId", f->run_ids[0], "runIds", ids, "dispatched",
                         (json_int_t)ok);
        if (f->gone)
            ch_hooks_count(f->api, NULL, true, why, NULL);
        else {
            ch_hooks_count(f->api, f->req, true, why, NULL);
            ch_http_respond_json(f->req, status, body);
            body = NULL;
        }
    } else {
        char msg[160];

        snprintf(msg, sizeof(msg), "hook fan-out incomplete: %zu/%zu dispatched, %zu failed, 0 pending", ok, f->n,
                 f->failed);
        body = json_pack("{s:b, s:s, s:o*, s:O*}", "ok", 0, "error", msg, "runIds", ids, "errors", f->errors);
        ch_hooks_count(f->api, f->gone ? NULL : f->req, false, f->fail_why, msg);
        if (!f->gone) {
            if (f->fail_status == 503)
                ch_http_add_header(f->req, "Retry-After", "1");
            ch_http_respond_json(f->req, f->fail_status, body);
            body = NULL;
        }
    }
    json_decref(body);
    fan_free(f);
}

void ch_hooks_fan_done(struct ch_hook_fan *f, size_t idx, int status, const char *run_id, enum ch_hook_reason why,
                       const char *msg)
{
    if (run_id && status < 300) {
        f->run_ids[idx] = ch_strdup(run_id); /* NULL on OOM: that id is missing from runIds */
        f->replayed += why == CH_HOOK_R_REPLAY;
    } else {
        if (f->failed++ == 0) {
            f->fail_status = status;
            f->fail_why = why;
        }
        if (f->errors && json_array_size(f->errors) < MAX_ERRORS)
            json_array_append_new(f->errors, json_string(msg ? msg : "the item could not be queued"));
    }
    if (--f->pending == 0 && !f->queuing)
        fan_finish(f);
}

static void on_client_close(struct ch_http_req *r, void *data)
{
    struct ch_hook_fan *f = data;

    (void)r;
    f->gone = true; /* the items go on: each is queued or refused on its own */
}

void ch_hooks_fanout(struct ch_api *a, struct ch_http_req *r, const json_t *m, const json_t *body)
{
    const char *key = json_string_value(json_object_get(m, "forEach"));
    const json_t *arr;
    size_t n = item_count(m, body, &arr), i, total;
    struct ch_hook_in *ins;
    struct ch_hook_fan *f;

    if (n == 0) {
        ch_hooks_count(a, r, true, CH_HOOK_R_MAPPING, NULL);
        ch_http_respond(r, 204, NULL, NULL, 0);
        return;
    }
    if (!(ins = ch_calloc(n, sizeof(*ins)))) {
        ch_hooks_refuse(a, r, 500, CH_HOOK_R_INTERNAL, "out of memory");
        return;
    }
    /* Render and check every item first: a bad one starts nothing. */
    for (i = 0, total = 0; i < n; i++) {
        json_t *p = item_payload(body, key, json_array_get(arr, i));
        int rc = p ? ch_hooks_parse_mapping(a, r, m, p, &ins[i]) : CH_ENOMEM;
        char *caller;

        json_decref(p);
        if (rc == CH_ENOMEM)
            ch_hooks_refuse(a, r, 500, CH_HOOK_R_INTERNAL, "out of memory");
        if (rc)
            break; /* answered */
        if ((total += strlen(ins[i].message)) > MAX_TOTAL_BYTES) {
            ch_hooks_refuse(a, r, 413, CH_HOOK_R_TOO_LARGE, "the fan-out's rendered messages exceed %d bytes",
                            MAX_TOTAL_BYTES);
            i++; /* release it too */
            break;
        }
        caller = ins[i].idem;
        ins[i].idem_recent = caller == NULL;
        {
            size_t occ = 0;
            for (size_t k = 0; k < i; k++)
                occ += !strcmp(ins[k].scope, ins[i].scope);
            ins[i].idem = derived_key(caller, ch_hooks_subpath(a, r), ins[i].scope, occ);
        }
        ch_free(caller);
        if (!ins[i].idem) {
            ch_hooks_refuse(a, r, 500, CH_HOOK_R_INTERNAL, "out of memory");
            i++; /* release it too */
            break;
        }
    }
    if (i < n || !(f = ch_calloc(1, sizeof(*f))) || !(f->run_ids = ch_calloc(n, sizeof(char *)))) {
        if (i == n) {
            ch_free(f);
            ch_hooks_refuse(a, r, 500, CH_HOOK_R_INTERNAL, "out of memory");
        }
        for (size_t k = 0; k < CH_MIN(i, n); k++)
            ch_hook_in_release(&ins[k]);
        ch_free(ins);
        return;
    }
    if (ins[0].cb_withheld) /* every item has the request's callback: said once */
        ch_hooks_log_withheld(r, json_string_value(json_object_get(json_object_get(ins[0].hook, "callback"), "url")));
    f->api = a;
    f->req = r;
    ch_http_req_ref(r);
    f->n = f->pending = n;
    f->queuing = true;
    f->errors = json_array();
    ch_http_req_on_close(r, on_client_close, f);
    for (i = 0; i < n; i++)
        ch_hooks_dispatch_item(a, f, i, &ins[i]); /* steals ins[i] */
    ch_free(ins);
    f->queuing = false;
    if (f->pending == 0)
        fan_finish(f);
}

static bool blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
            return false;
    return true;
}

int ch_hooks_fan_wake_text(struct ch_api *a, struct ch_http_req *r, const json_t *m, const json_t *body,
                           struct ch_buf *out)
{
    const char *key = json_string_value(json_object_get(m, "forEach"));
    const char *tpl = json_string_value(json_object_get(m, "textTemplate"));
    const json_t *arr;
    size_t n = item_count(m, body, &arr);
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *p = item_payload(body, key, json_array_get(arr, i));
        struct ch_hook_tpl_ctx ctx = {p, r, ch_hooks_subpath(a, r), ch_now_ms()};
        size_t before = out->len;

        if (!p) {
            rc = CH_ENOMEM;
            break;
        }
        /* One system event per item in OpenClaw; here one event, a line
         * per item, which the woken run reads the same way. */
        if (out->len)
            rc = ch_buf_append_char(out, '\n');
        if (rc == 0)
            rc = ch_hooks_render(tpl, &ctx, out);
        if (rc == 0 && blank(out->data + before, out->len - before))
            out->len = before; /* a blank item adds nothing */
        json_decref(p);
    }
    if (rc == CH_E_TOO_LARGE)
        ch_hooks_refuse(a, r, 400, CH_HOOK_R_INVALID, "the mapping's rendered text is too long");
    else if (rc)
        ch_hooks_refuse(a, r, 500, CH_HOOK_R_INTERNAL, "out of memory");
    return rc ? CH_EINVAL : 0;
}
