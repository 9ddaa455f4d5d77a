/*  tf_columns_json against jansson: the list columns' JSON is written
    directly, and must be the very text json_dumps (JSON_COMPACT) makes of
    the same lists — strings with quotes, backslashes, control characters
    and multi-byte UTF-8, numbers of every magnitude — and refuse what
    jansson refuses (invalid UTF-8, numbers that are not finite). */
#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tf_columns.h"
#include "tf_json.h"

#define S_ROUNDS 3000

static uint64_t s_seed = 0x9e3779b97f4a7c15ULL;

static uint32_t s_rand (uint32_t n)
{
    s_seed ^= s_seed << 13;
    s_seed ^= s_seed >> 7;
    s_seed ^= s_seed << 17;
    return (uint32_t) (s_seed % n);
}

/*  Pieces strings are made of: plain, escaped, multi-byte and invalid. */
static const char *s_pieces[] = { "a",
                                  "Z",
                                  "9",
                                  " ",
                                  "/",
                                  "\"",
                                  "\\",
                                  "\x01",
                                  "\x08",
                                  "\x09",
                                  "\x0a",
                                  "\x0c",
                                  "\x0d",
                                  "\x1f",
                                  "\x7f",
                                  "\xc3\xa9",
                                  "\xe2\x82\xac",
                                  "\xf0\x9f\x98\x80",
                                  "\xe2\x80\xa8",
                                  /* invalid: */ "\x80",
                                  "\xc0\x80",
                                  "\xed\xa0\x80",
                                  "\xf4\x90\x80\x80",
                                  "\xe2\x82",
                                  "\xff" };
#define S_VALID_PIECES 19

static char *s_string (bool allow_invalid)
{
    char buf[256] = "";
    size_t pieces = s_rand (12);
    size_t kinds = allow_invalid ? sizeof s_pieces / sizeof s_pieces[0] : S_VALID_PIECES;
    for (size_t i = 0; i < pieces; i++)
        strcat (buf, s_pieces[s_rand ((uint32_t) kinds)]);
    return strdup (buf);
}

static double s_double (void)
{
    static const double fixed[] = { 0.0,    -0.0, 1.0, 40000.0, 1e20,  1e-5, 123.456, 1.5e300,
                                    5e-324, -2.5, 0.1, 1e100,   93.01, 34.6, NAN,     INFINITY };
    if (s_rand (2))
        return fixed[s_rand (sizeof fixed / sizeof fixed[0])];
    double mantissa = (double) s_rand (1000000) / (double) (1 + s_rand (1000));
    return (s_rand (2) ? -1 : 1) * mantissa * pow (10.0, (int) s_rand (60) - 30);
}

/*  The reference: what the columns were before, jansson's tree dumped. */
static char *s_jansson_strings (char **items, size_t count)
{
    json_t *array = json_array ();
    for (size_t i = 0; i < count; i++) {
        json_t *item = json_string (items[i]);
        if (!item) {
            json_decref (array);
            return NULL;
        }
        json_array_append_new (array, item);
    }
    char *text = json_dumps (array, JSON_COMPACT);
    json_decref (array);
    return text;
}

/*  Each metric dumped alone, with the digits its value needs, then
    joined: jansson has one precision per dump. */
static char *s_jansson_metrics (Techfeed__Metric **metrics, size_t count)
{
    char *text = strdup ("[");
    for (size_t i = 0; i < count; i++) {
        json_t *item = json_object ();
        int rc = 0;
        if (metrics[i]->name)
            rc |= json_object_set_new (item, "name", json_string (metrics[i]->name));
        if (metrics[i]->has_value)
            rc |= json_object_set_new (item, "value", json_real (metrics[i]->value));
        if (metrics[i]->unit)
            rc |= json_object_set_new (item, "unit", json_string (metrics[i]->unit));
        char *one = rc ? NULL
                       : json_dumps (item, JSON_COMPACT |
                                               JSON_REAL_PRECISION (tf_json_real_precision (item)));
        json_decref (item);
        if (!one) {
            free (text);
            return NULL;
        }
        size_t len = strlen (text);
        text = realloc (text, len + strlen (one) + 2);
        sprintf (text + len, "%s%s", i ? "," : "", one);
        free (one);
    }
    text = realloc (text, strlen (text) + 2);
    strcat (text, "]");
    return text;
}

static void s_assert_same (const char *ours, const char *reference)
{
    if (!reference)
        assert_null (ours);
    else {
        assert_non_null (ours);
        assert_string_equal (ours, reference);
    }
}

static void test_same_text_as_jansson (void **state)
{
    int refused = 0, written = 0;
    for (int round = 0; round < S_ROUNDS; round++) {
        bool invalid = round % 4 == 0;
        Techfeed__Milestone record = TECHFEED__MILESTONE__INIT;
        char *lists[3][4];
        size_t counts[3];
        for (int l = 0; l < 3; l++) {
            counts[l] = s_rand (5);
            for (size_t i = 0; i < counts[l]; i++)
                lists[l][i] = s_string (invalid);
        }
        record.organizations = lists[0], record.n_organizations = counts[0];
        record.sources = lists[1], record.n_sources = counts[1];
        record.tags = lists[2], record.n_tags = counts[2];
        Techfeed__Metric metric_storage[4], *metrics[4];
        record.n_metrics = s_rand (5);
        record.metrics = metrics;
        for (size_t i = 0; i < record.n_metrics; i++) {
            techfeed__metric__init (&metric_storage[i]);
            metrics[i] = &metric_storage[i];
            metric_storage[i].name = s_rand (4) ? s_string (invalid) : NULL;
            metric_storage[i].unit = s_rand (4) ? s_string (invalid) : NULL;
            metric_storage[i].has_value = s_rand (4) != 0;
            metric_storage[i].value = s_double ();
        }

        tf_columns_json_t json;
        int rc = tf_columns_json (&record, &json);
        char *expected[4] = {
            s_jansson_strings (record.organizations, record.n_organizations),
            s_jansson_metrics (record.metrics, record.n_metrics),
            s_jansson_strings (record.sources, record.n_sources),
            s_jansson_strings (record.tags, record.n_tags),
        };
        bool all = expected[0] && expected[1] && expected[2] && expected[3];
        assert_int_equal (rc, all ? 0 : -1);
        if (all) {
            s_assert_same (json.organizations, expected[0]);
            s_assert_same (json.metrics, expected[1]);
            s_assert_same (json.sources, expected[2]);
            s_assert_same (json.tags, expected[3]);
            written++;
        } else
            refused++;
        tf_columns_json_free (&json);
        for (int i = 0; i < 4; i++)
            free (expected[i]);
        for (int l = 0; l < 3; l++)
            for (size_t i = 0; i < counts[l]; i++)
                free (lists[l][i]);
        for (size_t i = 0; i < record.n_metrics; i++) {
            free (metric_storage[i].name);
            free (metric_storage[i].unit);
        }
    }
    print_message ("%d records written, %d refused, same as jansson\n", written, refused);
    assert_true (written > S_ROUNDS / 2);
    assert_true (refused > 0); // the invalid cases were really tried
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_same_text_as_jansson),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
