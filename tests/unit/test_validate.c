/*  Unit tests for proto/tf_validate.c: every field rule names its field. */
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
#include "tf_validate.h"

/*  Replaces a string of the record (NULL clears it). */
static void s_set (char **slot, const char *value)
{
    free (*slot);
    *slot = value ? strdup (value) : NULL;
}

/*  A string of `n` copies of `c`; caller frees. */
static char *s_repeat (char c, size_t n)
{
    char *s = malloc (n + 1);
    memset (s, c, n);
    s[n] = '\0';
    return s;
}

/*  Appends `n` copies of `value` to a repeated string field. */
static void s_append (size_t *count, char ***items, const char *value, size_t n)
{
    *items = realloc (*items, (*count + n) * sizeof **items);
    for (size_t i = 0; i < n; i++)
        (*items)[(*count)++] = strdup (value);
}

/*  Validates `m`, expects the given verdict, frees `m`. */
static void s_expect (Techfeed__Milestone *m, const char *field, const char *message)
{
    tf_verror_t err = { "", "" };
    int rc = tf_validate_milestone (m, &err);
    techfeed__milestone__free_unpacked (m, NULL);
    if (!field) {
        if (rc != 0)
            fail_msg ("expected valid, got %s: %s", err.field, err.message);
        return;
    }
    if (rc == 0)
        fail_msg ("expected %s: %s, got valid", field, message ? message : "...");
    assert_string_equal (err.field, field);
    if (message)
        assert_string_equal (err.message, message);
}

/*  Applies `change` to a fresh fixture `m_` and checks the verdict. */
#define EXPECT_AFTER(change, field, message)                                                       \
    do {                                                                                           \
        Techfeed__Milestone *m_ = tf_fixture_milestone ();                                         \
        change;                                                                                    \
        s_expect (m_, field, message);                                                             \
    } while (0)

/*  Sets one string of a fresh fixture and checks the verdict. */
#define EXPECT_STRING(member, value, field, message)                                               \
    EXPECT_AFTER (s_set (&m_->member, value), field, message)

static void test_good_records (void **state)
{
    s_expect (tf_fixture_milestone (), NULL, NULL);

    //  Only the required fields
    Techfeed__Milestone *m = malloc (sizeof *m);
    techfeed__milestone__init (m);
    m->id = strdup ("a");
    m->has_sector = 1;
    m->sector = TECHFEED__SECTOR__SECTOR_OTHER;
    m->title = strdup ("t");
    m->date = strdup ("2019");
    s_expect (m, NULL, NULL);

    //  Server-assigned fields are ignored
    m = tf_fixture_milestone ();
    m->has_revision = 0;
    m->has_updated_at_ms = 0;
    s_expect (m, NULL, NULL);

    tf_verror_t err;
    assert_int_equal (tf_validate_milestone (NULL, &err), -1);
    assert_string_equal (err.field, "");
}

static void test_id (void **state)
{
    EXPECT_STRING (id, NULL, "/id", "is required");
    EXPECT_STRING (id, "", "/id", "must be 1 to 128 bytes, got 0");
    EXPECT_STRING (id, "Change-4", "/id",
                   "must be a-z, 0-9, '.', '_' and '-', starting with a-z or 0-9");
    EXPECT_STRING (id, "-change", "/id", NULL);
    EXPECT_STRING (id, ".change", "/id", NULL);
    EXPECT_STRING (id, "change 4", "/id", NULL);
    EXPECT_STRING (id, "0.a_b-c", NULL, NULL);
    char *id = s_repeat ('a', TF_ID_MAX);
    EXPECT_STRING (id, id, NULL, NULL);
    assert_true (tf_valid_id (id));
    free (id);
    id = s_repeat ('a', TF_ID_MAX + 1);
    EXPECT_STRING (id, id, "/id", "must be 1 to 128 bytes, got 129");
    assert_false (tf_valid_id (id));
    free (id);
    assert_false (tf_valid_id (NULL));
    assert_false (tf_valid_id ("caf\xC3\xA9"));
}

static void test_sector_and_status (void **state)
{
    EXPECT_AFTER (m_->has_sector = 0, "/sector", "is required");
    EXPECT_AFTER (m_->sector = 0, "/sector", "must be 1 to 10, got 0");
    EXPECT_AFTER (m_->sector = 11, "/sector", "must be 1 to 10, got 11");
    EXPECT_AFTER (m_->sector = 10, NULL, NULL);

    EXPECT_AFTER ((m_->has_status = 0, m_->status = 99), NULL, NULL); // ignored without has_
    EXPECT_AFTER (m_->status = 0, "/status", "must be 1 to 5, got 0");
    EXPECT_AFTER (m_->status = 6, "/status", "must be 1 to 5, got 6");
}

static void test_title_and_summary (void **state)
{
    EXPECT_STRING (title, NULL, "/title", "is required");
    EXPECT_STRING (title, "", "/title", "must be 1 to 300 bytes, got 0");
    char *text = s_repeat ('x', TF_TITLE_MAX);
    EXPECT_STRING (title, text, NULL, NULL);
    free (text);
    text = s_repeat ('x', TF_TITLE_MAX + 1);
    EXPECT_STRING (title, text, "/title", "must be 1 to 300 bytes, got 301");
    free (text);
    EXPECT_STRING (title, "two\nlines", "/title", "contains control character U+000A at byte 3");
    EXPECT_STRING (title, "tab\there", "/title", "contains control character U+0009 at byte 3");
    EXPECT_STRING (title, "bell\a", "/title", "contains control character U+0007 at byte 4");
    EXPECT_STRING (title, "del\x7F", "/title", "contains control character U+007F at byte 3");
    EXPECT_STRING (title, "Chang'\xC0\x80", "/title", "is not valid UTF-8 at byte 6");
    EXPECT_STRING (title, "\xE5\xAB\xA6\xE5\xA8\xA5\xE5\x9B\x9B\xE5\x8F\xB7", NULL, NULL);

    EXPECT_STRING (summary, NULL, NULL, NULL);
    EXPECT_STRING (summary, "", NULL, NULL);
    EXPECT_STRING (summary, "line one\nline two\tindented", NULL, NULL);
    EXPECT_STRING (summary, "dos\r\nline", "/summary",
                   "contains control character U+000D at byte 3");
    EXPECT_STRING (summary, "ok\xED\xA0\x80", "/summary", "is not valid UTF-8 at byte 2");
    text = s_repeat ('x', TF_SUMMARY_MAX + 1);
    EXPECT_STRING (summary, text, "/summary", "must be at most 4000 bytes, got 4001");
    free (text);
}

static void test_organizations (void **state)
{
    Techfeed__Milestone *m = tf_fixture_milestone ();
    s_append (&m->n_organizations, &m->organizations, "CNSA", 1);
    s_expect (m, "/organizations/2", "duplicates /organizations/0");

    EXPECT_STRING (organizations[1], "", "/organizations/1", "must be 1 to 200 bytes, got 0");
    EXPECT_STRING (organizations[0], "CN\nSA", "/organizations/0",
                   "contains control character U+000A at byte 2");

    m = tf_fixture_milestone ();
    for (int i = 2; i < TF_LIST_MAX; i++) {
        char name[16];
        snprintf (name, sizeof name, "org %d", i);
        s_append (&m->n_organizations, &m->organizations, name, 1);
    }
    assert_int_equal (m->n_organizations, TF_LIST_MAX);
    s_expect (m, NULL, NULL);

    m = tf_fixture_milestone ();
    s_append (&m->n_organizations, &m->organizations, "x", TF_LIST_MAX - 1);
    s_expect (m, "/organizations", "must have at most 32 items, got 33");
}

static void test_country (void **state)
{
    EXPECT_STRING (country, NULL, NULL, NULL);
    EXPECT_STRING (country, "cn", "/country",
                   "must be two upper-case letters (ISO 3166-1 alpha-2)");
    EXPECT_STRING (country, "CHN", "/country", NULL);
    EXPECT_STRING (country, "", "/country", NULL);
    EXPECT_STRING (country, "C1", "/country", NULL);
    assert_true (tf_valid_country ("US"));
    assert_false (tf_valid_country ("U"));
    assert_false (tf_valid_country (NULL));
}

static void test_date (void **state)
{
    EXPECT_STRING (date, NULL, "/date", "is required");
    EXPECT_STRING (date, "19-01", "/date", "must be YYYY, YYYY-MM or YYYY-MM-DD");
    EXPECT_STRING (date, "2019-13", "/date", "2019-13 is not a calendar date");
    EXPECT_STRING (date, "2023-02-29", "/date", "2023-02-29 is not a calendar date");
    EXPECT_STRING (date, "2023-02-30", "/date", "2023-02-30 is not a calendar date");
    EXPECT_STRING (date, "0999", "/date", "year must be 1000 to 9999");
    EXPECT_STRING (date, "2024-02-29", NULL, NULL);

    const char *good[] = { "1000",       "9999",       "2019-01",    "2019-12-31",
                           "2000-02-29", "2024-02-29", "2019-04-30", "1970-01-01" };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (!tf_valid_date (good[i]))
            fail_msg ("%s should be valid", good[i]);
    const char *bad[] = { "",           "19",         "19-01",       "2019-1",     "2019-1-01",
                          "2019/01/01", "2019-01-1",  "2019-01-01T", "20x9",       "+019",
                          "2019-00",    "2019-13",    "2019-01-00",  "2019-01-32", "2019-04-31",
                          "2023-02-29", "1900-02-29", "2100-02-29",  "0000",       "0999-01-01",
                          " 2019",      "2019-02-2a" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (tf_valid_date (bad[i]))
            fail_msg ("%s should be invalid", bad[i]);
    assert_false (tf_valid_date (NULL));
}

static void test_metrics (void **state)
{
    EXPECT_STRING (metrics[0]->name, NULL, "/metrics/0/name", "is required");
    EXPECT_STRING (metrics[0]->name, "", "/metrics/0/name", "must be 1 to 200 bytes, got 0");
    EXPECT_STRING (metrics[0]->unit, "", NULL, NULL);

    EXPECT_AFTER (m_->metrics[0]->has_value = 0, "/metrics/0/value", "is required");
    EXPECT_AFTER (m_->metrics[0]->value = NAN, "/metrics/0/value", "must be a finite number");
    EXPECT_AFTER (m_->metrics[0]->value = -INFINITY, "/metrics/0/value", "must be a finite number");
    EXPECT_AFTER ((m_->metrics[0]->value = -1e300, s_set (&m_->metrics[0]->unit, NULL)), NULL,
                  NULL);

    char *unit = s_repeat ('m', TF_UNIT_MAX + 1);
    EXPECT_STRING (metrics[0]->unit, unit, "/metrics/0/unit", "must be at most 32 bytes, got 33");
    free (unit);

    Techfeed__Milestone *m = tf_fixture_milestone ();
    m->metrics = realloc (m->metrics, (TF_LIST_MAX + 1) * sizeof *m->metrics);
    for (int i = 1; i <= TF_LIST_MAX; i++) {
        m->metrics[i] = malloc (sizeof (Techfeed__Metric));
        techfeed__metric__init (m->metrics[i]);
        m->metrics[i]->name = strdup ("n");
        m->metrics[i]->has_value = 1;
        m->n_metrics++;
    }
    m->metrics[TF_LIST_MAX]->has_value = 0; // the count is checked first
    s_expect (m, "/metrics", "must have at most 32 items, got 33");
}

static void test_sources (void **state)
{
#define EXPECT_SOURCE(url, message)                                                                \
    EXPECT_STRING (sources[0], url, message ? "/sources/0" : NULL, message)
    EXPECT_SOURCE ("http://example.com", NULL);
    EXPECT_SOURCE ("HTTPS://EXAMPLE.COM:8443/a?b#c", NULL);
    EXPECT_SOURCE ("https://user@host/", NULL);
    EXPECT_SOURCE ("https://[::1]:80/", NULL);
    EXPECT_SOURCE ("https://zh.wikipedia.org/wiki/\xE5\xAB\xA6", NULL);
    EXPECT_SOURCE ("ftp://example.com/", "must be an http:// or https:// URL");
    EXPECT_SOURCE ("example.com", "must be an http:// or https:// URL");
    EXPECT_SOURCE ("https://", "has no host");
    EXPECT_SOURCE ("https:///path", "has no host");
    EXPECT_SOURCE ("https://:443/", "has no host");
    EXPECT_SOURCE ("https://user@/", "has no host");
    EXPECT_SOURCE ("http:///x", "has no host");
    EXPECT_SOURCE ("http://:80/", "has no host");
    EXPECT_SOURCE ("http://?q", "has no host");
    EXPECT_SOURCE ("http://[]/", "has no host");
    EXPECT_SOURCE ("http://[]", "has no host");
    EXPECT_SOURCE ("https://[]:443/x", "has no host");
    EXPECT_SOURCE ("https://user@[]/", "has no host");
    EXPECT_SOURCE ("http://[::1/", "has no host"); // unclosed
    EXPECT_SOURCE ("http://[v1.x]/", NULL);
    EXPECT_SOURCE ("http://[2001:db8::7]:8080/a", NULL);
    EXPECT_SOURCE ("http://[::ffff:192.0.2.1]/", NULL);
    EXPECT_SOURCE ("http://[fe80::1%25eth0]/", NULL);
    EXPECT_SOURCE ("http://[example.com]/", "has a host in brackets that is not an IPv6 address");
    EXPECT_SOURCE ("http://[192.0.2.1]/", "has a host in brackets that is not an IPv6 address");
    EXPECT_SOURCE ("http://[::1]x/", "has a host in brackets that is not an IPv6 address");
    EXPECT_SOURCE ("http://[fe80::1%eth0]/", "has a host in brackets that is not an IPv6 address");
    EXPECT_SOURCE ("http://[v.x]/", "has a host in brackets that is not an IPv6 address");
    EXPECT_SOURCE ("HTTP://example.com/", NULL);
    EXPECT_SOURCE ("hTtPs://example.com", NULL);
    EXPECT_SOURCE ("https://a b/", "contains a space at byte 9");
    EXPECT_SOURCE ("https://a/\x01", "contains control character U+0001 at byte 10");
    EXPECT_SOURCE ("https://a/\n", "contains control character U+000A at byte 10");
    EXPECT_SOURCE ("https://a/\xFF", "is not valid UTF-8 at byte 10");
    EXPECT_SOURCE ("", "must be 1 to 2048 bytes, got 0");

    char *url = malloc (TF_URL_MAX + 2);
    strcpy (url, "https://a/");
    memset (url + 10, 'x', TF_URL_MAX + 1 - 10);
    url[TF_URL_MAX + 1] = '\0';
    EXPECT_SOURCE (url, "must be 1 to 2048 bytes, got 2049");
    url[TF_URL_MAX] = '\0';
    EXPECT_SOURCE (url, NULL);
    free (url);

    Techfeed__Milestone *m = tf_fixture_milestone ();
    s_append (&m->n_sources, &m->sources, "https://b/", TF_LIST_MAX);
    s_expect (m, "/sources", "must have at most 32 items, got 33");
}

static void test_tags (void **state)
{
    const char *rule = "must be a-z, 0-9 and '-', not starting with '-'";
    const char *bad[] = { "Moon", "-moon", "far_side", "far side", "mo\xC3\xB6n" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        EXPECT_STRING (tags[1], bad[i], "/tags/1", rule);
    EXPECT_STRING (tags[1], "", "/tags/1", "must be 1 to 64 bytes, got 0");
    char *tag = s_repeat ('t', TF_TAG_MAX + 1);
    EXPECT_STRING (tags[0], tag, "/tags/0", "must be 1 to 64 bytes, got 65");
    tag[TF_TAG_MAX] = '\0';
    EXPECT_STRING (tags[0], tag, NULL, NULL);
    free (tag);
    EXPECT_STRING (tags[0], "5g-", NULL, NULL);
    EXPECT_STRING (tags[1], "moon", NULL, NULL); // §4 has no duplicate rule for tags

    Techfeed__Milestone *m = tf_fixture_milestone ();
    s_append (&m->n_tags, &m->tags, "x", TF_LIST_MAX - 1);
    s_expect (m, "/tags", "must have at most 32 items, got 33");
}

static void test_utf8 (void **state)
{
    const char *good[] = {
        "",
        "plain ASCII ~",
        "\xC2\xA0",                 // U+00A0, lowest non-control 2-byte
        "\xDF\xBF",                 // U+07FF
        "\xE0\xA0\x80",             // U+0800, lowest 3-byte
        "\xE2\x82\xAC",             // euro sign
        "\xED\x9F\xBF",             // U+D7FF, just below the surrogates
        "\xEE\x80\x80",             // U+E000, just above them
        "\xEF\xBF\xBD",             // U+FFFD
        "\xF0\x90\x80\x80",         // U+10000, lowest 4-byte
        "\xF0\x9F\x9A\x80",         // rocket
        "\xF4\x8F\xBF\xBF",         // U+10FFFF, the last code point
        "\xE4\xB8\xAD\xE5\x9B\xBD", // zhongguo
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (!tf_valid_text (good[i], false))
            fail_msg ("good[%zu] refused", i);

    const char *bad[] = {
        "\xC0\x80",                 // overlong NUL
        "\xC1\xBF",                 // overlong U+007F
        "\xE0\x80\xAF",             // overlong '/'
        "\xE0\x9F\xBF",             // overlong U+07FF
        "\xF0\x80\x80\xAF",         // overlong '/'
        "\xF0\x8F\xBF\xBF",         // overlong U+FFFF
        "\xED\xA0\x80",             // U+D800, high surrogate
        "\xED\xBF\xBF",             // U+DFFF, low surrogate
        "\xED\xA0\xBD\xED\xB8\x80", // CESU-8 surrogate pair
        "\xF4\x90\x80\x80",         // U+110000
        "\xF5\x80\x80\x80",         // lead byte beyond F4
        "\xF8\x88\x80\x80\x80",     // 5-byte form
        "\xFF",
        "\xFE",
        "\x80",         // stray continuation
        "a\xBF",        // stray continuation after ASCII
        "\xC3",         // truncated 2-byte
        "\xE2\x82",     // truncated 3-byte
        "\xF0\x9F\x9A", // truncated 4-byte
        "\xE2\x82x",    // continuation replaced by ASCII
        "\xC3\xC3\xA9", // lead byte where a continuation belongs
        "\x01",
        "\x1B[31m", // escape sequence
        "\x7F",     // DEL
        "\xC2\x80", // U+0080, C1 control
        "\xC2\x9F", // U+009F, C1 control
        "\r",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (tf_valid_text (bad[i], false))
            fail_msg ("bad[%zu] accepted (single line)", i);
        if (tf_valid_text (bad[i], true))
            fail_msg ("bad[%zu] accepted (multiline)", i);
    }
    assert_false (tf_valid_text ("a\tb", false));
    assert_true (tf_valid_text ("a\tb", true));
    assert_false (tf_valid_text ("a\nb", false));
    assert_true (tf_valid_text ("a\nb", true));
    assert_false (tf_valid_text (NULL, true));

    //  The offset names the first byte of the bad sequence
    EXPECT_STRING (title, "ab\xE2\x82", "/title", "is not valid UTF-8 at byte 2");
    EXPECT_STRING (title, "\xE2\x82\xAC\xED\xA0\x80", "/title", "is not valid UTF-8 at byte 3");
    EXPECT_STRING (title, "abcd\xF4\x90\x80\x80", "/title", "is not valid UTF-8 at byte 4");
    EXPECT_STRING (title, "x\xC2\x85y", "/title", "contains control character U+0085 at byte 1");
}

static void test_request_id (void **state)
{
    assert_true (tf_valid_request_id ("6b1f0c5e-1c1e-4a51-9d0a-2f7b4e1c9a11"));
    assert_true (tf_valid_request_id ("!"));
    assert_true (tf_valid_request_id ("~{}"));
    char *id = s_repeat ('r', TF_REQUEST_ID_MAX);
    assert_true (tf_valid_request_id (id));
    free (id);
    id = s_repeat ('r', TF_REQUEST_ID_MAX + 1);
    assert_false (tf_valid_request_id (id));
    free (id);
    assert_false (tf_valid_request_id (""));
    assert_false (tf_valid_request_id (NULL));
    assert_false (tf_valid_request_id ("a b"));
    assert_false (tf_valid_request_id ("a\x7F"));
    assert_false (tf_valid_request_id ("tab\t"));
    assert_false (tf_valid_request_id ("caf\xC3\xA9"));
}

static void test_verror_set (void **state)
{
    tf_verror_t err;
    assert_int_equal (tf_verror_set (&err, "/a", "got %d", 5), -1);
    assert_string_equal (err.field, "/a");
    assert_string_equal (err.message, "got 5");
    assert_int_equal (tf_verror_set (NULL, "/a", "x"), -1);

    //  Cut where it does not fit, never inside a character
    char field[200] = "/";
    for (int i = 0; i < 60; i++)
        strcat (field, "\xC3\xA9"); // 2 bytes each
    char value[600] = "";
    for (int i = 0; i < 150; i++)
        strcat (value, "\xE2\x82\xAC"); // 3 bytes each
    tf_verror_set (&err, field, "unknown \"%s\"", value);
    assert_true (strlen (err.field) <= sizeof err.field - 1);
    assert_true (strlen (err.field) >= sizeof err.field - 2);
    assert_true (tf_valid_text (err.field, false));
    assert_true (strlen (err.message) >= sizeof err.message - 3);
    assert_true (tf_valid_text (err.message, false));
}

static void test_filter_and_epoch (void **state)
{
    tf_verror_t err;
    assert_int_equal (tf_validate_filter (NULL, &err), 0);
    Techfeed__Filter filter = TECHFEED__FILTER__INIT;
    Techfeed__Sector sectors[] = { TECHFEED__SECTOR__SECTOR_SPACE, (Techfeed__Sector) 42 };
    filter.sectors = sectors;
    filter.n_sectors = 1;
    filter.country = (char *) "CN";
    filter.date_from = (char *) "2019";
    filter.date_to = (char *) "2021-06";
    filter.organization = (char *) "China National Space Administration";
    assert_int_equal (tf_validate_filter (&filter, &err), 0);
    filter.n_sectors = 2;
    assert_int_equal (tf_validate_filter (&filter, &err), -1);
    assert_string_equal (err.field, "/filter/sectors/1");
    filter.n_sectors = 1;
    filter.country = (char *) "cn";
    assert_int_equal (tf_validate_filter (&filter, &err), -1);
    assert_string_equal (err.field, "/filter/country");
    filter.country = NULL;
    filter.date_to = (char *) "2021-13";
    assert_int_equal (tf_validate_filter (&filter, &err), -1);
    assert_string_equal (err.field, "/filter/date_to");
    filter.date_to = NULL;
    filter.organization = (char *) "bad\x01name";
    assert_int_equal (tf_validate_filter (&filter, &err), -1);
    assert_string_equal (err.field, "/filter/organization");

    assert_true (tf_valid_epoch ("0123456789abcdef0123456789abcdef"));
    assert_false (tf_valid_epoch ("0123456789ABCDEF0123456789abcdef"));
    assert_false (tf_valid_epoch ("0123456789abcdef"));
    assert_false (tf_valid_epoch ("\xff\xfe not an epoch"));
    assert_false (tf_valid_epoch (NULL));
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_good_records),
        cmocka_unit_test (test_id),
        cmocka_unit_test (test_sector_and_status),
        cmocka_unit_test (test_title_and_summary),
        cmocka_unit_test (test_organizations),
        cmocka_unit_test (test_country),
        cmocka_unit_test (test_date),
        cmocka_unit_test (test_metrics),
        cmocka_unit_test (test_sources),
        cmocka_unit_test (test_tags),
        cmocka_unit_test (test_utf8),
        cmocka_unit_test (test_request_id),
        cmocka_unit_test (test_verror_set),
        cmocka_unit_test (test_filter_and_epoch),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
