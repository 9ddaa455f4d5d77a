/*  tf_json — milestones as JSON objects (PROTOCOL.md §3). See tf_json.h.

    Input: a member set to null counts as absent; "revision" and
    "updated_at" are accepted and ignored (the service assigns them).
    Output: absent optional members are left out, the four lists are
    always present.
*/
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tf_json.h"
#include "tf_wire.h"

#define S_POINTER_MAX sizeof (((tf_verror_t *) 0)->field)

static char *s_strdup (const char *s)
{
    char *copy = strdup (s);
    if (!copy)
        abort ();
    return copy;
}

/*  `base` + "/" + `key` escaped as RFC 6901 says (~ as ~0, / as ~1);
    cut when longer than an error field holds. */
static void s_pointer (char *out, const char *base, const char *key)
{
    size_t n = (size_t) snprintf (out, S_POINTER_MAX, "%s/", base);
    if (n >= S_POINTER_MAX)
        n = S_POINTER_MAX - 1; // base alone filled it
    for (const char *p = key; *p && n + 3 < S_POINTER_MAX; p++) {
        if (*p == '~' || *p == '/') {
            out[n++] = '~';
            out[n++] = *p == '~' ? '0' : '1';
        } else
            out[n++] = *p;
    }
    out[n] = '\0';
}

/*  Copies a JSON string into `*out`; refuses other types and strings
    with an embedded NUL (\u0000), which a C string would cut short. */
static int s_string (const json_t *value, const char *pointer, char **out, tf_verror_t *err)
{
    if (!json_is_string (value))
        return tf_verror_set (err, pointer, "must be a string");
    if (strlen (json_string_value (value)) != json_string_length (value))
        return tf_verror_set (err, pointer, "must not contain NUL (\\u0000)");
    *out = s_strdup (json_string_value (value));
    return 0;
}

/*  How many bytes of `text` to quote in a message: at most `max`, without
    cutting a UTF-8 sequence in two (the message must stay UTF-8). */
static int s_quoted (const char *text, size_t max)
{
    size_t n = strlen (text);
    if (n <= max)
        return (int) n;
    n = max;
    while (n > 0 && ((unsigned char) text[n] & 0xC0) == 0x80)
        n--; // text[n] continues a sequence: end before that sequence's lead byte
    return (int) n;
}

/*  A sector or status name through `lookup`; the message lists the names. */
static int s_enum (const json_t *value, const char *pointer, int (*lookup) (const char *),
                   const char *(*name) (int), int max, const char *what, int *out, tf_verror_t *err)
{
    if (!json_is_string (value))
        return tf_verror_set (err, pointer, "must be a string");
    int v = lookup (json_string_value (value));
    if (v < 1) {
        char names[160] = "";
        for (int i = 1; i <= max; i++) {
            strcat (names, name (i));
            if (i < max)
                strcat (names, ", ");
        }
        const char *text = json_string_value (value);
        return tf_verror_set (err, pointer, "unknown %s \"%.*s\"; one of %s", what,
                              s_quoted (text, 40), text, names);
    }
    *out = v;
    return 0;
}

/*  Zeroed room for `n` items, NULL for none. */
static void *s_calloc (size_t n, size_t size)
{
    void *items = n ? calloc (n, size) : NULL;
    if (n && !items)
        abort ();
    return items;
}

/*  The pointer of item `i` below `pointer`; tf_verror_set cuts what does
    not fit an error field. */
static void s_index (char out[S_POINTER_MAX + 24], const char *pointer, size_t i)
{
    snprintf (out, S_POINTER_MAX + 24, "%s/%zu", pointer, i);
}

static int s_string_list (const json_t *value, const char *pointer, size_t *count, char ***items,
                          tf_verror_t *err)
{
    if (!json_is_array (value))
        return tf_verror_set (err, pointer, "must be an array");
    *items = s_calloc (json_array_size (value), sizeof **items);
    char item[S_POINTER_MAX + 24];
    for (size_t i = 0; i < json_array_size (value); i++) {
        s_index (item, pointer, i);
        if (s_string (json_array_get (value, i), item, &(*items)[i], err))
            return -1;
        (*count)++; // counted once set, so free_unpacked frees exactly these
    }
    return 0;
}

static int s_metric (const json_t *object, const char *pointer, Techfeed__Metric *metric,
                     tf_verror_t *err)
{
    if (!json_is_object (object))
        return tf_verror_set (err, pointer, "must be an object");
    const char *key;
    json_t *value;
    char member[S_POINTER_MAX];
    json_object_foreach ((json_t *) object, key, value) {
        s_pointer (member, pointer, key);
        int rc = 0;
        if (json_is_null (value))
            continue;
        if (strcmp (key, "name") == 0)
            rc = s_string (value, member, &metric->name, err);
        else if (strcmp (key, "unit") == 0)
            rc = s_string (value, member, &metric->unit, err);
        else if (strcmp (key, "value") == 0) {
            if (!json_is_number (value))
                return tf_verror_set (err, member, "must be a number");
            metric->has_value = 1;
            metric->value = json_number_value (value);
        } else
            rc = tf_verror_set (err, member, "unknown member");
        if (rc)
            return -1;
    }
    return 0;
}

static int s_metrics (const json_t *value, const char *pointer, Techfeed__Milestone *m,
                      tf_verror_t *err)
{
    if (!json_is_array (value))
        return tf_verror_set (err, pointer, "must be an array");
    m->metrics = s_calloc (json_array_size (value), sizeof *m->metrics);
    char item[S_POINTER_MAX + 24];
    for (size_t i = 0; i < json_array_size (value); i++) {
        Techfeed__Metric *metric = malloc (sizeof *metric);
        if (!metric)
            abort ();
        techfeed__metric__init (metric);
        m->metrics[m->n_metrics++] = metric;
        s_index (item, pointer, i);
        if (s_metric (json_array_get (value, i), item, metric, err))
            return -1;
    }
    return 0;
}

/*  Sets one member of `m` from `value`; -1 with `err` on a bad member. */
static int s_member (Techfeed__Milestone *m, const char *key, const json_t *value,
                     const char *pointer, tf_verror_t *err)
{
    int v;
    if (strcmp (key, "id") == 0)
        return s_string (value, pointer, &m->id, err);
    if (strcmp (key, "title") == 0)
        return s_string (value, pointer, &m->title, err);
    if (strcmp (key, "summary") == 0)
        return s_string (value, pointer, &m->summary, err);
    if (strcmp (key, "country") == 0)
        return s_string (value, pointer, &m->country, err);
    if (strcmp (key, "date") == 0)
        return s_string (value, pointer, &m->date, err);
    if (strcmp (key, "sector") == 0) {
        if (s_enum (value, pointer, tf_sector_from_slug, tf_sector_slug, TF_SECTOR_MAX, "sector",
                    &v, err))
            return -1;
        m->has_sector = 1;
        m->sector = (Techfeed__Sector) v;
        return 0;
    }
    if (strcmp (key, "status") == 0) {
        if (s_enum (value, pointer, tf_status_from_name, tf_status_name, TF_STATUS_MAX, "status",
                    &v, err))
            return -1;
        m->has_status = 1;
        m->status = (Techfeed__MilestoneStatus) v;
        return 0;
    }
    if (strcmp (key, "organizations") == 0)
        return s_string_list (value, pointer, &m->n_organizations, &m->organizations, err);
    if (strcmp (key, "sources") == 0)
        return s_string_list (value, pointer, &m->n_sources, &m->sources, err);
    if (strcmp (key, "tags") == 0)
        return s_string_list (value, pointer, &m->n_tags, &m->tags, err);
    if (strcmp (key, "metrics") == 0)
        return s_metrics (value, pointer, m, err);
    if (strcmp (key, "revision") == 0 || strcmp (key, "updated_at") == 0)
        return 0; // server-assigned: output only
    return tf_verror_set (err, pointer, "unknown member");
}

Techfeed__Milestone *tf_json_to_milestone (const json_t *object, tf_verror_t *err)
{
    if (!json_is_object (object)) {
        tf_verror_set (err, "", "must be a JSON object");
        return NULL;
    }
    Techfeed__Milestone *m = malloc (sizeof *m);
    if (!m)
        abort ();
    techfeed__milestone__init (m);
    const char *key;
    json_t *value;
    char pointer[S_POINTER_MAX];
    json_object_foreach ((json_t *) object, key, value) {
        s_pointer (pointer, "", key);
        if (!json_is_null (value) && s_member (m, key, value, pointer, err)) {
            techfeed__milestone__free_unpacked (m, NULL);
            return NULL;
        }
    }
    return m;
}

// --------------------------------------------------------------- output

/*  A JSON string for `text`. Records are validated UTF-8; should one not
    be, its non-ASCII bytes become U+FFFD rather than the member vanishing
    (json_string refuses invalid UTF-8). */
static json_t *s_text (const char *text)
{
    json_t *string = json_string (text);
    if (string)
        return string;
    size_t n = 0;
    char *lossy = malloc (strlen (text) * 3 + 1);
    if (!lossy)
        abort ();
    for (const unsigned char *p = (const unsigned char *) text; *p; p++) {
        if (*p < 0x80)
            lossy[n++] = (char) *p;
        else {
            memcpy (lossy + n, "\xEF\xBF\xBD", 3);
            n += 3;
        }
    }
    lossy[n] = '\0';
    string = json_string (lossy);
    free (lossy);
    return string;
}

static void s_set_text (json_t *object, const char *key, const char *text)
{
    if (text)
        json_object_set_new (object, key, s_text (text));
}

static json_t *s_text_list (char *const *items, size_t count)
{
    json_t *array = json_array ();
    for (size_t i = 0; i < count; i++)
        json_array_append_new (array, s_text (items[i]));
    return array;
}

/*  Prints `value` with the fewest of 15, 16 or 17 digits that read back
    exactly; the length, and the digits in *digits. */
static int s_real_print (double value, char *buffer, size_t size, int *digits)
{
    int n = 0;
    for (*digits = 15; *digits <= 17; (*digits)++) {
        n = snprintf (buffer, size, "%.*g", *digits, value);
        if (*digits == 17 || strtod (buffer, NULL) == value)
            break;
    }
    return n;
}

int tf_json_real_digits (double value)
{
    char buffer[40];
    int digits;
    s_real_print (value, buffer, sizeof buffer, &digits);
    return digits;
}

int tf_json_real_print (double value, char *buffer, size_t size)
{
    int digits;
    return s_real_print (value, buffer, size, &digits);
}

int tf_json_real_precision (const json_t *value)
{
    int most = 15;
    if (json_is_real (value))
        return tf_json_real_digits (json_real_value (value));
    if (json_is_array (value)) {
        for (size_t i = 0; i < json_array_size (value); i++) {
            int digits = tf_json_real_precision (json_array_get (value, i));
            most = digits > most ? digits : most;
        }
    } else if (json_is_object (value)) {
        const char *key;
        json_t *member;
        json_object_foreach ((json_t *) value, key, member) {
            int digits = tf_json_real_precision (member);
            most = digits > most ? digits : most;
        }
    }
    return most;
}

/*  Integral values print as integers (140, not 140.0) while exact in a
    double; JSON has no NaN or infinity, so those become null. */
static json_t *s_number (double value)
{
    if (!isfinite (value))
        return json_null ();
    if (value == floor (value) && fabs (value) <= 9007199254740992.0)
        return json_integer ((json_int_t) value);
    return json_real (value);
}

/*  RFC 3339 UTC with milliseconds: "2026-11-28T17:42:18.123Z". */
static json_t *s_timestamp (int64_t ms)
{
    int64_t seconds = ms / 1000, millis = ms % 1000;
    if (millis < 0) { // floor division, so times before 1970 read right
        seconds--;
        millis += 1000;
    }
    time_t t = (time_t) seconds;
    struct tm tm;
    if (!gmtime_r (&t, &tm))
        return json_null ();
    char text[48];
    snprintf (text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
              tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int) millis);
    return json_string (text);
}

json_t *tf_json_from_milestone (const Techfeed__Milestone *record)
{
    assert (record);
    json_t *object = json_object ();
    s_set_text (object, "id", record->id);
    if (record->has_sector)
        s_set_text (object, "sector", tf_sector_slug (record->sector));
    s_set_text (object, "title", record->title);
    s_set_text (object, "summary", record->summary);
    json_object_set_new (object, "organizations",
                         s_text_list (record->organizations, record->n_organizations));
    s_set_text (object, "country", record->country);
    s_set_text (object, "date", record->date);
    if (record->has_status)
        s_set_text (object, "status", tf_status_name (record->status));
    json_t *metrics = json_array ();
    for (size_t i = 0; i < record->n_metrics; i++) {
        const Techfeed__Metric *metric = record->metrics[i];
        json_t *item = json_object ();
        s_set_text (item, "name", metric->name);
        if (metric->has_value)
            json_object_set_new (item, "value", s_number (metric->value));
        s_set_text (item, "unit", metric->unit);
        json_array_append_new (metrics, item);
    }
    json_object_set_new (object, "metrics", metrics);
    json_object_set_new (object, "sources", s_text_list (record->sources, record->n_sources));
    json_object_set_new (object, "tags", s_text_list (record->tags, record->n_tags));
    if (record->has_revision)
        json_object_set_new (object, "revision", json_integer ((json_int_t) record->revision));
    if (record->has_updated_at_ms)
        json_object_set_new (object, "updated_at", s_timestamp (record->updated_at_ms));
    return object;
}

json_t *tf_json_from_change (const Techfeed__ChangeEvent *event)
{
    assert (event);
    json_t *object = json_object ();
    if (event->has_sequence)
        json_object_set_new (object, "seq", json_integer ((json_int_t) event->sequence));
    if (event->has_kind && event->kind == TECHFEED__CHANGE_KIND__CHANGE_PUT)
        json_object_set_new (object, "kind", json_string ("put"));
    else if (event->has_kind && event->kind == TECHFEED__CHANGE_KIND__CHANGE_DELETE)
        json_object_set_new (object, "kind", json_string ("delete"));
    s_set_text (object, "id", event->id);
    if (event->has_sector)
        s_set_text (object, "sector", tf_sector_slug (event->sector));
    if (event->has_revision)
        json_object_set_new (object, "revision", json_integer ((json_int_t) event->revision));
    if (event->has_timestamp_ms)
        json_object_set_new (object, "timestamp", s_timestamp (event->timestamp_ms));
    if (event->record && event->has_kind && event->kind == TECHFEED__CHANGE_KIND__CHANGE_PUT)
        json_object_set_new (object, "record", tf_json_from_milestone (event->record));
    return object;
}
