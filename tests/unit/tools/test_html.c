/*
 * test_html.c: what web_fetch makes of a body, without I/O: HTML to text
 * (tools/html.c) over the case directories tests/unit/tools/data/html/
 * <case>/{input,expect}, and fetch_render / content types / charsets /
 * UTF-8 sanitising (fetch_body.c, text.c).  Every HTML case also runs
 * with its input cut at every byte (no crash, no leak, valid UTF-8 out)
 * and with the output cap at every size up to the expected length.
 */
#include "tools_test.h"

#define HTML_DIR "tests/unit/tools/data/html"

static bool valid_utf8(const char *p, size_t n)
{
    struct ch_buf b;
    bool ok;

    ch_buf_init(&b, n * 3 + 16);
    ok = text_append_utf8(&b, p, n) == 0 && b.len == n && (n == 0 || !memcmp(b.data, p, n));
    ch_buf_release(&b);
    return ok;
}

static void run_case(const char *name)
{
    char path[512], *in, *want, *title = NULL;
    struct ch_buf out;
    size_t len, wlen;

    snprintf(path, sizeof(path), "%s/%s/input", HTML_DIR, name);
    in = tfile_read(path, &len);
    assert_non_null(in);
    snprintf(path, sizeof(path), "%s/%s/expect", HTML_DIR, name);
    want = tfile_read(path, &wlen);
    ch_buf_init(&out, 1 << 20);
    assert_int_equal(html_to_text(in, len, &out, &title), 0);
    if (getenv("TOOLS_WRITE_EXPECT")) { /* regenerate, then review by hand */
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        fwrite(out.data ? out.data : "", 1, out.len, f);
        fclose(f);
    } else {
        if (!want)
            fail_msg("case %s has no expect file", name);
        texpect_eq(name, out.data ? out.data : "", want);
    }
    assert_true(valid_utf8(out.data ? out.data : "", out.len));
    if (title)
        assert_memory_equal(out.data, title, strlen(title)); /* the title comes first */
    ch_free(title);
    /* Any cut of the input is handled. */
    for (size_t cut = 0; cut < len; cut++) {
        struct ch_buf o2;
        char *t2 = NULL;
        ch_buf_init(&o2, 1 << 20);
        assert_int_equal(html_to_text(in, cut, &o2, &t2), 0);
        ch_free(t2);
        ch_buf_release(&o2);
    }
    /* A cap below the result is CH_E_TOO_LARGE, never an overflow. */
    for (size_t cap = 0; cap < out.len; cap++) {
        struct ch_buf o3;
        ch_buf_init(&o3, cap);
        assert_int_equal(html_to_text(in, len, &o3, NULL), CH_E_TOO_LARGE);
        ch_buf_release(&o3);
    }
    ch_buf_release(&out);
    free(in);
    free(want);
}

static void test_cases(void **state)
{
    size_t n;
    char **names = tdir_list(HTML_DIR, &n);

    (void)state;
    assert_true(n >= 14);
    for (size_t i = 0; i < n; i++)
        run_case(names[i]);
    tnames_free(names, n);
}

static void test_content_types(void **state)
{
    char mime[96], cs[40];

    (void)state;
    ctype_parse(CH_STR("Text/HTML; Charset=\"ISO-8859-1\""), mime, sizeof(mime), cs, sizeof(cs));
    assert_string_equal(mime, "text/html");
    assert_string_equal(cs, "iso-8859-1");
    ctype_parse(CH_STR(" application/json "), mime, sizeof(mime), cs, sizeof(cs));
    assert_string_equal(mime, "application/json");
    assert_string_equal(cs, "");
    ctype_parse((struct ch_str){NULL, 0}, mime, sizeof(mime), cs, sizeof(cs));
    assert_string_equal(mime, "");
    ctype_parse(CH_STR("text/plain;charset=utf-8;format=flowed"), mime, sizeof(mime), cs, sizeof(cs));
    assert_string_equal(cs, "utf-8");
    assert_int_equal(ctype_kind("text/html"), BODY_HTML);
    assert_int_equal(ctype_kind("application/xhtml+xml"), BODY_HTML);
    assert_int_equal(ctype_kind("text/plain"), BODY_TEXT);
    assert_int_equal(ctype_kind("text/csv"), BODY_TEXT);
    assert_int_equal(ctype_kind("application/json"), BODY_TEXT);
    assert_int_equal(ctype_kind("application/problem+json"), BODY_TEXT);
    assert_int_equal(ctype_kind("application/rss+xml"), BODY_TEXT);
    assert_int_equal(ctype_kind("image/png"), BODY_BINARY);
    assert_int_equal(ctype_kind("application/octet-stream"), BODY_BINARY);
    assert_int_equal(ctype_kind("application/pdf"), BODY_BINARY);
    assert_int_equal(ctype_kind(""), BODY_UNKNOWN);
    assert_int_equal(body_sniff("\x89PNG\r\n\x1a\n", 8), BODY_BINARY);
    assert_int_equal(body_sniff("abc\0def", 7), BODY_BINARY);
    assert_int_equal(body_sniff("  \n<!DOCTYPE html><html>", 24), BODY_HTML);
    assert_int_equal(body_sniff("<HTML>", 6), BODY_HTML);
    assert_int_equal(body_sniff("{\"a\":1}", 7), BODY_TEXT);
    assert_int_equal(body_sniff("", 0), BODY_TEXT);
}

static void test_render(void **state)
{
    struct fetch_text ft;
    const char *latin1 = "<html><head><title>Caf\xe9</title></head><body><p>na\xefve</p></body>";
    const char *meta = "<html><head><meta charset=\"euc-kr\"><title>t</title></head>"
                       "<body>\xc7\xd1\xb1\xdb</body></html>"; /* "한글" in EUC-KR */
    char big[3000];

    (void)state;
    assert_int_equal(fetch_render(latin1, strlen(latin1), "iso-8859-1", BODY_HTML, 100, &ft), 0);
    assert_string_equal(ft.text, "Caf\xc3\xa9\n\nna\xc3\xafve");
    assert_string_equal(ft.title, "Caf\xc3\xa9");
    assert_false(ft.truncated);
    assert_int_equal(ft.chars, 11);
    fetch_text_release(&ft);
    /* No charset in the header: the page's <meta charset> decides. */
    assert_int_equal(fetch_render(meta, strlen(meta), "", BODY_HTML, 100, &ft), 0);
    assert_string_equal(ft.text, "t\n\n\xed\x95\x9c\xea\xb8\x80");
    fetch_text_release(&ft);
    /* An unknown charset label reads as UTF-8, invalid bytes as U+FFFD. */
    assert_int_equal(fetch_render("a\xff"
                                  "b",
                                  3, "x-unknown", BODY_TEXT, 100, &ft),
                     0);
    assert_string_equal(ft.text, "a\xef\xbf\xbd"
                                 "b");
    fetch_text_release(&ft);
    /* maxChars counts code points and says what was cut. */
    memset(big, 'x', sizeof(big));
    memcpy(big, "\xed\x95\x9c", 3);
    assert_int_equal(fetch_render(big, sizeof(big), NULL, BODY_TEXT, 100, &ft), 0);
    assert_true(ft.truncated);
    assert_int_equal(ft.chars, sizeof(big) - 2);
    assert_memory_equal(ft.text, "\xed\x95\x9c", 3);
    assert_int_equal(strspn(ft.text + 3, "x"), 99);
    assert_string_equal(ft.text + 102, "\n\n[truncated: 100 of 2998 characters shown; ask for a "
                                       "larger maxChars (up to 100000) to see more]");
    fetch_text_release(&ft);
    assert_int_equal(fetch_render("", 0, "", BODY_HTML, 100, &ft), 0);
    assert_string_equal(ft.text, "");
    assert_null(ft.title);
    fetch_text_release(&ft);
}

static void test_utf8(void **state)
{
    static const struct {
        const char *in;
        size_t n;
        const char *out;
    } cases[] = {
        {"plain", 5, "plain"},
        {"a\0b", 3,
         "a\xef\xbf\xbd"
         "b"},                                       /* NUL */
        {"\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd"}, /* overlong '/' */
        {"\xe0\x80\xaf", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* surrogate */
        {"\xf4\x90\x80\x80", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80"}, /* U+1F600 */
        {"\xe2\x82", 2, "\xef\xbf\xbd"},             /* truncated: one U+FFFD, as browsers show it */
        {"\xed\x95\x9c", 3, "\xed\x95\x9c"},
    };
    struct ch_buf b;

    (void)state;
    for (size_t i = 0; i < CH_ARRAY_SIZE(cases); i++) {
        ch_buf_init(&b, 64);
        assert_int_equal(text_append_utf8(&b, cases[i].in, cases[i].n), 0);
        assert_string_equal(b.data, cases[i].out);
        ch_buf_release(&b);
    }
    ch_buf_init(&b, 2);
    assert_int_equal(text_append_utf8(&b, "abc", 3), CH_E_TOO_LARGE);
    ch_buf_release(&b);
    assert_int_equal(text_count_chars("a\xed\x95\x9c"
                                      "b",
                                      5),
                     3);
    assert_int_equal(text_prefix_chars("a\xed\x95\x9c"
                                       "b",
                                       5, 2),
                     4);
    assert_int_equal(text_prefix_chars("ab", 2, 5), 2);
    assert_int_equal(text_prefix_bytes("a\xed\x95\x9c"
                                       "b",
                                       5, 3),
                     1);
    assert_int_equal(text_prefix_bytes("a\xed\x95\x9c"
                                       "b",
                                       5, 4),
                     4);
    assert_int_equal(text_prefix_bytes("abc", 3, 10), 3);
    ch_buf_init(&b, 64);
    assert_int_equal(text_append_cp(&b, 0x41), 0);
    assert_int_equal(text_append_cp(&b, 0xE9), 0);
    assert_int_equal(text_append_cp(&b, 0xAC00), 0);
    assert_int_equal(text_append_cp(&b, 0x1F600), 0);
    assert_int_equal(text_append_cp(&b, 0xD800), 0);
    assert_int_equal(text_append_cp(&b, 0x110000), 0);
    assert_string_equal(b.data, "A\xc3\xa9\xea\xb0\x80\xf0\x9f\x98\x80\xef\xbf\xbd\xef\xbf\xbd");
    ch_buf_release(&b);
    /* iconv: windows-1252 and a byte that does not map. */
    ch_buf_init(&b, 64);
    assert_int_equal(text_to_utf8("windows-1252", "\x93q\x94 \x80", 5, &b), 0);
    assert_string_equal(b.data, "\xe2\x80\x9cq\xe2\x80\x9d \xe2\x82\xac");
    ch_buf_reset(&b);
    assert_int_equal(text_to_utf8("us-ascii", "ok", 2, &b), 0);
    assert_string_equal(b.data, "ok");
    ch_buf_reset(&b);
    assert_int_equal(text_to_utf8("euc-kr", "\xc7\xd1\xff", 3, &b), 0);
    assert_string_equal(b.data, "\xed\x95\x9c\xef\xbf\xbd");
    ch_buf_release(&b);
    assert_null(text_find_ci("abc", 3, "abcd"));
    assert_string_equal(text_find_ci("xxHeLLo", 7, "hello"), "HeLLo");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_content_types),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_utf8),
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
