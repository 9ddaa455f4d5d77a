/*  tf_columns — see tf_columns.h. */
#include "tf_columns.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*  JSON array of strings, malloc'd; NULL when a string is not UTF-8. */
static char *s_json_strings (char **items, size_t count)
{
    json_t *array = json_array ();
    if (!array)
        abort ();
    for (size_t i = 0; i < count; i++) {
        json_t *item = items[i] ? json_string (items[i]) : NULL;
        if (!item || json_array_append_new (array, item)) {
            json_decref (array);
            return NULL;
        }
    }
    char *text = json_dumps (array, JSON_COMPACT);
    json_decref (array);
    return text;
}

/*  JSON array of {"name","value","unit"} (present fields only). */
static char *s_json_metrics (Techfeed__Metric **metrics, size_t count)
{
    json_t *array = json_array ();
    if (!array)
        abort ();
    for (size_t i = 0; i < count; i++) {
        const Techfeed__Metric *metric = metrics[i];
        json_t *item = json_object ();
        if (!item)
            abort ();
        int rc = 0;
        if (metric->name)
            rc |= json_object_set_new (item, "name", json_string (metric->name));
        if (metric->has_value)
            rc |= json_object_set_new (item, "value", json_real (metric->value));
        if (metric->unit)
            rc |= json_object_set_new (item, "unit", json_string (metric->unit));
        if (rc || json_array_append_new (array, item)) {
            json_decref (array);
            return NULL;
        }
    }
    char *text = json_dumps (array, JSON_COMPACT);
    json_decref (array);
    return text;
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
