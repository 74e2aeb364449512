/*
 * test_schema.c: the JSON-schema subset (tools/schema.c).  Schema checks
 * (supported keywords only, pattern and friends refused with their path)
 * and value validation, each failure with its exact message and path.
 */
#include "tools_test.h"

static json_t *load(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &e);

    if (!j)
        fail_msg("bad test JSON %s: %s", text, e.text);
    return j;
}

/* 0 when the schema passes the check, else the message. */
static void schema_refused(const char *schema, const char *want_msg)
{
    struct ch_error err = {0};
    json_t *s = load(schema);
    int rc = ch_tools_schema_check(s, &err);

    if (!want_msg) {
        if (rc)
            fail_msg("schema %s refused: %s", schema, err.msg);
    } else {
        assert_int_equal(rc, CH_EINVAL);
        texpect_eq(schema, err.msg, want_msg);
    }
    json_decref(s);
}

static void test_check(void **state)
{
    (void)state;
    schema_refused("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\",\"minLength\":1,"
                   "\"maxLength\":5,\"description\":\"x\"},\"b\":{\"type\":[\"integer\",\"null\"],"
                   "\"minimum\":0,\"maximum\":9.5},\"c\":{\"type\":\"array\",\"items\":{\"enum\":"
                   "[1,\"x\",null]},\"minItems\":0,\"maxItems\":3},\"d\":{\"type\":\"object\","
                   "\"additionalProperties\":{\"type\":\"boolean\"}}},\"required\":[\"a\"],"
                   "\"additionalProperties\":false,\"title\":\"t\",\"default\":{},\"examples\":[1],"
                   "\"$schema\":\"https://json-schema.org/draft/2020-12/schema\"}",
                   NULL);
    schema_refused("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\","
                   "\"pattern\":\"^x\"}}}",
                   "schema.properties.a: keyword \"pattern\" is not supported by chela's schema "
                   "subset (docs/internals/tools.md)");
    schema_refused("{\"oneOf\":[]}", "schema: keyword \"oneOf\" is not supported by chela's schema "
                                     "subset (docs/internals/tools.md)");
    schema_refused("{\"type\":\"float\"}", "schema.type: unknown type \"float\"");
    schema_refused("{\"type\":[]}", "schema.type: want a type name or a non-empty array");
    schema_refused("{\"type\":[\"string\",3]}", "schema.type[1]: not a type name");
    schema_refused("{\"items\":[{}]}", "schema.items: want one schema object");
    schema_refused("{\"minLength\":-1}", "schema.minLength: want a non-negative integer");
    schema_refused("{\"maxItems\":1.5}", "schema.maxItems: want a non-negative integer");
    schema_refused("{\"minimum\":\"1\"}", "schema.minimum: want a number");
    schema_refused("{\"required\":[\"a\",1]}", "schema.required[1]: want a string");
    schema_refused("{\"required\":\"a\"}", "schema.required: want an array of names");
    schema_refused("{\"additionalProperties\":1}", "schema.additionalProperties: want a boolean or a schema");
    schema_refused("{\"enum\":[]}", "schema.enum: want a non-empty array");
    schema_refused("{\"properties\":[]}", "schema.properties: want an object");
    schema_refused("{\"properties\":{\"a b\":3}}", "schema.properties[\"a b\"]: a schema must be an "
                                                   "object");
    schema_refused("{\"description\":1}", "schema.description: want a string");
    schema_refused("[]", "schema: a schema must be an object");
}

static void test_check_depth(void **state)
{
    char deep[2048] = "", *p = deep;
    struct ch_error err = {0};
    json_t *s;

    (void)state;
    /* 16 levels pass, 17 do not: the validator's recursion is bounded. */
    for (int levels = 16; levels <= 17; levels++) {
        p = deep;
        for (int i = 0; i < levels; i++)
            p += sprintf(p, "{\"items\":");
        p += sprintf(p, "{}");
        for (int i = 0; i < levels; i++)
            *p++ = '}';
        *p = '\0';
        s = load(deep);
        assert_int_equal(ch_tools_schema_check(s, &err), levels == 16 ? 0 : CH_EINVAL);
        json_decref(s);
    }
    assert_non_null(strstr(err.msg, "nested deeper than 16"));
}

/* Validate value against schema; want_msg NULL means valid. */
static void validates(const char *schema, const char *value, const char *want_msg)
{
    json_t *s = load(schema), *v = load(value);
    char msg[300], what[600];
    int rc;

    assert_int_equal(ch_tools_schema_check(s, NULL), 0);
    rc = ch_tools_schema_validate(s, v, "input", msg, sizeof(msg));
    snprintf(what, sizeof(what), "%s against %s", value, schema);
    if (!want_msg) {
        if (rc)
            fail_msg("%s: refused: %s", what, msg);
        assert_string_equal(msg, "");
    } else {
        assert_int_equal(rc, CH_EINVAL);
        texpect_eq(what, msg, want_msg);
    }
    json_decref(s);
    json_decref(v);
}

#define HTTP_SCHEMA                                                                                                    \
    "{\"type\":\"object\",\"properties\":{\"method\":{\"type\":\"string\",\"enum\":[\"GET\","                          \
    "\"POST\"]},\"url\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":10},\"headers\":"                           \
    "{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}},\"timeout_ms\":"                             \
    "{\"type\":\"integer\",\"minimum\":100,\"maximum\":1000}},\"required\":[\"url\"],"                                 \
    "\"additionalProperties\":false}"

static void test_validate_objects(void **state)
{
    (void)state;
    validates(HTTP_SCHEMA, "{\"url\":\"http://x\"}", NULL);
    validates(HTTP_SCHEMA,
              "{\"url\":\"u\",\"method\":\"POST\",\"headers\":{\"A\":\"b\"},"
              "\"timeout_ms\":100}",
              NULL);
    validates(HTTP_SCHEMA, "{}", "input: missing required property \"url\"");
    validates(HTTP_SCHEMA, "{\"url\":\"u\",\"headers\":{\"Authorization\":7}}",
              "input.headers.Authorization: expected string, got integer");
    validates(HTTP_SCHEMA, "{\"url\":\"u\",\"headers\":{\"X Odd\":null}}",
              "input.headers[\"X Odd\"]: expected string, got null");
    validates(HTTP_SCHEMA, "{\"url\":\"u\",\"headers\":[]}", "input.headers: expected object, got array");
    validates(HTTP_SCHEMA, "{\"url\":\"u\",\"verb\":\"GET\"}",
              "input: unexpected property \"verb\" (allowed: method, url, headers, "
              "timeout_ms)");
    validates(HTTP_SCHEMA, "{\"url\":\"u\",\"method\":\"FETCH\"}",
              "input.method: must be one of \"GET\", \"POST\" (got \"FETCH\")");
    validates(HTTP_SCHEMA, "{\"url\":\"\"}", "input.url: must be at least 1 character long");
    validates(HTTP_SCHEMA, "{\"url\":\"http://example\"}", "input.url: must be at most 10 characters long (got 14)");
    validates(HTTP_SCHEMA, "{\"url\":\"u\",\"timeout_ms\":99}", "input.timeout_ms: must be >= 100");
    validates(HTTP_SCHEMA, "{\"url\":\"u\",\"timeout_ms\":1001}", "input.timeout_ms: must be <= 1000");
    validates(HTTP_SCHEMA, "{\"url\":\"u\",\"timeout_ms\":500.0}", NULL);
    validates(HTTP_SCHEMA, "{\"url\":\"u\",\"timeout_ms\":500.5}", "input.timeout_ms: expected integer, got number");
    validates(HTTP_SCHEMA, "{\"url\":\"u\",\"timeout_ms\":\"500\"}", "input.timeout_ms: expected integer, got string");
    validates(HTTP_SCHEMA, "[]", "input: expected object, got array");
    validates(HTTP_SCHEMA, "null", "input: expected object, got null");
    /* No additionalProperties: extra keys pass unchecked. */
    validates("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}}}", "{\"b\":1}", NULL);
    validates("{\"type\":\"object\",\"additionalProperties\":false}", "{\"b\":1}",
              "input: unexpected property \"b\" (allowed: none)");
}

static void test_validate_scalars_arrays(void **state)
{
    const char *list = "{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":2},"
                       "\"minItems\":1,\"maxItems\":3}";
    const char *nested = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\","
                         "\"items\":{\"type\":\"object\",\"properties\":{\"b\":{\"type\":"
                         "\"boolean\"}}}}}}";

    (void)state;
    validates(list, "[\"ab\",\"c\"]", NULL);
    validates(list, "[]", "input: must have at least 1 item");
    validates(list, "[\"a\",\"b\",\"c\",\"d\"]", "input: must have at most 3 items");
    validates(list, "[\"a\",null]", "input[1]: expected string, got null");
    /* Lengths count code points, not bytes. */
    validates(list, "[\"\xed\x95\x9c\xea\xb8\x80\"]", NULL);
    validates(list, "[\"\xed\x95\x9c\xea\xb8\x80!\"]", "input[0]: must be at most 2 characters long (got 3)");
    validates(nested, "{\"a\":[{\"b\":true},{\"b\":\"yes\"}]}", "input.a[1].b: expected boolean, got string");
    validates("{\"type\":[\"string\",\"null\"]}", "null", NULL);
    validates("{\"type\":[\"string\",\"null\"]}", "3", "input: expected string or null, got integer");
    validates("{\"type\":\"number\",\"minimum\":0.5}", "1", NULL);
    validates("{\"type\":\"number\",\"minimum\":0.5}", "0.25", "input: must be >= 0.5");
    validates("{\"type\":\"integer\",\"maximum\":9007199254740993}", "9007199254740993", NULL);
    validates("{\"type\":\"integer\",\"maximum\":9007199254740992}", "9007199254740993",
              "input: must be <= 9.0072e+15");
    validates("{\"enum\":[1,\"a\",null,{\"k\":[1]}]}", "1.0", NULL);
    validates("{\"enum\":[1,\"a\",null,{\"k\":[1]}]}", "{\"k\":[1]}", NULL);
    validates("{\"enum\":[1,\"a\"]}", "2", "input: must be one of 1, \"a\" (got 2)");
    validates("{\"type\":\"boolean\"}", "false", NULL);
    validates("{\"type\":\"null\"}", "false", "input: expected null, got boolean");
    validates("{}", "{\"anything\":[1,2,{\"x\":null}]}", NULL);
}

static void test_validate_edges(void **state)
{
    json_t *s = load("{\"type\":\"object\",\"properties\":{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":"
                     "{\"type\":\"object\",\"properties\":{\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\":"
                     "{\"type\":\"string\"}}}}}");
    json_t *v = load("{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":{\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
                     "\":1}}");
    char small[16], msg[300];

    (void)state;
    /* A missing value reads as "nothing"; a short buffer still ends in NUL. */
    assert_int_equal(ch_tools_schema_validate(s, NULL, "input", msg, sizeof(msg)), CH_EINVAL);
    assert_string_equal(msg, "input: expected a value, got nothing");
    assert_int_equal(ch_tools_schema_validate(s, v, "input", small, sizeof(small)), CH_EINVAL);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_int_equal(ch_tools_schema_validate(s, v, NULL, msg, sizeof(msg)), CH_EINVAL);
    assert_string_equal(msg, "input.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
                             "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb: expected string, got integer");
    assert_int_equal(ch_tools_schema_validate(s, v, "args", msg, 0), CH_EINVAL);
    json_decref(s);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_check_depth),
        cmocka_unit_test(test_validate_objects),
        cmocka_unit_test(test_validate_scalars_arrays),
        cmocka_unit_test(test_validate_edges),
    };
    size_t blocks;
    int rc;

    ch_alloc_install();
    blocks = ch_alloc_live_blocks();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (ch_alloc_live_blocks() != blocks) {
        fprintf(stderr, "leak: %zu blocks\n", ch_alloc_live_blocks() - blocks);
        return 1;
    }
    return rc;
}
