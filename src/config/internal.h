/*
 * internal.h: declarations shared by the files of the config layer only.
 *
 * The schema is one flat table of rows (schema.c).  A row's path is a
 * dotted pattern: "gateway.auth.mode" names one key, "api.auth.tokens[]"
 * every element of an array of objects ("api.auth.tokens[].name" a key
 * inside each), and "x.*" every value of a map with free keys.  Objects
 * that only group keys need no row of their own: a path that is a prefix
 * of some row is an object.  validate.c walks a document against the
 * table, config.c fills defaults, redacts and reads values, markdown.c
 * prints the reference.
 */
#ifndef CH_CONFIG_INTERNAL_H
#define CH_CONFIG_INTERNAL_H

#include "config/config.h"

enum cfg_type {
    CFG_OBJECT, /* a JSON object whose keys are listed by other rows */
    CFG_STRING, /* any string; `check` may restrict it */
    CFG_INT,    /* a JSON integer in [min, max] */
    CFG_NUMBER, /* integer or real in [min, max] */
    CFG_BOOL,
    CFG_ENUM,     /* a string among `values` */
    CFG_STRINGS,  /* array of strings; each among `values` if set, passing `check` */
    CFG_OBJECTS,  /* array of objects described by "<path>[].<key>" rows */
    CFG_MAP,      /* object with free keys, values described by "<path>.*" rows */
    CFG_SIZE,     /* "1MB"-style string or a non-negative integer, bytes in [min, max] */
    CFG_DURATION, /* "30s"-style string, ms in [min, max]; unit "d": a number is days (OpenClaw's) */
};

#define CFG_SECRET 0x1u   /* redacted by ch_config_redacted, never echoed in errors */
#define CFG_REQUIRED 0x2u /* must be present (and non-empty) in its object */

struct cfg_row {
    const char *path; /* dotted pattern, see above */
    enum cfg_type type;
    const char *def;    /* default as compact JSON text; NULL: none */
    int64_t min, max;   /* CFG_INT/NUMBER/SIZE/DURATION range, inclusive */
    const char *values; /* CFG_ENUM/CFG_STRINGS allowed values, "a|b|c"; NULL: any */
    /* Extra check on a string (or each string of CFG_STRINGS): 0 if fine,
     * else writes a short reason into why. NULL: none. */
    int (*check)(const char *s, char *why, size_t whylen);
    unsigned flags;   /* CFG_SECRET, CFG_REQUIRED */
    const char *doc;  /* one line for docs/configuration.md */
    const char *unit; /* "ms", "bytes", "count" for numbers; NULL: none */
};

/* Longest generated path ("limits.<name>"). */
#define CFG_GEN_PATH_MAX 64

/*
 * The schema as used at run time: the static rows followed by one row per
 * core limit, generated from ch_limit_def_get() so limits are never
 * retyped.  Built by cfg_schema_new (owned, free with ch_free).
 */
struct cfg_schema {
    struct cfg_row *rows; /* owned: static rows, then one per limit */
    size_t count;
    char gen_path[CH_LIMIT__COUNT][CFG_GEN_PATH_MAX];
    char gen_def[CH_LIMIT__COUNT][24];
};

/* Returns an owned schema or NULL on allocation failure. */
struct cfg_schema *cfg_schema_new(void);
void cfg_schema_free(struct cfg_schema *s);
/* The row whose path equals `pattern`, or NULL. */
const struct cfg_row *cfg_schema_find(const struct cfg_schema *s, const char *pattern);
/* True if some row lies strictly below `pattern` (so it is an object). */
bool cfg_schema_has_children(const struct cfg_schema *s, const char *pattern);
/* Name of a type for messages and docs ("integer", "string[]"...). */
const char *cfg_type_name(enum cfg_type t);

/* Longest schema pattern handled; every row is far shorter, so a longer
 * path (built from a user's key) simply matches nothing. */
#define CFG_MAX_PATTERN 160

/* Bounded error list: at most CFG_MAX_ERRORS messages, then one "too many". */
#define CFG_MAX_ERRORS 100
/* Append a formatted message; CH_ENOMEM if it could not be stored. */
int cfg_errors_add(struct ch_config_errors *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool cfg_errors_full(const struct ch_config_errors *e);

/*
 * Validate `root` (positions from doc, which may be NULL) against the
 * schema, appending every problem to errs.  Returns 0 when valid,
 * CH_EINVAL when problems were found, CH_ENOMEM when one could not be
 * recorded.
 */
int cfg_validate(const struct cfg_schema *s, const json_t *root, const struct ch_json5_doc *doc,
                 struct ch_config_errors *errs);

/* String checks used by schema rows (validate.c). */
int cfg_check_bind(const char *s, char *why, size_t whylen);
int cfg_check_cidr(const char *s, char *why, size_t whylen);
int cfg_check_origin(const char *s, char *why, size_t whylen);      /* scheme://host[:port] */
int cfg_check_cors_origin(const char *s, char *why, size_t whylen); /* same, or "*" */
int cfg_check_header_name(const char *s, char *why, size_t whylen); /* RFC 9110 token */
#define CFG_MAX_SYSTEM_PROMPT_BYTES (900 * 1024)
int cfg_check_system_prompt(const char *s, char *why, size_t whylen); /* at most the above */
/* True if `s` is one of the '|'-separated `values`. */
bool cfg_enum_has(const char *values, const char *s);

/* Environment overrides applied after the file (config.c); CHELA_ wins. */
struct cfg_env_override {
    const char *chela;    /* CHELA_... */
    const char *openclaw; /* OPENCLAW_..., for OpenClaw compatibility */
    const char *path;     /* the key it sets */
};
extern const struct cfg_env_override cfg_env_overrides[];
extern const size_t cfg_env_override_count;

/* Fill absent keys with their defaults, deep (config.c). */
int cfg_fill_defaults(const struct cfg_schema *s, json_t *root);
/* Replace, in place, every value whose row is CFG_SECRET (access.c). */
int cfg_redact(const struct cfg_schema *s, json_t *root);

/* Markdown of the whole schema (markdown.c). */
int cfg_schema_markdown(const struct cfg_schema *s, struct ch_buf *out);

#endif
