/*
 * test_req_equiv_openai.c: the OpenAI body writer reading each block in
 * one walk (openai_req.c, req_body.c) against the writer before that
 * change (ref/openai_req_prev.inc, verbatim): the same bytes on a
 * thousand varied histories.
 */
#include "req_equiv.h"

#include "providers/internal.h"

#define llm_build_openai ref_build_openai
#include "ref/openai_req_prev.inc"
#undef llm_build_openai

static void test_same_bytes(void **state)
{
    (void)state;
    eq_compare(CH_LLM_OPENAI, ref_build_openai, 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_bytes),
    };

    ch_alloc_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
