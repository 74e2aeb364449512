/*
 * transcript.c: the transcript cache.  A session's stored rows, parsed
 * once, kept on the loop thread in an LRU bounded by bytes
 * (agents.defaults.transcriptCacheBytes), so a turn appends to its
 * session's cached history instead of reloading and re-parsing up to 400
 * rows from SQLite.  Correctness does not rest on invalidation hooks in
 * every writer: the run's start job compares the store's transcript ends
 * (ch_messages_bounds: first and last seq and id) with the ends this copy
 * was made from, inside the same transaction that appends the user
 * message, and reloads on any difference (chat.inject, sessions.compact,
 * reset, delete, another process).  Each row also keeps the neutral
 * message a history holds for it ({"role","content"}), built once when
 * the row enters the entry, so building a turn's history is one incref
 * per row instead of a new object (four allocations) per row per turn.
 * Content and messages are shared with the runs' histories by reference
 * and never mutated.
 */
#include <string.h>

#include "agent/internal.h"

/* What a row costs beyond its text: jansson's array, block object (its
 * hash table) and strings, measured at about 0.5 KiB for a text block,
 * plus the row's message object (object, hash table, two pairs: 325
 * bytes from ch_malloc, test_history_diff checks it).  The stored text
 * itself is not kept, only its parsed content. */
#define ROW_OVERHEAD (512 + 336)
#define ENTRY_OVERHEAD 256

static size_t row_cost(const struct ch_tc_row *row)
{
    return sizeof(*row) + ROW_OVERHEAD + row->text_bytes;
}

static void lru_unlink(struct ch_tcache *c, struct ch_tc_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push_head(struct ch_tcache *c, struct ch_tc_entry *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    else
        c->tail = e;
    c->head = e;
}

void ch_tc_entry_ref(struct ch_tc_entry *e)
{
    e->refs++;
}

void ch_tc_entry_unref(struct ch_tc_entry *e)
{
    if (!e || --e->refs > 0)
        return;
    for (size_t i = 0; i < e->count; i++) {
        json_decref(e->rows[i].msg);
        json_decref(e->rows[i].content);
    }
    json_decref(e->role_user);
    json_decref(e->role_asst);
    json_decref(e->type_text);
    ch_free(e->rows);
    ch_free(e->key);
    ch_free(e->session_id);
    ch_free(e);
}

struct ch_tc_entry *ch_tc_entry_new(const char *key, const char *session_id)
{
    struct ch_tc_entry *e = ch_calloc(1, sizeof(*e));

    if (!e)
        return NULL;
    e->refs = 1;
    e->key = ch_strdup(key);
    e->session_id = ch_strdup(session_id);
    e->cost = sizeof(*e) + ENTRY_OVERHEAD + 2 * strlen(key);
    e->role_user = json_string("user");
    e->role_asst = json_string("assistant");
    e->type_text = json_string("text");
    if (!e->key || !e->session_id || !e->role_user || !e->role_asst || !e->type_text) {
        ch_tc_entry_unref(e);
        return NULL;
    }
    return e;
}

/* Take e out of the map and the LRU; the map's reference goes. */
static void evict(struct ch_tcache *c, struct ch_tc_entry *e)
{
    if (!e->in_map)
        return;
    ch_map_del(&c->map, e->key, strlen(e->key));
    lru_unlink(c, e);
    c->bytes -= e->cost;
    e->in_map = false;
    e->cache = NULL;
    ch_tc_entry_unref(e);
}

static void fit(struct ch_tcache *c)
{
    while (c->bytes > c->max_bytes && c->tail)
        evict(c, c->tail);
}

void ch_tcache_init(struct ch_tcache *c, size_t max_bytes)
{
    memset(c, 0, sizeof(*c));
    ch_map_init(&c->map);
    c->max_bytes = max_bytes;
}

void ch_tcache_release(struct ch_tcache *c)
{
    while (c->head)
        evict(c, c->head);
    ch_map_release(&c->map);
}

void ch_tcache_set_max(struct ch_tcache *c, size_t max_bytes)
{
    c->max_bytes = max_bytes;
    fit(c);
}

struct ch_tc_entry *ch_tcache_get(struct ch_tcache *c, const char *key)
{
    struct ch_tc_entry *e = c->max_bytes ? ch_map_get(&c->map, key, strlen(key)) : NULL;

    if (e && e != c->head) {
        lru_unlink(c, e);
        lru_push_head(c, e);
    }
    return e;
}

void ch_tcache_put(struct ch_tcache *c, struct ch_tc_entry *e)
{
    struct ch_tc_entry *old;

    if (e->in_map || !c->max_bytes || e->cost > c->max_bytes)
        return;
    old = ch_map_get(&c->map, e->key, strlen(e->key));
    if (old)
        evict(c, old);
    if (ch_map_set(&c->map, e->key, strlen(e->key), e, NULL) != 0)
        return; /* out of memory: simply not cached */
    ch_tc_entry_ref(e);
    e->in_map = true;
    e->cache = c;
    lru_push_head(c, e);
    c->bytes += e->cost;
    fit(c);
}

void ch_tcache_drop(struct ch_tcache *c, struct ch_tc_entry *e)
{
    if (e && e->in_map && e->cache == c)
        evict(c, e);
}

/* Keep the same window a reload would give: ch_messages_load_last of at
 * most CH_TRANSCRIPT_MAX_ROWS rows and CH_TRANSCRIPT_MAX_BYTES of text. */
static void trim_window(struct ch_tc_entry *e)
{
    size_t drop = 0, freed = 0, text = e->text_bytes;

    while (drop < e->count && (e->count - drop > CH_TRANSCRIPT_MAX_ROWS || text > CH_TRANSCRIPT_MAX_BYTES)) {
        text -= e->rows[drop].text_bytes;
        freed += row_cost(&e->rows[drop]);
        json_decref(e->rows[drop].msg);
        json_decref(e->rows[drop].content);
        drop++;
    }
    if (!drop)
        return;
    memmove(e->rows, e->rows + drop, (e->count - drop) * sizeof(*e->rows));
    e->count -= drop;
    e->text_bytes = text;
    e->cost -= freed;
    if (e->cache)
        e->cache->bytes -= freed;
}

#define TEXT_HEAD "[{\"type\":\"text\",\"text\":\""
#define TEXT_TAIL "\"}]"

/*
 * The common stored row, one text block without escapes, as the agent
 * writes it ([{"type":"text","text":"..."}], compact), built without
 * jansson's parser: json_loadb costs about 9,000 instructions for a short
 * row, and a turn that misses the cache parses every row of its history.
 * The tree is the one json_loadb gives (same keys in the same order, the
 * same UTF-8 check); anything else, escapes included, returns NULL and
 * takes the parser.
 */
static json_t *plain_text_block(struct ch_tc_entry *e, const char *text, size_t len)
{
    const size_t hl = sizeof(TEXT_HEAD) - 1, tl = sizeof(TEXT_TAIL) - 1;
    const char *p;
    size_t n;
    json_t *arr, *blk, *str;

    if (len < hl + tl || memcmp(text, TEXT_HEAD, hl) || memcmp(text + len - tl, TEXT_TAIL, tl))
        return NULL;
    p = text + hl;
    n = len - hl - tl;
    if (ch_json_plain_len(p, n, false) != n)
        return NULL;          /* a quote, backslash or control byte inside */
    str = json_stringn(p, n); /* NULL when not UTF-8: the parser refuses it too */
    if (!str)
        return NULL;
    blk = json_object();
    if (!blk || json_object_set_nocheck(blk, "type", e->type_text)) {
        json_decref(str);
        json_decref(blk);
        return NULL;
    }
    /* the _new setters take their value even when they fail */
    if (json_object_set_new_nocheck(blk, "text", str)) {
        json_decref(blk);
        return NULL;
    }
    arr = json_array();
    if (json_array_append_new(arr, blk)) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* Stored content as a content array: a bare string becomes one text
 * block, a compaction entry the summary turn; NULL when unreadable. */
static json_t *parse_content(struct ch_tc_entry *e, const char *role, const char *text, size_t len)
{
    json_error_t jerr;
    json_t *c, *out;
    const char *summary;
    char *s;

    if (text && strcmp(role, "compaction") && (c = plain_text_block(e, text, len)) != NULL)
        return c;
    c = json_loadb(text ? text : "[]", text ? len : 2, 0, &jerr);
    if (!c)
        return NULL;
    if (json_is_string(c)) {
        out = json_pack("[{s:s, s:O}]", "type", "text", "text", c);
        json_decref(c);
        return out;
    }
    if (!json_is_array(c)) {
        json_decref(c);
        return NULL;
    }
    if (strcmp(role, "compaction"))
        return c;
    summary = json_string_value(json_object_get(json_array_get(c, 0), "summary"));
    s = ch_sprintf("Summary of the earlier part of this conversation:\n%s", summary ? summary : "");
    out = s ? json_pack("[{s:s, s:s}]", "type", "text", "text", s) : NULL;
    ch_free(s);
    json_decref(c);
    return out;
}

static bool has_tool_use(const json_t *content)
{
    const json_t *blk;
    size_t i;

    json_array_foreach(content, i, blk)
    {
        const char *t = json_string_value(json_object_get(blk, "type"));
        if (t && !strcmp(t, "tool_use") && json_is_string(json_object_get(blk, "id")))
            return true;
    }
    return false;
}

/* The row's neutral message: tool results travel as user turns, a
 * compaction entry is a user summary turn, system rows are not replayed.
 * Built by hand: json_pack would parse its format and copy the role. */
static int row_message(struct ch_tc_entry *e, struct ch_tc_row *row)
{
    const char *r = row->role;

    if (!row->content)
        return 0; /* an unreadable row is skipped, never fatal */
    row->assistant = !strcmp(r, "assistant");
    if (!row->assistant && strcmp(r, "user") && strcmp(r, "tool") && strcmp(r, "compaction"))
        return 0;
    row->tool_use = row->assistant && has_tool_use(row->content);
    row->msg = json_object();
    if (!row->msg || json_object_set_nocheck(row->msg, "role", row->assistant ? e->role_asst : e->role_user) ||
        json_object_set_nocheck(row->msg, "content", row->content)) {
        json_decref(row->msg); /* the caller drops the entry; never half a message */
        row->msg = NULL;
        return CH_ENOMEM;
    }
    return 0;
}

/* json_bytes 0: measure content (a row whose stored text is not its
 * compact encoding: a bare string, a compaction entry). */
static int push_row(struct ch_tc_entry *e, int64_t seq, const char *role, json_t *content /* stolen */,
                    size_t text_bytes, size_t json_bytes)
{
    struct ch_tc_row *row;

    if (e->count == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 8;
        struct ch_tc_row *rows = ch_realloc(e->rows, cap * sizeof(*rows));
        if (!rows) {
            json_decref(content);
            return CH_ENOMEM;
        }
        e->rows = rows;
        e->cap = cap;
    }
    row = &e->rows[e->count++];
    memset(row, 0, sizeof(*row));
    row->seq = seq;
    snprintf(row->role, sizeof(row->role), "%s", role);
    row->content = content;
    row->json_bytes = !content ? 0 : json_bytes ? json_bytes : json_dumpb(content, NULL, 0, JSON_COMPACT);
    row->text_bytes = text_bytes;
    if (content && row->json_bytes > CH_IMAGE_EST_BYTES) { /* a small row holds no image worth counting */
        size_t n = 0;
        row->image_bytes = ch_context_image_bytes(content, &n);
        row->images = (uint32_t)n;
    }
    e->text_bytes += text_bytes;
    e->cost += row_cost(row);
    if (e->cache)
        e->cache->bytes += row_cost(row);
    return row_message(e, row);
}

int ch_tc_entry_fill(struct ch_tc_entry *e, const struct ch_message_list *l, const struct ch_message_bounds *b)
{
    int rc;

    for (size_t i = 0; i < l->count; i++) {
        const struct ch_message_rec *m = &l->items[i];
        size_t len = m->content ? strlen(m->content) : 0;
        bool as_is = len && m->content[0] == '[' && strcmp(m->role, "compaction");
        /* An unreadable row is kept without content: skipped, never fatal.
         * A stored array is taken as its own compact encoding (the agent
         * writes them with json_dumps): its size is the text's, without
         * encoding it again; only the token estimate uses it. */
        rc = push_row(e, m->seq, m->role, parse_content(e, m->role, m->content, len), len, as_is ? len : 0);
        if (rc)
            return rc;
    }
    e->bounds = *b;
    trim_window(e);
    return 0;
}

int ch_tc_entry_append(struct ch_tc_entry *e, int64_t seq, int64_t id, const char *role, json_t *content,
                       size_t text_bytes, size_t json_bytes)
{
    int rc;

    /* Seqs are dense per session: a gap means another writer got in. */
    if (e->bounds.last_seq && seq != e->bounds.last_seq + 1)
        return CH_ESTATE;
    rc = push_row(e, seq, role, json_incref(content), text_bytes, json_bytes);
    if (rc)
        return rc;
    if (!e->bounds.first_seq) {
        e->bounds.first_seq = seq;
        e->bounds.first_id = id;
    }
    e->bounds.last_seq = seq;
    e->bounds.last_id = id;
    snprintf(e->bounds.last_role, sizeof(e->bounds.last_role), "%s", role);
    trim_window(e);
    if (e->cache)
        fit(e->cache);
    return 0;
}
