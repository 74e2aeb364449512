/*
 * rest_skills.c: GET /api/v1/skills [read] (seed 002, issue #4 item 4):
 * the workspace's skills/<folder>/SKILL.md files, each with the name and
 * description of its YAML frontmatter (OpenClaw's skill format: a `---`
 * block of `key: value` lines first in the file).  The directory walk and
 * the reads run on the libuv thread pool; everything is bounded (folders
 * looked at, bytes read per file), and a folder without a readable
 * SKILL.md is skipped, not an error.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/hooks.h"

#define MAX_SKILLS 500             /* folders listed; more sets "truncated" */
#define MAX_SKILL_FILE (64 * 1024) /* bytes of SKILL.md read: the frontmatter is at the top */
#define MAX_FIELD 4096             /* a name or description, after unquoting */

struct skills_work {
    uv_work_t work;
    struct ch_api *api;      /* borrowed */
    struct ch_http_req *req; /* ref held */
    char *dir;               /* owned: <workspace>/skills */
    json_t *list;            /* built on the pool thread */
    bool truncated;
    int err; /* errno of opendir, 0 or ENOENT is fine */
};

/* ---- a tiny YAML subset: top-level scalars of a frontmatter block ---- */

static void rtrim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
}

/* Unquote a flow scalar in place: "..." with \" \\ \n \t, '...' with ''. */
static void unquote(char *v)
{
    size_t n = strlen(v), o = 0;
    char q = v[0];

    if (n < 2 || (q != '"' && q != '\'') || v[n - 1] != q)
        return;
    for (size_t i = 1; i + 1 < n; i++) {
        char c = v[i];
        if (q == '\'' && c == '\'' && v[i + 1] == '\'') {
            i++;
        } else if (q == '"' && c == '\\' && i + 2 < n) {
            c = v[++i];
            c = c == 'n' ? '\n' : c == 't' ? '\t' : c;
        }
        v[o++] = c;
    }
    v[o] = '\0';
}

/* Strip a " #" comment from a plain scalar. */
static void strip_comment(char *v)
{
    for (char *p = v; *p; p++)
        if (*p == '#' && p > v && (p[-1] == ' ' || p[-1] == '\t')) {
            *p = '\0';
            rtrim(v);
            return;
        }
}

/*
 * Value of top-level `key` in the frontmatter lines [lines, end): plain,
 * quoted, block (| or >) or a plain scalar continued on indented lines.
 * Owned string or NULL.
 */
static char *fm_value(char *const *lines, size_t count, const char *key)
{
    size_t klen = strlen(key);
    char buf[MAX_FIELD];
    size_t n = 0;

    for (size_t i = 0; i < count; i++) {
        const char *l = lines[i], *v;
        bool block, fold;

        if (strncmp(l, key, klen) || l[klen] != ':' || (l[klen + 1] && l[klen + 1] != ' ' && l[klen + 1] != '\t'))
            continue;
        v = l + klen + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        block = v[0] == '|' || v[0] == '>';
        fold = v[0] != '|';
        if (*v && !block) {
            char *s = ch_strdup(v);
            if (s && s[0] != '"' && s[0] != '\'')
                strip_comment(s);
            if (s)
                unquote(s);
            return s;
        }
        /* Block or continued scalar: the indented lines that follow. */
        buf[0] = '\0';
        for (size_t k = i + 1; k < count && (lines[k][0] == ' ' || lines[k][0] == '\t' || !lines[k][0]); k++) {
            const char *t = lines[k];
            size_t tl;
            while (*t == ' ' || *t == '\t')
                t++;
            tl = strlen(t);
            if (n && n + 1 < sizeof(buf))
                buf[n++] = (fold && tl) ? ' ' : '\n';
            if (n + tl >= sizeof(buf))
                tl = sizeof(buf) - 1 - n;
            memcpy(buf + n, t, tl);
            n += tl;
            buf[n] = '\0';
        }
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
            buf[--n] = '\0';
        return n ? ch_strdup(buf) : NULL;
    }
    return NULL;
}

/* Parse the frontmatter of text (NUL-terminated, modified in place). */
static void frontmatter(char *text, char **name, char **desc)
{
    char *lines[256], *p = text, *nl;
    size_t count = 0;

    *name = *desc = NULL;
    if (!strncmp(p, "\xEF\xBB\xBF", 3)) /* a UTF-8 byte order mark */
        p += 3;
    if (strncmp(p, "---", 3) || (p[3] != '\n' && p[3] != '\r'))
        return;
    p = strchr(p, '\n');
    if (!p)
        return;
    p++;
    while (*p && count < CH_ARRAY_SIZE(lines)) {
        nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        rtrim(p);
        if (!strcmp(p, "---") || !strcmp(p, "...")) {
            *name = fm_value(lines, count, "name");
            *desc = fm_value(lines, count, "description");
            return;
        }
        lines[count++] = p;
        if (!nl)
            break;
        p = nl + 1;
    }
    /* No closing line: not a frontmatter block. */
}

/* Read at most MAX_SKILL_FILE bytes of a regular file; owned, NUL-ended. */
static char *read_head(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *buf = NULL;
    ssize_t got;
    size_t n = 0;

    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || !(buf = ch_malloc(MAX_SKILL_FILE + 1)))
        goto out;
    while (n < MAX_SKILL_FILE && (got = read(fd, buf + n, MAX_SKILL_FILE - n)) != 0) {
        if (got < 0) {
            if (errno == EINTR)
                continue;
            ch_free(buf);
            buf = NULL;
            goto out;
        }
        n += (size_t)got;
    }
    buf[n] = '\0';
out:
    close(fd);
    return buf;
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static void scan(uv_work_t *w)
{
    struct skills_work *s = w->data;
    char **names = NULL;
    size_t count = 0;
    struct dirent *de;
    DIR *d;

    s->list = json_array();
    d = opendir(s->dir);
    if (!d) {
        s->err = errno;
        return;
    }
    names = ch_calloc(MAX_SKILLS, sizeof(*names));
    while (names && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (count == MAX_SKILLS) {
            s->truncated = true;
            break;
        }
        if (!(names[count] = ch_strdup(de->d_name)))
            break;
        count++;
    }
    closedir(d);
    if (names)
        qsort(names, count, sizeof(*names), cmp_str);
    for (size_t i = 0; i < count; i++) {
        char *path = ch_sprintf("%s/%s/SKILL.md", s->dir, names[i]), *text, *name = NULL, *desc = NULL;

        text = path ? read_head(path) : NULL;
        if (text) {
            frontmatter(text, &name, &desc);
            /* "path" is relative to the workspace. */
            json_array_append_new(s->list, json_pack("{s:s, s:s?, s:s, s:o}", "name", name ? name : names[i],
                                                     "description", desc, "folder", names[i], "path",
                                                     json_sprintf("skills/%s/SKILL.md", names[i])));
        }
        ch_free(text);
        ch_free(name);
        ch_free(desc);
        ch_free(path);
        ch_free(names[i]);
    }
    ch_free(names);
}

static void scanned(uv_work_t *w, int status)
{
    struct skills_work *s = w->data;

    if (!ch_http_req_is_closed(s->req)) {
        if (status != 0 || !s->list)
            ch_http_respond_error(s->req, 500, "internal", "listing the skills failed");
        else if (s->err && s->err != ENOENT && s->err != ENOTDIR)
            ch_http_respond_error(s->req, 500, "internal", "cannot read the skills folder: %s", strerror(s->err));
        else
            ch_http_respond_json(s->req, 200,
                                 json_pack("{s:O, s:I, s:b}", "skills", s->list, "count",
                                           (json_int_t)json_array_size(s->list), "truncated", s->truncated));
    }
    json_decref(s->list);
    ch_http_req_unref(s->req);
    ch_free(s->dir);
    ch_free(s);
}

void ch_rest_skills(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;
    const char *ws = ch_config_str(a->cfg, "agents.defaults.workspace", NULL);
    struct skills_work *s = ch_calloc(1, sizeof(*s));

    /* The agent's workspace rule (gateway_runtime.c): the configured one,
     * else <state>/workspace. */
    if (s)
        s->dir = ws ? ch_sprintf("%s/skills", ws) : ch_sprintf("%s/workspace/skills", a->state_dir);
    if (!s || !s->dir) {
        ch_free(s);
        ch_http_respond_error(r, 500, "internal", "out of memory");
        return;
    }
    s->api = a;
    s->req = r;
    s->work.data = s;
    ch_http_req_ref(r);
    if (uv_queue_work(a->net->loop, &s->work, scan, scanned) != 0) {
        ch_http_respond_error(r, 500, "internal", "cannot queue the skills scan");
        ch_http_req_unref(r);
        ch_free(s->dir);
        ch_free(s);
    }
}
