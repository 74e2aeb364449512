/*
 * usage.c: token usage arithmetic and cost in USD.
 *
 * Prices are USD per million tokens, the unit of the config's
 * models[].pricing.  The built-in table covers well-known models so a
 * config without pricing still shows a cost; the config overrides it.
 * Lookup: the exact id, then the longest table entry the id starts with
 * (dated ids such as claude-sonnet-4-20250514), each tried on the id as
 * given and on the part after its last '/' (OpenRouter-style
 * "openai/gpt-4o", or "anthropic/claude-...").
 */
#include <string.h>

#include "providers/internal.h"

struct price_row {
    const char *model;
    struct ch_llm_pricing p; /* input, output, cache_read, cache_write */
};

/* Public list prices at the time of writing (standard tier, prompts under
 * any long-context surcharge).  Anthropic cache writes are the 5-minute
 * rate (1.25x input), reads 0.1x.  OpenAI and Gemini bill no cache write. */
static const struct price_row prices[] = {
    {"claude-opus-4-5", {5, 25, 0.5, 6.25}},
    {"claude-opus-4", {15, 75, 1.5, 18.75}},
    {"claude-sonnet-4", {3, 15, 0.3, 3.75}},
    {"claude-haiku-4-5", {1, 5, 0.1, 1.25}},
    {"claude-3-7-sonnet", {3, 15, 0.3, 3.75}},
    {"claude-3-5-sonnet", {3, 15, 0.3, 3.75}},
    {"claude-3-5-haiku", {0.8, 4, 0.08, 1}},
    {"claude-3-opus", {15, 75, 1.5, 18.75}},
    {"claude-3-haiku", {0.25, 1.25, 0.03, 0.3}},
    {"gpt-4o", {2.5, 10, 1.25, 0}},
    {"gpt-4o-mini", {0.15, 0.6, 0.075, 0}},
    {"gpt-4.1", {2, 8, 0.5, 0}},
    {"gpt-4.1-mini", {0.4, 1.6, 0.1, 0}},
    {"gpt-4.1-nano", {0.1, 0.4, 0.025, 0}},
    {"gpt-5", {1.25, 10, 0.125, 0}},
    {"gpt-5-mini", {0.25, 2, 0.025, 0}},
    {"gpt-5-nano", {0.05, 0.4, 0.005, 0}},
    {"o3", {2, 8, 0.5, 0}},
    {"o3-mini", {1.1, 4.4, 0.55, 0}},
    {"o4-mini", {1.1, 4.4, 0.275, 0}},
    {"gemini-2.5-pro", {1.25, 10, 0.31, 0}},
    {"gemini-2.5-flash", {0.15, 0.6, 0.0375, 0}},
    {"gemini-2.5-flash-lite", {0.1, 0.4, 0.025, 0}},
    {"gemini-2.0-flash", {0.1, 0.4, 0.025, 0}},
    {"gemini-1.5-pro", {1.25, 5, 0.3125, 0}},
    {"gemini-1.5-flash", {0.075, 0.3, 0.01875, 0}},
};

static const struct price_row *lookup(const char *id)
{
    const struct price_row *best = NULL;
    size_t i, n, bestlen = 0;

    for (i = 0; i < CH_ARRAY_SIZE(prices); i++)
        if (strcmp(id, prices[i].model) == 0)
            return &prices[i];
    /* Longest prefix wins, so gpt-4o-mini-2024-07-18 is not priced as gpt-4o.
     * The next character must end a name part ('-', '.', ':', '@'), so
     * "o3" does not price "o30". */
    for (i = 0; i < CH_ARRAY_SIZE(prices); i++) {
        n = strlen(prices[i].model);
        if (n > bestlen && strncmp(id, prices[i].model, n) == 0 && strchr("-.:@", id[n])) {
            best = &prices[i];
            bestlen = n;
        }
    }
    return best;
}

bool ch_llm_pricing_default(const char *model, struct ch_llm_pricing *out)
{
    const struct price_row *r = NULL;
    const char *slash;

    memset(out, 0, sizeof(*out));
    if (!model || !model[0])
        return false;
    r = lookup(model);
    slash = strrchr(model, '/');
    if (!r && slash && slash[1])
        r = lookup(slash + 1);
    if (!r)
        return false;
    *out = r->p;
    return true;
}

double ch_llm_cost_usd(const struct ch_llm_pricing *p, const struct ch_llm_usage *u)
{
    /* Sum in double: token counts stay far below 2^53. */
    return ((double)u->input_tokens * p->input + (double)u->output_tokens * p->output +
            (double)u->cache_read_tokens * p->cache_read + (double)u->cache_write_tokens * p->cache_write) /
           1e6;
}

void ch_llm_usage_add(struct ch_llm_usage *a, const struct ch_llm_usage *b)
{
    a->input_tokens += b->input_tokens;
    a->output_tokens += b->output_tokens;
    a->cache_read_tokens += b->cache_read_tokens;
    a->cache_write_tokens += b->cache_write_tokens;
}
