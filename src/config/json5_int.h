/*
 * json5_int.h: the JSON5 scanner state shared by json5.c (grammar,
 * position table), json5_lex.c (white space, comments, strings,
 * identifiers), json5_number.c and json5_env.c (${VAR} substitution).
 * Private to src/config.
 */
#ifndef CH_CONFIG_JSON5_INT_H
#define CH_CONFIG_JSON5_INT_H

#include "config/config.h"

struct j5 {
    const unsigned char *s; /* borrowed: the input */
    size_t len, i;          /* input length; offset of the next byte */
    int line, col;          /* 1-based position of s[i], columns count code points */
    int depth;              /* open objects and arrays */
    bool substitute_env;
    size_t subst_total;   /* bytes produced by ${VAR} so far, capped */
    struct ch_buf tmp;    /* decoded string or key, capped at the input size */
    struct ch_buf env;    /* a string after ${VAR} substitution */
    struct ch_buf keys;   /* member names, NUL-separated; becomes doc->key_text */
    struct ch_error *err; /* borrowed, may be NULL */
    struct ch_json5_doc *doc;
};

/* Character classes shared by the scanner files. */
bool j5_ascii_ident(unsigned char c, bool first); /* [A-Za-z$_], digits unless first */
int j5_hex_value(unsigned char c);                /* 0..15, or -1 */
bool j5_utf8_valid(const char *s, size_t n);

/* Record the first failure at (line, col, off); returns code. */
int j5_fail_at(struct j5 *p, int code, int line, int col, size_t off, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* Same, at the current position. */
int j5_fail(struct j5 *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "'x'", "U+00E9", "end of input"... for the character at p->i. */
void j5_describe(const struct j5 *p, char *out, size_t n);

/* Skip white space and comments; CH_EINVAL on an unterminated comment. */
int j5_skip_space(struct j5 *p);
/* Consume n bytes that hold no line terminator. */
void j5_advance(struct j5 *p, size_t n);

/* Decode the quoted string at p->i into p->tmp (NUL-terminated). */
int j5_string(struct j5 *p);
/* True if an identifier (unquoted key) starts at p->i. */
bool j5_at_ident_start(const struct j5 *p);
/* Decode the identifier at p->i into p->tmp. */
int j5_identifier(struct j5 *p);
/* Parse the number at p->i into a new json integer or real. */
int j5_number(struct j5 *p, json_t **out);
/* Expand ${VAR} in p->tmp; *res points into p->tmp or p->env. */
int j5_substitute(struct j5 *p, int line, int col, size_t off, const char **res, size_t *reslen);

#endif
