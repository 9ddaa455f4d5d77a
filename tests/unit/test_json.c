/*  Unit tests for proto/tf_json.c: the JSON form of milestones and
    change events, and the pointer of every input error. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../lib/tf_fixture.h"
#include "tf_json.h"
#include "tf_wire.h"

/*  The fixture's JSON form, in output order (PROTOCOL.md §3). */
static const char *s_fixture_json =
    "{\"id\":\"change-4-far-side-landing\",\"sector\":\"space\","
    "\"title\":\"Chang'e-4 makes the first soft landing on the far side of the Moon\","
    "\"summary\":\"First soft landing\\non the far side.\",\"organizations\":[\"CNSA\",\"CAST\"],"
    "\"country\":\"CN\",\"date\":\"2019-01-03\",\"status\":\"achieved\","
    "\"metrics\":[{\"name\":\"rover mass\",\"value\":140,\"unit\":\"kg\"}],"
    "\"sources\":[\"https://en.wikipedia.org/wiki/Chang%27e_4\"],\"tags\":[\"moon\",\"far-side\"],"
    "\"revision\":7,\"updated_at\":\"2026-11-28T17:42:18.123Z\"}";

static json_t *s_parse (const char *text)
{
    json_error_t error;
    json_t *json = json_loads (text, JSON_ALLOW_NUL, &error);
    if (!json)
        fail_msg ("test JSON: %s at %d:%d", error.text, error.line, error.column);
    return json;
}

/*  Compact text of `json`, which it consumes; caller frees. */
/*  As the CLI prints it: reals with the digits they need. */
static char *s_dump (json_t *json)
{
    char *text =
        json_dumps (json, JSON_COMPACT | JSON_REAL_PRECISION (tf_json_real_precision (json)));
    json_decref (json);
    return text;
}

/*  Parses `text` as a milestone; NULL with `err` on refusal. */
static Techfeed__Milestone *s_milestone (const char *text, tf_verror_t *err)
{
    json_t *json = s_parse (text);
    Techfeed__Milestone *m = tf_json_to_milestone (json, err);
    json_decref (json);
    return m;
}

/*  Expects `text` to be refused at `field` with `message`. */
static void s_refused (const char *text, const char *field, const char *message)
{
    tf_verror_t err = { "", "" };
    Techfeed__Milestone *m = s_milestone (text, &err);
    if (m) {
        techfeed__milestone__free_unpacked (m, NULL);
        fail_msg ("accepted: %s", text);
    }
    assert_string_equal (err.field, field);
    assert_string_equal (err.message, message);
}

static void test_from_milestone (void **state)
{
    Techfeed__Milestone *m = tf_fixture_milestone ();
    char *text = s_dump (tf_json_from_milestone (m));
    assert_string_equal (text, s_fixture_json);
    free (text);
    techfeed__milestone__free_unpacked (m, NULL);

    //  Only what is set; the lists are always there
    Techfeed__Milestone bare;
    techfeed__milestone__init (&bare);
    bare.id = "a";
    bare.has_sector = 1;
    bare.sector = TECHFEED__SECTOR__SECTOR_HIGH_SPEED_RAIL;
    text = s_dump (tf_json_from_milestone (&bare));
    assert_string_equal (
        text,
        "{\"id\":\"a\",\"sector\":\"rail\",\"organizations\":[],\"metrics\":[],\"sources\":[],"
        "\"tags\":[]}");
    free (text);
}

static void test_round_trip (void **state)
{
    //  JSON -> milestone -> JSON, with the output-only members removed
    json_t *original = s_parse (s_fixture_json);
    json_object_del (original, "revision");
    json_object_del (original, "updated_at");
    tf_verror_t err;
    Techfeed__Milestone *m = tf_json_to_milestone (original, &err);
    assert_non_null (m);
    assert_int_equal (tf_validate_milestone (m, &err), 0);
    assert_false (m->has_revision);
    assert_false (m->has_updated_at_ms);
    json_t *again = tf_json_from_milestone (m);
    if (!json_equal (original, again)) {
        char *a = json_dumps (original, JSON_COMPACT), *b = json_dumps (again, JSON_COMPACT);
        fail_msg ("round trip differs:\n%s\n%s", a, b);
    }
    json_decref (again);
    json_decref (original);

    //  And the milestone equals the fixture, byte for byte on the wire
    Techfeed__Milestone *fixture = tf_fixture_milestone ();
    fixture->has_revision = 0;
    fixture->has_updated_at_ms = 0;
    size_t size_a, size_b;
    uint8_t *a = tf_wire_pack (&m->base, &size_a);
    uint8_t *b = tf_wire_pack (&fixture->base, &size_b);
    assert_int_equal (size_a, size_b);
    assert_memory_equal (a, b, size_a);
    free (a);
    free (b);
    techfeed__milestone__free_unpacked (fixture, NULL);
    techfeed__milestone__free_unpacked (m, NULL);

    //  revision and updated_at are accepted on input and ignored
    m = s_milestone (s_fixture_json, &err);
    assert_non_null (m);
    assert_false (m->has_revision);
    assert_false (m->has_updated_at_ms);
    techfeed__milestone__free_unpacked (m, NULL);
}

static void test_lenient_input (void **state)
{
    tf_verror_t err;
    Techfeed__Milestone *m =
        s_milestone ("{\"id\":\"x\",\"sector\":\"HIGH_SPEED_RAIL\",\"status\":\"in-progress\","
                     "\"summary\":null,\"country\":null,\"tags\":[],"
                     "\"metrics\":[{\"name\":\"length\",\"value\":40000,\"unit\":null},"
                     "{\"name\":\"share\",\"value\":0.5}],\"revision\":\"whatever\"}",
                     &err);
    assert_non_null (m);
    assert_int_equal (m->sector, TECHFEED__SECTOR__SECTOR_HIGH_SPEED_RAIL);
    assert_int_equal (m->status, TECHFEED__MILESTONE_STATUS__STATUS_IN_PROGRESS);
    assert_null (m->summary);
    assert_null (m->country);
    assert_int_equal (m->n_tags, 0);
    assert_int_equal (m->n_metrics, 2);
    assert_true (m->metrics[0]->has_value && m->metrics[0]->value == 40000.0);
    assert_null (m->metrics[0]->unit);
    assert_true (m->metrics[1]->value == 0.5);

    //  Output normalises the names
    char *text = s_dump (tf_json_from_milestone (m));
    assert_non_null (strstr (text, "\"sector\":\"rail\""));
    assert_non_null (strstr (text, "\"status\":\"in_progress\""));
    assert_non_null (strstr (text, "{\"name\":\"length\",\"value\":40000}"));
    assert_non_null (strstr (text, "{\"name\":\"share\",\"value\":0.5}"));
    free (text);
    techfeed__milestone__free_unpacked (m, NULL);

    //  An empty object is a (not yet valid) milestone: validation is the caller's
    m = s_milestone ("{}", &err);
    assert_non_null (m);
    assert_int_equal (tf_validate_milestone (m, &err), -1);
    assert_string_equal (err.field, "/id");
    techfeed__milestone__free_unpacked (m, NULL);
}

static void test_errors (void **state)
{
    tf_verror_t err;
    json_t *array = s_parse ("[1]");
    assert_null (tf_json_to_milestone (array, &err));
    assert_string_equal (err.field, "");
    assert_string_equal (err.message, "must be a JSON object");
    json_decref (array);
    assert_null (tf_json_to_milestone (NULL, &err));

    s_refused ("{\"id\":\"x\",\"colour\":\"red\"}", "/colour", "unknown member");
    s_refused ("{\"a/b~c\":1}", "/a~1b~0c", "unknown member");
    s_refused ("{\"title\":5}", "/title", "must be a string");
    s_refused ("{\"id\":[\"x\"]}", "/id", "must be a string");
    s_refused ("{\"date\":20190103}", "/date", "must be a string");
    s_refused ("{\"title\":\"a\\u0000b\"}", "/title", "must not contain NUL (\\u0000)");
    s_refused ("{\"sector\":\"mars\"}", "/sector",
               "unknown sector \"mars\"; one of ai, telecom, fintech, energy, space, rail, "
               "biotech, quantum, chips, other");
    s_refused ("{\"sector\":5}", "/sector", "must be a string");
    s_refused ("{\"status\":\"done\"}", "/status",
               "unknown status \"done\"; one of announced, in_progress, achieved, operational, "
               "claimed");
    s_refused ("{\"organizations\":\"CNSA\"}", "/organizations", "must be an array");
    s_refused ("{\"organizations\":[\"CNSA\",7]}", "/organizations/1", "must be a string");
    s_refused ("{\"organizations\":[\"CNSA\",null]}", "/organizations/1", "must be a string");
    s_refused ("{\"sources\":[{}]}", "/sources/0", "must be a string");
    s_refused ("{\"title\":\"t\",\"tags\":[\"a\",\"b\",true]}", "/tags/2", "must be a string");
    s_refused ("{\"metrics\":{}}", "/metrics", "must be an array");
    s_refused ("{\"metrics\":[\"x\"]}", "/metrics/0", "must be an object");
    s_refused ("{\"metrics\":[{\"name\":\"n\",\"value\":\"140\"}]}", "/metrics/0/value",
               "must be a number");
    s_refused ("{\"metrics\":[{\"name\":1}]}", "/metrics/0/name", "must be a string");
    s_refused ("{\"metrics\":[{\"name\":\"n\",\"value\":1,\"unit\":\"kg\"},"
               "{\"name\":\"n\",\"colour\":1}]}",
               "/metrics/1/colour", "unknown member");

    //  A long member name is cut, still valid UTF-8
    char text[1200] = "{\"";
    for (int i = 0; i < 300; i++)
        strcat (text, "\xC3\xA9");
    strcat (text, "\":1}");
    tf_verror_t long_err;
    assert_null (s_milestone (text, &long_err));
    assert_true (strncmp (long_err.field, "/\xC3\xA9", 3) == 0);
    assert_true (tf_valid_text (long_err.field, false));
    assert_string_equal (long_err.message, "unknown member");
}

static void test_output_values (void **state)
{
    Techfeed__Metric metric, *metrics[] = { &metric };
    techfeed__metric__init (&metric);
    metric.name = "n";
    metric.has_value = 1;
    Techfeed__Milestone m;
    techfeed__milestone__init (&m);
    m.n_metrics = 1;
    m.metrics = metrics;
    m.has_updated_at_ms = 1;

    struct {
        double value;
        int64_t ms;
        const char *expected;
    } cases[] = {
        { 140, 0,
          "\"value\":140}],\"sources\":[],\"tags\":[],\"updated_at\":\"1970-01-01T00:00:00."
          "000Z\"" },
        { -0.0, -1,
          "\"value\":0}],\"sources\":[],\"tags\":[],\"updated_at\":\"1969-12-31T23:59:59.999Z\"" },
        { 1.5, 1000, "\"value\":1.5}" },
        { NAN, 0, "\"value\":null}" },
        { INFINITY, 0, "\"value\":null}" },
        { 1e300, 0, "\"value\":1e300}" },
        { 138.7, 0, "\"value\":138.7}" },
        { 9007199254740992.0, 0, "\"value\":9007199254740992}" },
        { 18014398509481984.0, 0, "\"value\":18014398509481984.0}" },
        { 0, 253402300799999LL, "\"updated_at\":\"9999-12-31T23:59:59.999Z\"" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        metric.value = cases[i].value;
        m.updated_at_ms = cases[i].ms;
        char *text = s_dump (tf_json_from_milestone (&m));
        if (!strstr (text, cases[i].expected))
            fail_msg ("case %zu: %s lacks %s", i, text, cases[i].expected);
        free (text);
    }

    //  Text that is not UTF-8 still shows up, with U+FFFD for the bad bytes
    Techfeed__Milestone bad;
    techfeed__milestone__init (&bad);
    bad.title = "a\377b";
    char *text = s_dump (tf_json_from_milestone (&bad));
    assert_non_null (strstr (text, "\"title\":\"a\357\277\275b\"")); // U+FFFD
    free (text);
}

static void test_from_change (void **state)
{
    Techfeed__ChangeEvent ev;
    tf_fixture_change (&ev, TECHFEED__CHANGE_KIND__CHANGE_DELETE, 42);
    ev.has_timestamp_ms = 1;
    ev.timestamp_ms = 1795887738123;
    const char *head = "{\"seq\":42,\"kind\":\"%s\",\"id\":\"change-4-far-side-landing\","
                       "\"sector\":\"space\",\"revision\":7,"
                       "\"timestamp\":\"2026-11-28T17:42:18.123Z\"%s";
    char expected[2048];

    char *text = s_dump (tf_json_from_change (&ev));
    snprintf (expected, sizeof expected, head, "delete", "}");
    assert_string_equal (text, expected);
    free (text);

    ev.kind = TECHFEED__CHANGE_KIND__CHANGE_PUT;
    ev.record = tf_fixture_milestone ();
    text = s_dump (tf_json_from_change (&ev));
    char record[1024];
    snprintf (record, sizeof record, ",\"record\":%s}", s_fixture_json);
    snprintf (expected, sizeof expected, head, "put", record);
    assert_string_equal (text, expected);
    free (text);
    techfeed__milestone__free_unpacked (ev.record, NULL);
}

/*  `value` printed with tf_json_real_print, which agrees with "%.*g" at
    tf_json_real_digits. */
static const char *s_shortest (double value)
{
    static char text[40];
    char again[40];
    int n = tf_json_real_print (value, text, sizeof text);
    assert_int_equal (n, (int) strlen (text));
    snprintf (again, sizeof again, "%.*g", tf_json_real_digits (value), value);
    assert_string_equal (text, again);
    return text;
}

static void test_real_digits (void **state)
{
    assert_string_equal (s_shortest (138.7), "138.7");
    assert_string_equal (s_shortest (93.01), "93.01");
    assert_string_equal (s_shortest (2.788), "2.788");
    assert_string_equal (s_shortest (0.1 + 0.2), "0.30000000000000004"); // needs all 17
    assert_string_equal (s_shortest (1e300), "1e+300");
    assert_string_equal (s_shortest (-0.0), "-0");
    assert_int_equal (tf_json_real_digits (1.0 / 3.0), 16);
    //  Random doubles, any bit pattern: the text reads back exactly, and
    //  one digit fewer would not (when more than 15 are used)
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double value;
        memcpy (&value, &x, sizeof value);
        if (!isfinite (value))
            continue;
        int digits = tf_json_real_digits (value);
        char text[40];
        snprintf (text, sizeof text, "%.*g", digits, value);
        if (strtod (text, NULL) != value)
            fail_msg ("%s does not read back as %a", text, value);
        snprintf (text, sizeof text, "%.*g", digits - 1, value);
        if (digits > 15 && strtod (text, NULL) == value)
            fail_msg ("%a: %d digits where %d do", value, digits, digits - 1);
    }
    //  A tree: the most any real needs; integers and strings need none
    json_t *tree = json_pack ("{s:[f,f],s:{s:f,s:i,s:s}}", "a", 138.7, 0.1 + 0.2, "b", "c", 93.01,
                              "d", 5, "e", "x");
    assert_int_equal (tf_json_real_precision (tree), 17);
    json_array_remove (json_object_get (tree, "a"), 1);
    assert_int_equal (tf_json_real_precision (tree), 15);
    char *text = json_dumps (tree, JSON_COMPACT | JSON_SORT_KEYS |
                                       JSON_REAL_PRECISION (tf_json_real_precision (tree)));
    assert_string_equal (text, "{\"a\":[138.7],\"b\":{\"c\":93.01,\"d\":5,\"e\":\"x\"}}");
    free (text);
    json_decref (tree);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_from_milestone), cmocka_unit_test (test_round_trip),
        cmocka_unit_test (test_lenient_input),  cmocka_unit_test (test_errors),
        cmocka_unit_test (test_output_values),  cmocka_unit_test (test_from_change),
        cmocka_unit_test (test_real_digits),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
