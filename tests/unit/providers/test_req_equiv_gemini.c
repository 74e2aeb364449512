/*
 * test_req_equiv_gemini.c: the direct Gemini body writer
 * (gemini_req.c, req_body.c) against the jansson-tree builder it
 * replaced (ref/gemini_req_tree.inc, the previous gemini_req.c
 * verbatim): the same bytes on a thousand varied histories.
 */
#include "req_equiv.h"

#include "providers/internal.h"

#define llm_build_gemini ref_build_gemini
#include "ref/gemini_req_tree.inc"
#undef llm_build_gemini

static void test_same_bytes(void **state)
{
    (void)state;
    eq_compare(CH_LLM_GEMINI, ref_build_gemini, 1000);
}

/* The reference took an invalid UTF-8 system prompt as out of memory;
 * the direct writer says what is wrong. */
static void test_bad_utf8(void **state)
{
    json_t *msgs = json_pack("[{s:s, s:s}]", "role", "user", "content", "hi");
    struct ch_llm_request r = {.model = "m", .system = "bad \xff", .messages = msgs, .max_tokens = 10};
    struct ch_llm_http h;
    struct ch_error e = {0};

    (void)state;
    assert_int_equal(ch_llm_build_request(CH_LLM_GEMINI, &r, &h, &e), CH_EINVAL);
    assert_non_null(strstr(e.msg, "UTF-8"));
    json_decref(msgs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_bytes),
        cmocka_unit_test(test_bad_utf8),
    };

    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
