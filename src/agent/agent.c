/*
 * agent.c: the agent object: settings from configuration (and the seed
 * 003 environment shortcuts MAX_TOOL_ROUNDS and TOOL_TIMEOUT), the
 * workspace's AGENTS.md, resumption of unfinished runs at start, and an
 * orderly stop that leaves interrupted runs to be replayed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/internal.h"

#define AGENTS_MD_MAX (64 * 1024)

/*
 * The workspace's AGENTS.md, its first AGENTS_MD_MAX bytes cut between
 * characters and made valid UTF-8 (U+FFFD for a stray byte or a NUL):
 * every provider's request is JSON, which would refuse the prompt and
 * fail each run.  A longer file is cut with a warning, not refused, so one
 * edit cannot stop the gateway.
 */
static char *read_agents_md(const char *dir)
{
    char *path, *raw = NULL, *out = NULL;
    size_t len = 0, out_len;
    ssize_t n = 1;
    struct ch_buf b;
    int fd;

    if (!dir || !*dir)
        return NULL;
    path = ch_sprintf("%s/AGENTS.md", dir);
    fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    raw = fd >= 0 ? ch_malloc(AGENTS_MD_MAX + 1) : NULL;
    while (raw && len <= AGENTS_MD_MAX && n > 0) { /* one byte past the cap tells a longer file */
        n = read(fd, raw + len, AGENTS_MD_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            n = 1;
        else if (n > 0)
            len += (size_t)n;
    }
    if (fd >= 0)
        close(fd);
    if (raw && n < 0)
        ch_log_warn("agent: %s: %s; not used", path, strerror(errno));
    if (raw && n >= 0 && len > AGENTS_MD_MAX) {
        ch_log_warn("agent: %s is over %d bytes; only its first %d are used", path, AGENTS_MD_MAX, AGENTS_MD_MAX);
        len = ch_utf8_cut(raw, AGENTS_MD_MAX);
    }
    ch_buf_init(&b, 4 * AGENTS_MD_MAX); /* U+FFFD is 3 bytes for each stray one */
    if (raw && n >= 0 && len && ch_buf_append_utf8_clean(&b, raw, len) == 0)
        out = ch_buf_detach(&b, &out_len);
    ch_buf_release(&b);
    ch_free(raw);
    ch_free(path);
    return out;
}

static int64_t env_int(const char *name, int64_t fallback, int64_t min, int64_t max)
{
    const char *v = getenv(name);
    char *end;
    long long x;

    if (!v || !*v)
        return fallback;
    errno = 0;
    x = strtoll(v, &end, 10);
    if (errno || *end || x < min || x > max) {
        ch_log_warn("agent: ignoring %s=%s (expected %lld..%lld)", name, v, (long long)min, (long long)max);
        return fallback;
    }
    return x;
}

static void apply_config(struct ch_agent *a, const struct ch_config *c)
{
    const char *sp = ch_config_str(c, "agents.defaults.systemPrompt", "");
    char *md = read_agents_md(a->workspace_dir);
    struct ch_buf b;

    a->cfg = c;
    a->max_concurrent = (size_t)ch_config_int(c, "agents.defaults.maxConcurrent", 32);
    a->queue_size = (size_t)ch_config_int(c, "agents.defaults.queueSize", 1024);
    a->timeout_s = ch_config_int(c, "agents.defaults.timeoutSeconds", 600);
    a->max_tool_rounds =
        (int)(ch_config_get(c, "agents.defaults.maxToolRounds") ? ch_config_int(c, "agents.defaults.maxToolRounds", 10)
                                                                : env_int("MAX_TOOL_ROUNDS", 10, 0, 1000));
    a->tool_timeout_ms = 1000 * (ch_config_get(c, "tools.timeoutSeconds") ? ch_config_int(c, "tools.timeoutSeconds", 30)
                                                                          : env_int("TOOL_TIMEOUT", 30, 1, 3600));
    a->compaction_ratio = ch_config_real(c, "agents.defaults.compaction.ratio", 0.8);
    a->reserve_tokens = ch_config_int(c, "agents.defaults.compaction.reserveTokensFloor", 4096);
    a->compaction_keep = (int)ch_config_int(c, "agents.defaults.compaction.keepMessages", 6);
    ch_tcache_set_max(&a->tcache, (size_t)ch_config_int(c, "agents.defaults.transcriptCacheBytes", 2 << 20));
    /* Fits: the configuration caps sp well under the 1 MiB a call's system
     * prompt holds, leaving room for md (cleaned, 3 x 64 KiB at most) and a
     * request's own instructions. */
    ch_buf_init(&b, CH_AGENT_MAX_SYSTEM_BYTES);
    if ((*sp && ch_buf_append_str(&b, sp)) || (md && b.len && ch_buf_append_str(&b, "\n\n")) ||
        (md && ch_buf_append_str(&b, md))) {
        /* Out of memory: a reload keeps the prompt in force; at start
         * ch_agent_new reports it. */
        ch_log_error("agent: out of memory building the system prompt%s", a->system_prompt ? "; kept the last" : "");
        ch_buf_release(&b);
    } else {
        ch_free(a->system_prompt);
        a->system_prompt = ch_buf_detach(&b, &a->system_prompt_len);
    }
    ch_free(md);
}

int ch_agent_new(const struct ch_agent_opts *o, struct ch_agent **out, struct ch_error *err)
{
    struct ch_agent *a = ch_calloc(1, sizeof(*a));

    *out = NULL;
    if (!a)
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    a->loop = o->loop;
    a->net = o->net;
    a->store = o->store;
    a->llm = o->llm;
    a->tools = o->tools;
    a->workspace_dir = o->workspace_dir ? ch_strdup(o->workspace_dir) : NULL;
    ch_map_init(&a->lanes);
    ch_map_init(&a->live);
    ch_map_init(&a->run_subs);
    ch_tcache_init(&a->tcache, 0);
    apply_config(a, o->cfg);
    if (!a->system_prompt) {
        ch_agent_free(a);
        return ch_error_set(err, CH_ENOMEM, "out of memory");
    }
    *out = a;
    return 0;
}

void ch_agent_reload(struct ch_agent *a, const struct ch_config *cfg)
{
    apply_config(a, cfg);
    ch_sched_pump(a); /* a larger maxConcurrent takes effect now */
}

void ch_agent_stats(const struct ch_agent *a, struct ch_agent_stats *out)
{
    *out = a->stats;
    out->running = a->running;
    out->queued = a->waiting;
    out->lanes = a->lanes.count;
    out->transcript_cache_bytes = a->tcache.bytes;
    out->transcript_cache_hits = a->tcache.hits;
    out->transcript_cache_misses = a->tcache.misses;
}

struct ch_llm_client *ch_agent_llm(struct ch_agent *a)
{
    return a->llm;
}

struct ch_tools *ch_agent_tools(struct ch_agent *a)
{
    return a->tools;
}

/* ---- resume ---- */

struct resume_job {
    struct ch_store_job job;
    struct ch_agent *agent;
    struct ch_run_list list;
    void (*cb)(int rc, size_t resumed, void *data);
    void *data;
};

static int resume_run(struct ch_db *db, struct ch_store_job *job)
{
    struct resume_job *rj = (struct resume_job *)job;
    int rc = ch_runs_requeue_running(db, NULL);
    if (rc)
        return rc;
    return ch_runs_list_unfinished(db, CH_STORE_MAX_LIST, &rj->list);
}

static struct ch_run *run_from_rec(struct ch_agent *a, const struct ch_run_rec *rec)
{
    struct ch_agent_run_req req = {0};
    struct ch_error err = {0};
    json_t *o = json_loads(rec->request ? rec->request : "{}", 0, NULL);
    struct ch_run *r;

    req.session_key = rec->session_key;
    req.run_id = rec->run_id;
    req.source = rec->source;
    req.channel = json_string_value(json_object_get(o, "channel"));
    req.idempotency_key = rec->idempotency_key;
    req.message = json_string_value(json_object_get(o, "message"));
    req.model = json_string_value(json_object_get(o, "model"));
    req.system_prompt = json_string_value(json_object_get(o, "systemPrompt"));
    req.extra_system = json_string_value(json_object_get(o, "extraSystem"));
    req.max_tokens = json_integer_value(json_object_get(o, "maxTokens"));
    req.timeout_s = json_integer_value(json_object_get(o, "timeoutSeconds"));
    req.no_tools = json_is_true(json_object_get(o, "noTools"));
    req.isolated = json_is_true(json_object_get(o, "isolated"));
    req.has_temperature = json_is_number(json_object_get(o, "temperature"));
    req.temperature = json_number_value(json_object_get(o, "temperature"));
    req.meta = json_object_get(o, "meta");
    req.sampling = json_object_get(o, "sampling");
    req.client_tools = json_object_get(o, "clientTools");
    req.images = json_object_get(o, "images");
    r = ch_run_new_from_req(a, &req, &err);
    if (!r)
        ch_log_error("agent: cannot resume run %s: %s", rec->run_id, err.msg);
    else
        r->resumed = true;
    json_decref(o);
    return r;
}

static void resume_done(struct ch_store_job *job, int rc)
{
    struct resume_job *rj = (struct resume_job *)job;
    struct ch_agent *a = rj->agent;
    size_t n = 0;

    a->jobs--;
    a->resuming = false;
    if (rc == 0 && !a->stopping) {
        for (size_t i = 0; i < rj->list.count; i++) {
            struct ch_run *r = run_from_rec(a, &rj->list.items[i]);
            if (!r)
                continue;
            r->created_ms = rj->list.items[i].created_ms;
            ch_sched_enqueue(a, r);
            n++;
        }
        a->stats.runs_resumed += n;
        if (n)
            ch_log_info("agent: resumed %zu unfinished run(s)", n);
        ch_sched_pump(a);
    } else if (rc) {
        ch_log_error("agent: cannot read unfinished runs: %s", ch_strerror(rc));
    }
    if (rj->cb)
        rj->cb(rc, n, rj->data);
    ch_run_list_release(&rj->list);
    ch_free(rj);
    ch_agent_maybe_stopped(a);
}

void ch_agent_resume(struct ch_agent *a, void (*cb)(int rc, size_t resumed, void *data), void *data)
{
    struct resume_job *rj = ch_calloc(1, sizeof(*rj));

    if (!rj || (rj->agent = a, rj->cb = cb, rj->data = data, rj->job.run = resume_run, rj->job.done = resume_done,
                ch_store_write(a->store, &rj->job) != 0)) {
        ch_free(rj);
        ch_log_error("agent: cannot queue the resumption of unfinished runs");
        if (cb)
            cb(CH_ENOMEM, 0, data);
        return;
    }
    a->jobs++;
    a->resuming = true;
}

/* ---- stop ---- */

void ch_agent_maybe_stopped(struct ch_agent *a)
{
    void (*cb)(void *);

    if (!a->stopping || a->running || a->jobs || !a->stop_cb)
        return;
    cb = a->stop_cb;
    a->stop_cb = NULL;
    cb(a->stop_data);
}

void ch_agent_stop(struct ch_agent *a, void (*cb)(void *data), void *data)
{
    struct ch_map_entry *me;
    size_t it = 0;

    a->stopping = true;
    a->stop_cb = cb;
    a->stop_data = data;
    /* Waiting runs stay `queued` in the store; running ones stay `running`
     * and are requeued at the next start. */
    while ((me = ch_map_next(&a->live, &it)) != NULL) {
        struct ch_run *r = me->value;
        r->stopping = true;
    }
    it = 0;
    while ((me = ch_map_next(&a->live, &it)) != NULL) {
        struct ch_run *r = me->value;
        if (r->state == RUN_FINISHING)
            ch_run_finish_retry_now(r); /* a last try at a write that failed */
        else if (r->state != RUN_QUEUED)
            ch_run_finish(r, "aborted", NULL, "gateway stopping");
    }
    ch_agent_maybe_stopped(a);
}

void ch_agent_free(struct ch_agent *a)
{
    struct ch_map_entry *me;
    size_t it = 0;

    if (!a)
        return;
    /* Queued runs still in lanes are freed; they are durable as `queued`. */
    while ((me = ch_map_next(&a->lanes, &it)) != NULL) {
        struct lane *l = me->value;
        struct ch_run *r = l->head;
        while (r) {
            struct ch_run *next = r->next;
            ch_run_free(r);
            r = next;
        }
        ch_free(l->key);
        ch_free(l);
    }
    ch_map_release(&a->lanes);
    ch_map_release(&a->live);
    ch_tcache_release(&a->tcache);
    json_decref(a->tools_memo);
    ch_bus_release(a);
    ch_free(a->system_prompt);
    ch_free(a->workspace_dir);
    ch_free(a);
}
