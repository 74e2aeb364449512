/*
 * test_usage.c: built-in pricing lookup (exact, longest prefix, after a
 * provider/ prefix, word boundaries), the cost arithmetic per million
 * tokens including cache reads and writes, and usage sums (usage.c).
 */
#include <math.h>

#include "providers_test.h"

static void expect_price(const char *model, double in, double out, double cr, double cw)
{
    struct ch_llm_pricing p;

    if (!ch_llm_pricing_default(model, &p))
        fail_msg("%s: no built-in price", model);
    if (p.input != in || p.output != out || p.cache_read != cr || p.cache_write != cw)
        fail_msg("%s: got %g/%g/%g/%g", model, p.input, p.output, p.cache_read, p.cache_write);
}

static void expect_unknown(const char *model)
{
    struct ch_llm_pricing p = {1, 2, 3, 4};

    assert_false(ch_llm_pricing_default(model, &p));
    assert_true(p.input == 0 && p.output == 0 && p.cache_read == 0 && p.cache_write == 0);
}

static void test_lookup(void **state)
{
    (void)state;
    expect_price("claude-sonnet-4", 3, 15, 0.3, 3.75);
    expect_price("claude-sonnet-4-20250514", 3, 15, 0.3, 3.75);
    expect_price("claude-sonnet-4-5-20250929", 3, 15, 0.3, 3.75);
    expect_price("claude-opus-4-20250514", 15, 75, 1.5, 18.75);
    expect_price("claude-opus-4-1-20250805", 15, 75, 1.5, 18.75);
    expect_price("claude-opus-4-5-20251101", 5, 25, 0.5, 6.25);
    expect_price("claude-haiku-4-5", 1, 5, 0.1, 1.25);
    expect_price("claude-3-5-haiku-latest", 0.8, 4, 0.08, 1);
    expect_price("gpt-4o", 2.5, 10, 1.25, 0);
    expect_price("gpt-4o-2024-08-06", 2.5, 10, 1.25, 0);
    expect_price("gpt-4o-mini", 0.15, 0.6, 0.075, 0);
    expect_price("gpt-4o-mini-2024-07-18", 0.15, 0.6, 0.075, 0);
    expect_price("openai/gpt-4o-mini", 0.15, 0.6, 0.075, 0);
    expect_price("anthropic/claude-sonnet-4", 3, 15, 0.3, 3.75);
    expect_price("o3", 2, 8, 0.5, 0);
    expect_price("o3-mini-2025-01-31", 1.1, 4.4, 0.55, 0);
    expect_price("gemini-2.5-flash", 0.15, 0.6, 0.0375, 0);
    expect_price("gemini-2.5-flash-preview-05-20", 0.15, 0.6, 0.0375, 0);
    expect_price("gemini-2.5-flash-lite", 0.1, 0.4, 0.025, 0);
    expect_price("gemini-2.5-pro", 1.25, 10, 0.31, 0);
    expect_price("models/gemini-2.5-pro", 1.25, 10, 0.31, 0);
    expect_unknown("o30"); /* a prefix must end at a name boundary */
    expect_unknown("gpt-4oo");
    expect_unknown("llama3.1:8b");
    expect_unknown("claude");
    expect_unknown("vendor/");
    expect_unknown("");
    expect_unknown(NULL);
}

static bool near(double a, double b)
{
    return fabs(a - b) < 1e-12;
}

static void test_cost(void **state)
{
    struct ch_llm_pricing p;
    struct ch_llm_usage u = {0};
    struct ch_llm_pricing zero = {0};

    (void)state;
    assert_true(ch_llm_pricing_default("claude-sonnet-4-20250514", &p));
    u.input_tokens = 1000000;
    assert_true(near(ch_llm_cost_usd(&p, &u), 3.0));
    u.output_tokens = 1000000;
    assert_true(near(ch_llm_cost_usd(&p, &u), 18.0));
    u.cache_read_tokens = 1000000;
    u.cache_write_tokens = 1000000;
    assert_true(near(ch_llm_cost_usd(&p, &u), 18.0 + 0.3 + 3.75));
    /* The example sizes: a small turn. */
    assert_true(ch_llm_pricing_default("gpt-4o-mini", &p));
    u = (struct ch_llm_usage){.input_tokens = 1000, .output_tokens = 500};
    assert_true(near(ch_llm_cost_usd(&p, &u), 0.00015 + 0.0003));
    u.cache_read_tokens = 2000;
    assert_true(near(ch_llm_cost_usd(&p, &u), 0.00015 + 0.0003 + 0.00015));
    assert_true(near(ch_llm_cost_usd(&zero, &u), 0));
    /* Large counts stay exact enough in double. */
    u = (struct ch_llm_usage){.input_tokens = 4000000000ULL};
    p = (struct ch_llm_pricing){.input = 1.25};
    assert_true(near(ch_llm_cost_usd(&p, &u), 5000.0));
}

static void test_usage_add(void **state)
{
    struct ch_llm_usage a = {1, 2, 3, 4}, b = {10, 20, 30, 40};

    (void)state;
    ch_llm_usage_add(&a, &b);
    assert_int_equal(a.input_tokens, 11);
    assert_int_equal(a.output_tokens, 22);
    assert_int_equal(a.cache_read_tokens, 33);
    assert_int_equal(a.cache_write_tokens, 44);
    assert_int_equal(b.input_tokens, 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_cost),
        cmocka_unit_test(test_usage_add),
    };

    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
