/*  tf_columns — see tf_columns.h. */
#include "tf_columns.h"
#include "tf_json.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*  The list columns' JSON, written directly: the same text jansson's
    json_dumps (JSON_COMPACT) makes, without building its object tree
    (tests/unit/test_columns.c compares the two), each number with the
    digits it needs. */
typedef struct {
    char *data;
    size_t len, cap;
} s_text_t;

static void s_put (s_text_t *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->data = (char *) realloc (t->data, t->cap);
        if (!t->data)
            abort ();
    }
    memcpy (t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = 0;
}

/*  Length of the well-formed UTF-8 sequence at s (no overlong forms, no
    surrogates, nothing past U+10FFFF), 0 when there is none. */
static size_t s_utf8_length (const unsigned char *s)
{
    unsigned c = s[0];
    size_t n = c < 0x80 ? 1 : c < 0xC2 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF5 ? 4 : 0;
    uint32_t cp = n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return n;
}

/*  The escape of a byte JSON does not take as it is (a quote, a backslash,
    a control character). */
static void s_put_escape (s_text_t *t, unsigned char c)
{
    char escape[8];
    switch (c) {
        case '"': snprintf (escape, sizeof escape, "\\\""); break;
        case '\\': snprintf (escape, sizeof escape, "\\\\"); break;
        case '\b': snprintf (escape, sizeof escape, "\\b"); break;
        case '\f': snprintf (escape, sizeof escape, "\\f"); break;
        case '\n': snprintf (escape, sizeof escape, "\\n"); break;
        case '\r': snprintf (escape, sizeof escape, "\\r"); break;
        case '\t': snprintf (escape, sizeof escape, "\\t"); break;
        default: snprintf (escape, sizeof escape, "\\u%04X", c);
    }
    s_put (t, escape, strlen (escape));
}

/*  A JSON string; false when `s` is not UTF-8. Runs of bytes that go as
    they are are copied at once. */
static bool s_put_string (s_text_t *t, const char *s)
{
    s_put (t, "\"", 1);
    const unsigned char *p = (const unsigned char *) s, *run = p;
    while (*p) {
        size_t n = s_utf8_length (p);
        if (n == 0)
            return false;
        if (*p >= 0x20 && *p != '"' && *p != '\\') {
            p += n;
            continue;
        }
        s_put (t, (const char *) run, (size_t) (p - run));
        s_put_escape (t, *p);
        run = ++p;
    }
    s_put (t, (const char *) run, (size_t) (p - run));
    s_put (t, "\"", 1);
    return true;
}

/*  A JSON number for a double: as few significant digits as read back
    exactly (tf_json_real_print), always with a dot or an exponent, the
    exponent without '+' or leading zeros, as jansson prints it. */
static bool s_put_real (s_text_t *t, double value)
{
    if (!isfinite (value))
        return false;
    char buffer[40];
    int n = tf_json_real_print (value, buffer, sizeof buffer);
    if (!strchr (buffer, '.') && !strchr (buffer, 'e'))
        n += snprintf (buffer + n, sizeof buffer - (size_t) n, ".0");
    char *exponent = strchr (buffer, 'e');
    if (exponent) {
        char *start = exponent + 1, *end = start + 1;
        if (*start == '-')
            start++;
        while (*end == '0')
            end++;
        memmove (start, end, strlen (end) + 1);
    }
    s_put (t, buffer, strlen (buffer));
    return true;
}

/*  JSON array of strings, malloc'd; NULL when a string is not UTF-8. */
static char *s_json_strings (char **items, size_t count)
{
    s_text_t t = { NULL, 0, 0 };
    s_put (&t, "[", 1);
    bool ok = true;
    for (size_t i = 0; ok && i < count; i++) {
        if (i)
            s_put (&t, ",", 1);
        ok = items[i] && s_put_string (&t, items[i]);
    }
    s_put (&t, "]", 1);
    if (ok)
        return t.data;
    free (t.data);
    return NULL;
}

/*  JSON array of {"name","value","unit"} (present fields only). */
static char *s_json_metrics (Techfeed__Metric **metrics, size_t count)
{
    s_text_t t = { NULL, 0, 0 };
    s_put (&t, "[", 1);
    bool ok = true;
    for (size_t i = 0; ok && i < count; i++) {
        const Techfeed__Metric *metric = metrics[i];
        const char *sep = "";
        s_put (&t, i ? ",{" : "{", i ? 2 : 1);
        if (metric->name) {
            s_put (&t, "\"name\":", 7);
            ok = s_put_string (&t, metric->name);
            sep = ",";
        }
        if (ok && metric->has_value) {
            s_put (&t, sep, strlen (sep));
            s_put (&t, "\"value\":", 8);
            ok = s_put_real (&t, metric->value);
            sep = ",";
        }
        if (ok && metric->unit) {
            s_put (&t, sep, strlen (sep));
            s_put (&t, "\"unit\":", 7);
            ok = s_put_string (&t, metric->unit);
        }
        s_put (&t, "}", 1);
    }
    s_put (&t, "]", 1);
    if (ok)
        return t.data;
    free (t.data);
    return NULL;
}

static int s_bind_text (sqlite3_stmt *stmt, int index, const char *text)
{
    if (!text)
        return sqlite3_bind_null (stmt, index);
    return sqlite3_bind_text (stmt, index, text, -1, SQLITE_STATIC);
}

int tf_columns_json (const Techfeed__Milestone *record, tf_columns_json_t *json)
{
    json->organizations = s_json_strings (record->organizations, record->n_organizations);
    json->metrics = s_json_metrics (record->metrics, record->n_metrics);
    json->sources = s_json_strings (record->sources, record->n_sources);
    json->tags = s_json_strings (record->tags, record->n_tags);
    if (json->organizations && json->metrics && json->sources && json->tags)
        return 0;
    tf_columns_json_free (json);
    return -1;
}

void tf_columns_json_free (tf_columns_json_t *json)
{
    free (json->organizations);
    free (json->metrics);
    free (json->sources);
    free (json->tags);
    memset (json, 0, sizeof *json);
}

/*  Binds every column; the JSON texts with `json_destructor`. */
static int s_bind_row (sqlite3_stmt *stmt, const Techfeed__Milestone *record,
                       const tf_columns_json_t *json, void (*json_destructor) (void *),
                       const uint8_t *body, size_t size)
{
    int rc = 0;
    rc |= s_bind_text (stmt, 1, record->id);
    rc |= sqlite3_bind_int (stmt, 2, record->sector);
    rc |= s_bind_text (stmt, 3, record->title);
    rc |= s_bind_text (stmt, 4, record->summary);
    rc |= sqlite3_bind_text (stmt, 5, json->organizations, -1, json_destructor);
    rc |= s_bind_text (stmt, 6, record->country);
    rc |= s_bind_text (stmt, 7, record->date);
    if (record->has_status)
        rc |= sqlite3_bind_int (stmt, 8, record->status);
    else
        rc |= sqlite3_bind_null (stmt, 8);
    rc |= sqlite3_bind_text (stmt, 9, json->metrics, -1, json_destructor);
    rc |= sqlite3_bind_text (stmt, 10, json->sources, -1, json_destructor);
    rc |= sqlite3_bind_text (stmt, 11, json->tags, -1, json_destructor);
    rc |= sqlite3_bind_int64 (stmt, 12, tf_columns_i64 (record->revision));
    rc |= sqlite3_bind_int64 (stmt, 13, record->updated_at_ms);
    //  A blob never binds as NULL, even when empty
    rc |= sqlite3_bind_blob64 (stmt, 14, size ? (const void *) body : "", size, SQLITE_STATIC);
    return rc == SQLITE_OK ? 0 : -1;
}

int tf_columns_bind_json (sqlite3_stmt *stmt, const Techfeed__Milestone *record,
                          const tf_columns_json_t *json, const uint8_t *body, size_t size)
{
    return s_bind_row (stmt, record, json, SQLITE_STATIC, body, size);
}

int tf_columns_bind (sqlite3_stmt *stmt, const Techfeed__Milestone *record, const uint8_t *body,
                     size_t size)
{
    tf_columns_json_t json;
    if (tf_columns_json (record, &json))
        return -1;
    //  SQLite frees the texts, also when a bind fails.
    return s_bind_row (stmt, record, &json, free, body, size);
}
