/*
 * context.c: what the model sees.  The system prompt is the configured
 * prompt (agents.defaults.systemPrompt) plus the workspace's AGENTS.md,
 * plus any per-run addition.  The transcript is converted from stored
 * rows to neutral messages (tool results travel as user turns, a
 * compaction entry becomes a summary turn, consecutive turns of one role
 * are merged so every provider accepts the alternation).  Token counts
 * are estimated at 4 bytes per token: good enough to decide when to
 * compact, and cheap; the provider's usage report is what gets billed.
 */
#include <string.h>

#include "agent/internal.h"

char *ch_context_system_prompt(struct ch_agent *a, struct ch_run *r)
{
    const char *base = r->system_prompt ? r->system_prompt : a->system_prompt;
    struct ch_buf b;

    ch_buf_init(&b, 1 << 20);
    if (base && *base)
        ch_buf_append_str(&b, base);
    if (r->extra_system && *r->extra_system) {
        if (b.len)
            ch_buf_append_str(&b, "\n\n");
        ch_buf_append_str(&b, r->extra_system);
    }
    return ch_buf_detach(&b, NULL);
}

static bool has_result_for(const json_t *content, const char *id)
{
    const json_t *blk;
    size_t i;

    json_array_foreach(content, i, blk)
    {
        const char *t = json_string_value(json_object_get(blk, "type"));
        const char *rid = json_string_value(json_object_get(blk, "tool_use_id"));
        if (t && !strcmp(t, "tool_result") && rid && !strcmp(rid, id))
            return true;
    }
    return false;
}

/*
 * A run that stopped between a tool call and its result (loop guard,
 * MAX_TOOL_ROUNDS, timeout, abort, crash) leaves a tool_use without its
 * tool_result; every provider refuses such a history.  Give each one a
 * result saying it was not run, at the head of the next user turn.
 */
static bool close_dangling_tool_calls(json_t *msgs)
{
    bool changed = false;

    for (size_t i = 0; i < json_array_size(msgs); i++) {
        json_t *m = json_array_get(msgs, i), *next, *blk, *missing;
        size_t j;

        if (strcmp(json_string_value(json_object_get(m, "role")), "assistant"))
            continue;
        next = json_array_get(msgs, i + 1);
        missing = json_array();
        json_array_foreach(json_object_get(m, "content"), j, blk)
        {
            const char *t = json_string_value(json_object_get(blk, "type"));
            const char *id = json_string_value(json_object_get(blk, "id"));
            if (!t || strcmp(t, "tool_use") || !id)
                continue;
            if (next && has_result_for(json_object_get(next, "content"), id))
                continue;
            json_array_append_new(missing,
                                  json_pack("{s:s, s:s, s:s, s:b}", "type", "tool_result", "tool_use_id", id, "content",
                                            "not run: the earlier run stopped before this tool "
                                            "call completed",
                                            "is_error", 1));
        }
        if (json_array_size(missing) == 0) {
            json_decref(missing);
            continue;
        }
        changed = true;
        if (next && !strcmp(json_string_value(json_object_get(next, "role")), "user")) {
            json_array_extend(missing, json_object_get(next, "content"));
            json_object_set_new(next, "content", missing);
        } else {
            json_array_insert_new(msgs, i + 1, json_pack("{s:s, s:o}", "role", "user", "content", missing));
        }
    }
    return changed;
}

json_t *ch_context_from_transcript(const struct ch_message_list *l, int64_t **seqs_out, size_t *nseqs)
{
    struct ch_message_bounds none = {0};
    struct ch_tc_entry *e = ch_tc_entry_new("-", "-");
    json_t *msgs = NULL;
    size_t bytes;

    *seqs_out = NULL;
    *nseqs = 0;
    if (e && ch_tc_entry_fill(e, l, &none) == 0)
        msgs = ch_context_from_rows(e->rows, e->count, seqs_out, nseqs, &bytes);
    ch_tc_entry_unref(e);
    return msgs;
}

/* Size of the content array [a..., b...] from the sizes of [a...] and [b...]. */
static size_t merged_bytes(size_t a, size_t b)
{
    if (a <= 2)
        return b;
    if (b <= 2)
        return a;
    return a + b - 1; /* "][" becomes "," */
}

size_t ch_context_message_bytes(const char *role, size_t content_bytes)
{
    /* {"role":"<role>","content":<content>} */
    return 22 + strlen(role) + content_bytes;
}

/*
 * Rows to neutral messages (tool results travel as user turns, a
 * compaction entry is a user summary turn, consecutive turns of one role
 * merge).  A message's content starts as the row's own array, shared;
 * it is copied (shallow) before a merge appends to it, so the cache's
 * rows are never changed.
 */
json_t *ch_context_from_rows(const struct ch_tc_row *rows, size_t n, int64_t **seqs_out, size_t *nseqs,
                             size_t *json_bytes)
{
    json_t *msgs = json_array(), *user = json_string("user"), *assistant = json_string("assistant");
    json_t *last = NULL;
    bool last_shared = false;
    int64_t *seqs = ch_calloc(n + 1, sizeof(*seqs));
    size_t *sizes = ch_calloc(n + 1, sizeof(*sizes));
    size_t ns = 0, total;

    *seqs_out = NULL;
    *nseqs = 0;
    *json_bytes = 0;
    if (!seqs || !sizes || !msgs || !user || !assistant)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        const struct ch_tc_row *m = &rows[i];
        const char *role;

        if (!m->content)
            continue; /* an unreadable row is skipped, never fatal */
        if (!strcmp(m->role, "assistant"))
            role = "assistant";
        else if (!strcmp(m->role, "compaction") || !strcmp(m->role, "user") || !strcmp(m->role, "tool"))
            role = "user";
        else
            continue; /* system rows are not replayed */
        if (last && !strcmp(json_string_value(json_object_get(last, "role")), role)) {
            json_t *lc = json_object_get(last, "content");
            if (last_shared) {
                lc = json_copy(lc);
                if (!lc || json_object_set_new(last, "content", lc))
                    goto fail;
                last_shared = false;
            }
            if (json_array_extend(lc, m->content))
                goto fail;
            sizes[ns - 1] = merged_bytes(sizes[ns - 1], m->json_bytes);
            continue;
        }
        /* Built by hand: json_pack would parse its format and copy the
         * role for every message of every turn. */
        last = json_object();
        if (!last || json_array_append_new(msgs, last) ||
            json_object_set_nocheck(last, "role", role[0] == 'a' ? assistant : user) ||
            json_object_set_nocheck(last, "content", m->content))
            goto fail;
        last_shared = true;
        seqs[ns] = m->seq;
        sizes[ns] = m->json_bytes;
        ns++;
    }
    /* A transcript must not open with an assistant turn or a dangling
     * tool result whose call was compacted away. */
    while (json_array_size(msgs)) {
        json_t *first = json_array_get(msgs, 0);
        json_t *c0 = json_array_get(json_object_get(first, "content"), 0);
        const char *t = json_string_value(json_object_get(c0, "type"));
        if (strcmp(json_string_value(json_object_get(first, "role")), "assistant") && !(t && !strcmp(t, "tool_result")))
            break;
        json_array_remove(msgs, 0);
        memmove(seqs, seqs + 1, (ns - 1) * sizeof(*seqs));
        memmove(sizes, sizes + 1, (ns - 1) * sizeof(*sizes));
        ns--;
    }
    if (close_dangling_tool_calls(msgs)) {
        total = ch_context_json_size(msgs); /* rare: measure it */
    } else {
        total = 2 + (ns ? ns - 1 : 0);
        for (size_t i = 0; i < ns; i++)
            total +=
                ch_context_message_bytes(json_string_value(json_object_get(json_array_get(msgs, i), "role")), sizes[i]);
    }
    ch_free(sizes);
    json_decref(user);
    json_decref(assistant);
    *seqs_out = seqs;
    *nseqs = ns;
    *json_bytes = total;
    return msgs;
fail:
    ch_free(seqs);
    ch_free(sizes);
    json_decref(user);
    json_decref(assistant);
    json_decref(msgs);
    return NULL;
}

/* The user message as stored: one text block.  ch_buf_append_json_str
 * writes what jansson's compact encoder writes, so this is the json_dumps
 * of ch_context_user_content_json(message). */
char *ch_context_user_content(const char *message)
{
    struct ch_buf b;

    ch_buf_init(&b, CH_STORE_MAX_CONTENT_BYTES);
    ch_buf_append_str(&b, "[{\"type\":\"text\",\"text\":");
    ch_buf_append_json_str(&b, message, strlen(message));
    if (ch_buf_append_str(&b, "}]") != 0) {
        ch_buf_release(&b);
        return NULL;
    }
    return ch_buf_detach(&b, NULL);
}

json_t *ch_context_user_content_json(const char *message)
{
    json_t *block = json_object(), *arr = json_array();

    /* set_new takes its value even when it fails (a NULL one included):
     * json_string refuses a message that is not UTF-8.  Keys go in the
     * stored order: jansson keeps insertion order. */
    if (!block || !arr || json_object_set_new(block, "type", json_string("text")) != 0 ||
        json_object_set_new(block, "text", json_string(message)) != 0 || json_array_append(arr, block) != 0) {
        json_decref(block);
        json_decref(arr);
        return NULL;
    }
    json_decref(block);
    return arr;
}

size_t ch_context_json_size(const json_t *v)
{
    /* json_dumpb with no buffer measures without allocating. */
    return v ? json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY) : 0;
}

int64_t ch_context_estimate_bytes(size_t system_bytes, size_t messages_bytes, size_t tools_bytes)
{
    return (int64_t)((system_bytes + messages_bytes + tools_bytes) / 4) + 16;
}

int64_t ch_context_estimate_tokens(const char *system, const json_t *messages, const json_t *tools)
{
    return ch_context_estimate_bytes(system ? strlen(system) : 0, ch_context_json_size(messages),
                                     ch_context_json_size(tools));
}

/*
 * Where to cut when the history is over budget: keep the newest
 * compaction_keep messages (at least the last user turn), summarise the
 * rest.  The cut never lands between a tool call and its result: it moves
 * back to a user turn that is not a tool result.
 */
ssize_t ch_context_compaction_split(struct ch_agent *a, const json_t *messages, int64_t budget)
{
    size_t n = json_array_size(messages);
    ssize_t cut;

    (void)budget;
    if (n <= (size_t)a->compaction_keep + 1)
        return -1;
    for (cut = (ssize_t)(n - (size_t)a->compaction_keep); cut > 0; cut--) {
        const json_t *m = json_array_get(messages, (size_t)cut);
        const json_t *c0 = json_array_get(json_object_get(m, "content"), 0);
        const char *t = json_string_value(json_object_get(c0, "type"));
        if (!strcmp(json_string_value(json_object_get(m, "role")), "user") && !(t && !strcmp(t, "tool_result")))
            return cut;
    }
    return -1;
}

/* Plain text of messages[0, upto) for the summariser, capped. */
char *ch_context_transcript_text(const json_t *messages, size_t upto, size_t max_bytes)
{
    struct ch_buf b;

    ch_buf_init(&b, max_bytes);
    for (size_t i = 0; i < upto && i < json_array_size(messages); i++) {
        const json_t *m = json_array_get(messages, i), *blk;
        size_t j;
        ch_buf_appendf(&b, "%s: ", json_string_value(json_object_get(m, "role")));
        json_array_foreach(json_object_get(m, "content"), j, blk)
        {
            const char *t = json_string_value(json_object_get(blk, "type"));
            if (!t)
                continue;
            if (!strcmp(t, "text") && json_string_value(json_object_get(blk, "text")))
                ch_buf_append_str(&b, json_string_value(json_object_get(blk, "text")));
            else if (!strcmp(t, "tool_use"))
                ch_buf_appendf(&b, "[called tool %s]", json_string_value(json_object_get(blk, "name")));
            else if (!strcmp(t, "tool_result"))
                ch_buf_appendf(&b, "[tool result: %.500s]", json_string_value(json_object_get(blk, "content")));
        }
        if (ch_buf_append_char(&b, '\n') == CH_E_TOO_LARGE)
            break;
    }
    return ch_buf_detach(&b, NULL);
}
