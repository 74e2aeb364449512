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

    int rc = 0;

    /* Submission refuses a run whose prompt would not fit
     * (CH_AGENT_MAX_SYSTEM_BYTES); a failed append still fails the call
     * rather than send a prompt with its extra instructions left out. */
    ch_buf_init(&b, CH_AGENT_MAX_SYSTEM_BYTES);
    if (base && *base)
        rc = ch_buf_append_str(&b, base);
    if (rc == 0 && r->extra_system && *r->extra_system) {
        if (b.len)
            rc = ch_buf_append_str(&b, "\n\n");
        if (rc == 0)
            rc = ch_buf_append_str(&b, r->extra_system);
    }
    if (rc) {
        ch_buf_release(&b);
        return NULL;
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

/* What from_rows knows of each message it built, parallel to msgs. */
struct hmeta {
    size_t bytes;   /* compact JSON size of its content */
    bool assistant; /* role */
    bool tool_use;  /* an assistant turn with a tool_use block */
    bool own;       /* made for this history (else a row's shared msg) */
};

/*
 * A run that stopped between a tool call and its result (loop guard,
 * MAX_TOOL_ROUNDS, timeout, abort, crash) leaves a tool_use without its
 * tool_result; every provider refuses such a history.  Give each one a
 * result saying it was not run, at the head of the next user turn.  Only
 * the turns known to call a tool are looked at; a user turn that gets
 * results is replaced by a new message, never changed (it may be a
 * row's shared msg).
 */
static int close_dangling_tool_calls(json_t *msgs, const struct hmeta *meta, size_t n, bool *changed)
{
    size_t shift = 0; /* user turns inserted so far */

    for (size_t k = 0; k < n; k++) {
        size_t i = k + shift, j;
        json_t *m, *next, *blk, *missing, *turn;

        if (!meta[k].assistant || !meta[k].tool_use)
            continue;
        m = json_array_get(msgs, i);
        /* merged turns alternate, so the next one is a user turn */
        next = k + 1 < n && !meta[k + 1].assistant ? json_array_get(msgs, i + 1) : NULL;
        missing = json_array();
        if (!missing)
            return CH_ENOMEM;
        json_array_foreach(json_object_get(m, "content"), j, blk)
        {
            const char *t = json_string_value(json_object_get(blk, "type"));
            const char *id = json_string_value(json_object_get(blk, "id"));
            if (!t || strcmp(t, "tool_use") || !id)
                continue;
            if (next && has_result_for(json_object_get(next, "content"), id))
                continue;
            if (json_array_append_new(missing, json_pack("{s:s, s:s, s:s, s:b}", "type", "tool_result", "tool_use_id",
                                                         id, "content",
                                                         "not run: the earlier run stopped before this tool "
                                                         "call completed",
                                                         "is_error", 1))) {
                json_decref(missing);
                return CH_ENOMEM;
            }
        }
        if (json_array_size(missing) == 0) {
            json_decref(missing);
            continue;
        }
        *changed = true;
        if (next && json_array_extend(missing, json_object_get(next, "content"))) {
            json_decref(missing);
            return CH_ENOMEM;
        }
        turn = json_pack("{s:s, s:o}", "role", "user", "content", missing);
        if (!turn || (next ? json_array_set_new(msgs, i + 1, turn) : json_array_insert_new(msgs, i + 1, turn)))
            return CH_ENOMEM; /* both take turn */
        if (!next)
            shift++;
    }
    return 0;
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
 * merge).  A message starts as the row's own msg, shared: the common case
 * costs one incref per row and no allocation.  Where the history differs
 * from the rows (a merge, a tool result added) the message is replaced
 * by one of its own, so the cache's rows are never changed.
 */
json_t *ch_context_from_rows(const struct ch_tc_row *rows, size_t n, int64_t **seqs_out, size_t *nseqs,
                             size_t *json_bytes)
{
    json_t *msgs = json_array();
    int64_t *seqs = ch_malloc((n + 1) * sizeof(*seqs));
    struct hmeta *meta = ch_malloc((n + 1) * sizeof(*meta));
    size_t ns = 0, total;
    bool changed = false;

    *seqs_out = NULL;
    *nseqs = 0;
    *json_bytes = 0;
    if (!seqs || !meta || !msgs)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        const struct ch_tc_row *m = &rows[i];
        struct hmeta *last = ns ? &meta[ns - 1] : NULL;

        if (!m->msg)
            continue; /* unreadable or system: not replayed */
        if (last && last->assistant == m->assistant) {
            json_t *lm = json_array_get(msgs, ns - 1), *lc = json_object_get(lm, "content");
            if (!last->own) {
                json_t *own = json_object();
                lc = json_copy(lc);
                /* set_new takes lc even when it fails */
                if (!own || json_object_set_nocheck(own, "role", json_object_get(lm, "role")) ||
                    json_object_set_new_nocheck(own, "content", lc) || json_array_set_new(msgs, ns - 1, own))
                    goto fail;
                last->own = true;
            }
            if (json_array_extend(lc, m->content))
                goto fail;
            last->bytes = merged_bytes(last->bytes, m->json_bytes);
            last->tool_use |= m->tool_use;
            continue;
        }
        if (json_array_append(msgs, m->msg))
            goto fail;
        meta[ns] = (struct hmeta){.bytes = m->json_bytes, .assistant = m->assistant, .tool_use = m->tool_use};
        seqs[ns] = m->seq;
        ns++;
    }
    /* A transcript must not open with an assistant turn or a dangling
     * tool result whose call was compacted away. */
    while (ns) {
        json_t *c0 = json_array_get(json_object_get(json_array_get(msgs, 0), "content"), 0);
        const char *t = json_string_value(json_object_get(c0, "type"));
        if (!meta[0].assistant && !(t && !strcmp(t, "tool_result")))
            break;
        json_array_remove(msgs, 0);
        memmove(seqs, seqs + 1, (ns - 1) * sizeof(*seqs));
        memmove(meta, meta + 1, (ns - 1) * sizeof(*meta));
        ns--;
    }
    if (close_dangling_tool_calls(msgs, meta, ns, &changed))
        goto fail;
    if (changed) {
        total = ch_context_json_size(msgs); /* rare: measure it */
    } else {
        total = 2 + (ns ? ns - 1 : 0);
        for (size_t i = 0; i < ns; i++)
            total += ch_context_message_bytes(meta[i].assistant ? "assistant" : "user", meta[i].bytes);
    }
    ch_free(meta);
    *seqs_out = seqs;
    *nseqs = ns;
    *json_bytes = total;
    return msgs;
fail:
    ch_free(seqs);
    ch_free(meta);
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
    /* NULL, as for a stored message, when it is not UTF-8. */
    return ch_llm_text_content(message, strlen(message));
}

size_t ch_context_image_bytes(const json_t *content, size_t *count)
{
    const json_t *blk;
    size_t i, bytes = 0;

    json_array_foreach(content, i, blk)
    {
        const json_t *data = json_object_get(json_object_get(blk, "source"), "data");
        const char *t = json_string_value(json_object_get(blk, "type"));
        if (t && !strcmp(t, "image") && json_is_string(data)) {
            bytes += json_string_length(data);
            (*count)++;
        }
    }
    return bytes;
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
