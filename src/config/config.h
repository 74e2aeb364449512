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
 * validator can say "line:column" for a value of the wrong type.
 */
struct ch_json5_pos {
    const json_t *value; /* borrowed key */
    int line, column;    /* 1-based, where the value starts */
};

struct ch_json5_doc {
    json_t *root;                 /* owned (one reference) */
    struct ch_json5_pos *pos;     /* owned array */
    size_t pos_count, pos_cap;
};

/*
 * Parse JSON5 text: comments, trailing commas, unquoted identifier keys,
 * single-quoted strings, hex numbers, leading/trailing decimal point,
 * +/-Infinity and NaN (rejected for config use by the validator), escaped
 * line continuations.  Nesting is capped at 64 levels and input at 4 MiB.
 * With `substitute_env`, "${VAR}" and "${VAR:-default}" inside string
 * values are replaced from the environment ("$${" is a literal "${");
 * an unset VAR without a default is an error naming it.
 * On failure fills err (line, column, message) and returns CH_EINVAL;
 * doc is left empty.
 */
int ch_json5_parse(const char *text, size_t len, bool substitute_env,
                   struct ch_json5_doc *doc, struct ch_error *err);
void ch_json5_doc_release(struct ch_json5_doc *doc);
/* Position of a value (0,0 if unknown). */
void ch_json5_doc_pos(const struct ch_json5_doc *doc, const json_t *v, int *line, int *column);

/* ------------------------------------------------------------------ */
/* Validated configuration (config/config.c, config/schema.c)           */
/* ------------------------------------------------------------------ */

/* Every problem found, in file order; printed all at once. */
struct ch_config_errors {
    char **msgs;   /* owned strings, each "path: problem (line:col)" */
    size_t count, cap;
};
void ch_config_errors_release(struct ch_config_errors *e);

struct ch_config {
    json_t *root;        /* owned: the effective config, defaults filled in */
    json_t *file;        /* owned: what the file said, env substituted; may be an empty object */
    char *path;          /* owned: absolute path of the file, or NULL when none */
    bool file_exists;
    char *raw;           /* owned: file text, or NULL */
};

/*
 * Load and validate.  path NULL or a missing file gives the embedded
 * defaults (file_exists=false).  Environment overrides are applied after
 * the file: OPENCLAW_GATEWAY_TOKEN / CHELA_GATEWAY_TOKEN (gateway.auth.token),
 * OPENCLAW_GATEWAY_PASSWORD / CHELA_GATEWAY_PASSWORD, OPENCLAW_GATEWAY_PORT /
 * CHELA_GATEWAY_PORT (gateway.port); CHELA_ wins over OPENCLAW_.
 * Returns 0, or CH_EINVAL with every problem in errs (strict: unknown keys
 * other than "x-*" and "$schema" are errors naming the full path; a wrong
 * type names path, expected type and line:column), or CH_EIO when the file
 * exists but cannot be read (one message in errs).
 */
int ch_config_load(const char *path, struct ch_config **out, struct ch_config_errors *errs);
/* Validate text only (tests, `chela config validate`). */
int ch_config_validate_text(const char *text, size_t len, struct ch_config_errors *errs);
void ch_config_free(struct ch_config *c);

/* Borrowed lookups by dotted path ("gateway.auth.mode"); NULL if absent. */
const json_t *ch_config_get(const struct ch_config *c, const char *dotted);
int64_t ch_config_int(const struct ch_config *c, const char *dotted, int64_t fallback);
double ch_config_real(const struct ch_config *c, const char *dotted, double fallback);
bool ch_config_bool(const struct ch_config *c, const char *dotted, bool fallback);
/* Borrowed string, valid while c lives; fallback when absent or not a string. */
const char *ch_config_str(const struct ch_config *c, const char *dotted, const char *fallback);
/* A "1MB"-style size or a plain integer, in bytes. */
uint64_t ch_config_size(const struct ch_config *c, const char *dotted, uint64_t fallback);

/* Copy the `limits.*` keys over the defaults. */
void ch_config_limits(const struct ch_config *c, struct ch_limits *out);

/*
 * A deep copy of the effective config with secrets replaced by
 * "__OPENCLAW_REDACTED__" (schema rows flagged secret).  New reference.
 */
json_t *ch_config_redacted(const struct ch_config *c);

/* Print the schema as markdown (docs/configuration.md) into out. */
int ch_config_schema_markdown(struct ch_buf *out);

#endif
