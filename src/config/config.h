/*
 * config.h: JSON5 configuration, parsed into jansson values, validated
 * against one schema table, with defaults filled in.
 *
 * Layer: core <- config.  Everything that reads configuration gets a
 * `const struct ch_config *` and asks for dotted paths; no layer keeps its
 * own parser.  The schema table (config/schema.c) is the single source of
 * every key, its type, default and meaning; docs/configuration.md is
 * generated from it (`chela config schema --markdown`) and a unit test
 * checks the two agree.
 */
#ifndef CH_CONFIG_H
#define CH_CONFIG_H

#include <jansson.h>

#include "core/core.h"

/* ------------------------------------------------------------------ */
/* JSON5 (config/json5.c)                                               */
/* ------------------------------------------------------------------ */

/*
 * Source positions of parsed values, keyed by the json_t pointer, so the
 * validator can say "line:column" for a value of the wrong type.  jansson
 * shares one json_t for every true, false and null, so those are found
 * through their parent instead (ch_json5_doc_child_pos).
 */
struct ch_json5_pos {
    const json_t *value;      /* borrowed key */
    int line, column;         /* 1-based, where the value starts */
    const json_t *parent;     /* borrowed: containing object or array; NULL for the root */
    const char *key;          /* borrowed from the doc's key_text: member name; NULL in arrays */
    size_t index;             /* element index in an array; 0 for members */
    int key_line, key_column; /* where the member's key starts; 0 in arrays */
};

struct ch_json5_doc {
    json_t *root;             /* owned (one reference) */
    struct ch_json5_pos *pos; /* owned array, sorted by value pointer */
    size_t pos_count, pos_cap;
    const struct ch_json5_pos **by_parent; /* owned array of pointers into pos:
                                            * non-root entries sorted by
                                            * (parent, key, index) */
    size_t by_parent_count;
    char *key_text; /* owned: every member name, NUL-separated */
};

/* Caps (see ch_json5_parse). */
#define CH_JSON5_MAX_DEPTH 64
#define CH_JSON5_MAX_INPUT (4u * 1024 * 1024)
/* Cap on the bytes produced by ${VAR} substitution over one document. */
#define CH_JSON5_MAX_SUBST (16u * 1024 * 1024)

/*
 * Parse JSON5 text (https://spec.json5.org): // and block comments,
 * trailing commas, unquoted identifier keys (ASCII letters, digits, $ and
 * _, \u escapes, and any non-ASCII code point that is not white space),
 * single-quoted strings, every escape (\x, \u with surrogate pairs, line
 * continuations), hex integers, leading/trailing decimal point, an
 * explicit '+'.  Deliberately stricter than the spec, because a config
 * file should not be ambiguous:
 *   - duplicate keys in one object are an error ("duplicate key 'x'");
 *   - Infinity and NaN are recognised but rejected: jansson cannot hold a
 *     non-finite number, and no config key wants one;
 *   - integers outside int64 and reals that overflow a double are errors;
 *   - NUL characters in strings (\0, \x00, \u0000) are errors, since every
 *     consumer treats strings as C strings;
 *   - the input must be valid UTF-8.
 * Nesting is capped at 64 levels and input at 4 MiB (CH_E_TOO_LARGE).
 * With `substitute_env`, "${VAR}" and "${VAR:-default}" inside string
 * values (not keys) are replaced from the environment ("$${" is a literal
 * "${"); an unset VAR without a default is an error naming it; ":-" also
 * applies the default when VAR is set but empty, as in the shell.
 * On success doc owns the tree and the position table (release it with
 * ch_json5_doc_release).  Positions describe the tree as parsed: they stay
 * safe to query after the caller edits the tree, but say nothing about
 * values added later.  On failure fills err (line, column, offset, and
 * a message "line L, column C: what"), returns CH_EINVAL (CH_E_TOO_LARGE
 * over a cap, CH_ENOMEM when out of memory) and leaves doc empty.
 */
int ch_json5_parse(const char *text, size_t len, bool substitute_env, struct ch_json5_doc *doc, struct ch_error *err);
void ch_json5_doc_release(struct ch_json5_doc *doc);
/* Position of a value (0,0 if unknown, or if v is true/false/null). */
void ch_json5_doc_pos(const struct ch_json5_doc *doc, const json_t *v, int *line, int *column);
/* Position of the value of member `key` of object `parent`, or (key NULL)
 * of element `index` of array `parent`; 0,0 if unknown.  Works for
 * true/false/null. */
void ch_json5_doc_child_pos(const struct ch_json5_doc *doc, const json_t *parent, const char *key, size_t index,
                            int *line, int *column);
/* Position of the key of member `key` of object `parent`; 0,0 if unknown. */
void ch_json5_doc_key_pos(const struct ch_json5_doc *doc, const json_t *parent, const char *key, int *line,
                          int *column);

/* ------------------------------------------------------------------ */
/* Validated configuration (config/config.c, config/schema.c)           */
/* ------------------------------------------------------------------ */

/*
 * Every problem found, in file order; printed all at once.  Start zeroed;
 * functions append.  At most 100 problems are kept, then one "too many
 * errors; stopped after 100" line.  A syntax error is a single message
 * "line L, column C: what".
 */
struct ch_config_errors {
    char **msgs; /* owned strings, each "path: problem (line L:C)" */
    size_t count, cap;
};
/* Free the messages; e is zeroed and can be reused. */
void ch_config_errors_release(struct ch_config_errors *e);

struct ch_config {
    json_t *root; /* owned: the effective config, defaults filled in */
    json_t *file; /* owned: what the file said, env substituted; may be an empty object */
    char *path;   /* owned: absolute path of the file, or NULL when none */
    bool file_exists;
    char *raw; /* owned: file text, or NULL; wiped when freed */
};

/*
 * Load and validate.  path NULL or a missing file gives the embedded
 * defaults (file_exists=false).  Environment overrides are applied after
 * the file: OPENCLAW_GATEWAY_TOKEN / CHELA_GATEWAY_TOKEN (gateway.auth.token),
 * OPENCLAW_GATEWAY_PASSWORD / CHELA_GATEWAY_PASSWORD, OPENCLAW_GATEWAY_PORT /
 * CHELA_GATEWAY_PORT (gateway.port); CHELA_ wins over OPENCLAW_, an empty
 * variable counts as unset, and a bad port value is an error.
 * Returns 0 with *out owned by the caller, or CH_EINVAL with every problem
 * in errs (strict: unknown keys other than "x-*" and "$schema" are errors
 * naming the full path; a wrong type names path, expected type and
 * line:column; a file over 4 MiB is one message), CH_EIO when the file
 * exists but cannot be read (one message in errs), or CH_ENOMEM; *out is
 * NULL on any failure.  Reads the environment; not thread-safe against
 * setenv.
 */
int ch_config_load(const char *path, struct ch_config **out, struct ch_config_errors *errs);
/* Validate text only (tests, `chela config validate`): parse with ${VAR}
 * substitution and check against the schema, no defaults, no overrides.
 * 0, CH_EINVAL (problems appended to errs) or CH_ENOMEM. */
int ch_config_validate_text(const char *text, size_t len, struct ch_config_errors *errs);
void ch_config_free(struct ch_config *c); /* NULL-safe */

/* Borrowed lookups by dotted path ("gateway.auth.mode"); a numeric segment
 * indexes an array ("api.auth.tokens.0.name").  NULL if absent.  The typed
 * getters return fallback when the value is absent or of another type. */
const json_t *ch_config_get(const struct ch_config *c, const char *dotted);
int64_t ch_config_int(const struct ch_config *c, const char *dotted, int64_t fallback);
double ch_config_real(const struct ch_config *c, const char *dotted, double fallback);
bool ch_config_bool(const struct ch_config *c, const char *dotted, bool fallback);
/* Borrowed string, valid while c lives; fallback when absent or not a string. */
const char *ch_config_str(const struct ch_config *c, const char *dotted, const char *fallback);
/* A "1MB"-style size or a plain integer, in bytes. */
uint64_t ch_config_size(const struct ch_config *c, const char *dotted, uint64_t fallback);
/* A duration as OpenClaw writes one ("30d", "12h", "90m", or a number of
 * days, also as a string), in ms; ch_config_duration_value: CH_EINVAL if
 * v is none. */
int64_t ch_config_duration_ms(const struct ch_config *c, const char *dotted, int64_t fallback);
int ch_config_duration_value(const json_t *v, int64_t *ms);

/* Fill out with the core defaults, then the `limits.*` keys (byte limits
 * may be "64KB" strings).  api.security.maxBodySize sets maxBodyBytes
 * unless the file gave limits.maxBodyBytes itself. */
void ch_config_limits(const struct ch_config *c, struct ch_limits *out);

/*
 * A deep copy of the effective config with secrets replaced by
 * "__OPENCLAW_REDACTED__" (schema rows flagged secret, also inside arrays
 * such as api.auth.tokens[].token).  New reference; NULL when out of memory.
 */
json_t *ch_config_redacted(const struct ch_config *c);

/* Print the schema as markdown (docs/configuration.md) into out; the text
 * is deterministic.  0, CH_ENOMEM, or CH_E_TOO_LARGE past out's cap (the
 * reference is about 10 KB). */
int ch_config_schema_markdown(struct ch_buf *out);

#endif
