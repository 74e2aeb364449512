/*
 * markdown.c: docs/configuration.md, generated from the schema table.
 *
 * One table per top-level section (key, type, default, meaning), then the
 * environment overrides and the ${VAR} syntax.  The output is
 * deterministic (table order, no dates) so a unit test can compare it
 * byte for byte with the file in the repository.
 */
#include <string.h>

#include "config/internal.h"

static const char intro[] = "# Configuration reference\n"
                            "\n"
                            "<!-- Generated from src/config/schema.c; do not edit by hand.\n"
                            "     Regenerate: chela config schema --markdown > docs/configuration.md -->\n"
                            "\n"
                            "chela reads one JSON5 file. Every key is optional: a missing key takes the\n"
                            "default shown below, and a missing file means all defaults.\n"
                            "\n"
                            "## File format\n"
                            "\n"
                            "- JSON5 (https://spec.json5.org): `//` and `/* */` comments, trailing commas,\n"
                            "  unquoted keys, single-quoted strings, every JSON5 escape (`\\x41`, `\\u00e9`,\n"
                            "  surrogate pairs, a backslash before a line break to continue a string), hex\n"
                            "  integers (`0x1F`), `.5` and `5.`, and an explicit `+`.\n"
                            "- Stricter than JSON5, on purpose: a key repeated in one object is an error\n"
                            "  (JSON5 keeps the last one); `Infinity` and `NaN` are rejected; integers\n"
                            "  must fit in 64 bits; strings may not contain NUL; the file must be UTF-8,\n"
                            "  at most 4 MiB, nested at most 64 levels.\n"
                            "- Validation is strict and reports every problem at once, each with its\n"
                            "  line and column: an unknown key is an error naming its full path\n"
                            "  (`unknown key 'gateway.prot' (line 3:5)`), and so is a wrong type, a\n"
                            "  value out of range or not among the allowed ones, or a missing required\n"
                            "  key. Keys starting with `x-`, and `$schema`, are allowed in any object\n"
                            "  and ignored.\n"
                            "- Sizes are strings such as `\"512KB\"`, `\"1MB\"`, `\"2GB\"` (powers of\n"
                            "  1024) or a number of bytes.\n"
                            "\n"
                            "## Environment variables in values\n"
                            "\n"
                            "Inside string values (not keys), `${NAME}` is replaced by the environment\n"
                            "variable `NAME` (letters, digits and `_`). `${NAME:-fallback}` uses\n"
                            "`fallback` when `NAME` is unset or empty. An unset variable without a\n"
                            "fallback is an error that names it. Write `$${` for a literal `${`.\n"
                            "\n"
                            "```json5\n"
                            "{\n"
                            "  gateway: { auth: { token: '${GATEWAY_TOKEN}' } },\n"
                            "  api: { auth: { tokens: [{ name: 'ci', token: '${CI_TOKEN:-dev-token}' }] } },\n"
                            "}\n"
                            "```\n";

/* Cell text with '|' escaped so it cannot split the table. */
static int cell(struct ch_buf *out, const char *s)
{
    int rc = 0;

    for (; *s && !rc; s++)
        rc = *s == '|' ? ch_buf_append(out, "\\|", 2) : ch_buf_append_char(out, *s);
    return rc;
}

/* "`a`, `b`, `c`" from "a|b|c". */
static int value_list(struct ch_buf *out, const char *values)
{
    int rc = ch_buf_append_char(out, '`');

    for (; *values && !rc; values++)
        rc = *values == '|' ? ch_buf_append_str(out, "`, `") : ch_buf_append_char(out, *values);
    return rc ? rc : ch_buf_append_char(out, '`');
}

/* Bytes as "64 KiB" when a whole number of KiB/MiB/GiB, else plain. */
static int size_text(struct ch_buf *out, int64_t v)
{
    static const char *const units[] = {"GiB", "MiB", "KiB"};
    int64_t scale = 1024LL * 1024 * 1024;

    for (size_t k = 0; k < CH_ARRAY_SIZE(units); k++, scale /= 1024)
        if (v >= scale && v % scale == 0)
            return ch_buf_appendf(out, "%lld %s", (long long)(v / scale), units[k]);
    return ch_buf_appendf(out, "%lld B", (long long)v);
}

static int type_cell(struct ch_buf *out, const struct cfg_row *r)
{
    const char *unit = r->unit && strcmp(r->unit, "count") ? r->unit : NULL;
    int rc;

    switch (r->type) {
    case CFG_ENUM: rc = ch_buf_append_str(out, "one of "); return rc ? rc : value_list(out, r->values);
    case CFG_STRINGS:
        rc = ch_buf_append_str(out, "array of strings");
        if (!rc && r->values) {
            rc = ch_buf_append_str(out, ": ");
            rc = rc ? rc : value_list(out, r->values);
        }
        return rc;
    case CFG_SIZE:
        rc = ch_buf_append_str(out, "size, ");
        rc = rc ? rc : size_text(out, r->min);
        rc = rc ? rc : ch_buf_append_str(out, "..");
        return rc ? rc : size_text(out, r->max);
    case CFG_DURATION:
        if (unit && !strcmp(unit, "d")) /* OpenClaw's: a number is days */
            return ch_buf_appendf(out, "duration (`30d`, `12h`, `90m`; a number is days), 0..%lldd",
                                  (long long)(r->max / 86400000));
        /* fall through */
    case CFG_INT:
    case CFG_NUMBER:
        rc = ch_buf_appendf(out, "%s%s%s%s, %lld..%lld", cfg_type_name(r->type), unit ? " (" : "", unit ? unit : "",
                            unit ? ")" : "", (long long)r->min, (long long)r->max);
        return rc;
    case CFG_STRING: return ch_buf_append_str(out, r->flags & CFG_SECRET ? "string, secret" : "string");
    default: return ch_buf_append_str(out, cfg_type_name(r->type));
    }
}

static int row_line(struct ch_buf *out, const struct cfg_row *r)
{
    int rc = ch_buf_append_str(out, "| `");

    rc = rc ? rc : cell(out, r->path);
    rc = rc ? rc : ch_buf_append_str(out, "` | ");
    rc = rc ? rc : type_cell(out, r);
    rc = rc ? rc : ch_buf_append_str(out, " | ");
    if (r->def) {
        rc = rc ? rc : ch_buf_append_char(out, '`');
        rc = rc ? rc : cell(out, r->def);
        rc = rc ? rc : ch_buf_append_char(out, '`');
    } else {
        rc = rc ? rc : ch_buf_append_str(out, r->flags & CFG_REQUIRED ? "required" : "none");
    }
    rc = rc ? rc : ch_buf_append_str(out, " | ");
    rc = rc ? rc : cell(out, r->doc);
    if (r->flags & CFG_SECRET)
        rc = rc ? rc : ch_buf_append_str(out, " Redacted in `config show`.");
    return rc ? rc : ch_buf_append_str(out, " |\n");
}

/* A section is the first path segment ("gateway" of "gateway.port"). */
static size_t section_len(const char *path)
{
    return strcspn(path, ".[");
}

static int section(struct ch_buf *out, const struct cfg_schema *s, size_t first)
{
    const char *name = s->rows[first].path;
    size_t n = section_len(name);
    bool header = false;
    int rc;

    rc = ch_buf_appendf(out, "\n## `%.*s`\n\n", (int)n, name);
    for (size_t k = first; k < s->count && !rc; k++) {
        const struct cfg_row *r = &s->rows[k];

        if (section_len(r->path) != n || strncmp(r->path, name, n))
            continue;
        if (r->type == CFG_OBJECT) {
            /* A grouping object: its doc line introduces the table. */
            rc = ch_buf_appendf(out, "%s\n\n", r->doc);
            continue;
        }
        /* The header waits for the first real row, so a section made only
         * of a grouping object would not print an empty table. */
        if (!header) {
            rc = ch_buf_append_str(out, "| Key | Type | Default | Meaning |\n"
                                        "|---|---|---|---|\n");
            header = true;
        }
        rc = rc ? rc : row_line(out, r);
    }
    return rc;
}

int cfg_schema_markdown(const struct cfg_schema *s, struct ch_buf *out)
{
    int rc = ch_buf_append_str(out, intro);

    for (size_t k = 0; k < s->count && !rc; k++) {
        const char *path = s->rows[k].path;
        size_t n = section_len(path);
        bool seen = false;

        /* Sections appear in the order of their first row. */
        for (size_t j = 0; j < k && !seen; j++)
            seen = section_len(s->rows[j].path) == n && !strncmp(s->rows[j].path, path, n);
        if (!seen)
            rc = section(out, s, k);
    }
    /* The override list comes from config.c's table, like the keys. */
    rc = rc ? rc
            : ch_buf_append_str(out, "\n## Environment overrides\n\n"
                                     "Applied after the file, so they win over it. An empty variable counts as\n"
                                     "unset. When both are set, the `CHELA_` name wins over the `OPENCLAW_` one.\n\n"
                                     "| Variable | Also read | Sets |\n|---|---|---|\n");
    for (size_t k = 0; k < cfg_env_override_count && !rc; k++)
        rc = ch_buf_appendf(out, "| `%s` | `%s` | `%s` |\n", cfg_env_overrides[k].chela, cfg_env_overrides[k].openclaw,
                            cfg_env_overrides[k].path);
    return rc;
}
