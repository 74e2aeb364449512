/*
 * fuzz_json5.c: libFuzzer driver for the JSON5 parser and the config
 * validator (src/config).  Besides "no crash, no leak", it checks three
 * invariants and aborts when one breaks:
 *   - a failed parse leaves the document empty and gives a position;
 *   - every value of a parsed document has a position (singletons through
 *     their parent), and every member key too;
 *   - the compact JSON of a parsed document parses back (JSON is JSON5)
 *     to an equal value.
 * Build (scripts/run-fuzz does this) with clang -fsanitize=fuzzer,address
 * -std=c17 -D_GNU_SOURCE -Isrc, this file plus every .c of src/config and
 * src/core, linked with pkg-config's jansson libuv sqlite3 libcurl openssl
 * and -lm.  Seeds: tests/fuzz/corpus/json5/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

static void check_positions(const struct ch_json5_doc *doc, const json_t *v, int depth)
{
    const char *key;
    json_t *child;
    size_t i;
    int line, col;

    if (depth > CH_JSON5_MAX_DEPTH + 1)
        abort();
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, key, child)
        {
            ch_json5_doc_child_pos(doc, v, key, 0, &line, &col);
            if (line < 1 || col < 1)
                abort();
            ch_json5_doc_key_pos(doc, v, key, &line, &col);
            if (line < 1 || col < 1)
                abort();
            check_positions(doc, child, depth + 1);
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, child)
        {
            ch_json5_doc_child_pos(doc, v, NULL, i, &line, &col);
            if (line < 1 || col < 1)
                abort();
            check_positions(doc, child, depth + 1);
        }
    }
    if (!json_is_boolean(v) && !json_is_null(v)) {
        ch_json5_doc_pos(doc, v, &line, &col);
        if (line < 1 || col < 1)
            abort();
    }
}

static void check_round_trip(const json_t *root)
{
    struct ch_json5_doc again;
    struct ch_error err;
    char *text = json_dumps(root, JSON_COMPACT | JSON_ENCODE_ANY);

    if (!text)
        return; /* out of memory in jansson: nothing to compare */
    if (ch_json5_parse(text, strlen(text), false, &again, &err) != 0)
        abort();
    if (!json_equal(root, again.root))
        abort();
    ch_json5_doc_release(&again);
    ch_free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool installed;
    struct ch_json5_doc doc;
    struct ch_error err;
    struct ch_config_errors errs;
    int rc;

    if (!installed) {
        ch_alloc_install();
        /* Fixed environment so ${...} results do not depend on the host. */
        setenv("CH_FUZZ_VAR", "value", 1);
        installed = true;
    }
    rc = ch_json5_parse((const char *)data, size, size > 0 && data[0] == '{', &doc, &err);
    if (rc == 0) {
        check_positions(&doc, doc.root, 0);
        check_round_trip(doc.root);
        ch_json5_doc_release(&doc);
    } else if (doc.root || doc.pos || err.code != rc || (rc == CH_EINVAL && err.line < 1)) {
        abort();
    }
    memset(&errs, 0, sizeof(errs));
    rc = ch_config_validate_text((const char *)data, size, &errs);
    if ((rc == 0) != (errs.count == 0) || errs.count > 101)
        abort();
    ch_config_errors_release(&errs);
    return 0;
}
