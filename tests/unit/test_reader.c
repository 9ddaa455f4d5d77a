/*  Unit tests for clients/lib/tf_reader.c: which line each record of an
    import file starts on, in the three forms (object, array, NDJSON), and
    where syntax errors are reported. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tf_reader.h"

/*  Reads all of `text`; writes "L:id" for values (id member or "-") and
    "E:L" for errors, space-separated, into out. */
static void s_read_all (const char *text, char *out, size_t outlen)
{
    tf_reader_t *reader = tf_reader_new (text, strlen (text));
    out[0] = 0;
    json_t *value;
    size_t line;
    char err[200];
    int rc;
    int guard = 0;
    while ((rc = tf_reader_next (reader, &value, &line, err, sizeof err)) != 0) {
        assert_true (++guard < 100);
        char item[64];
        if (rc < 0)
            snprintf (item, sizeof item, "%sE:%zu", *out ? " " : "", line);
        else {
            const char *id = json_string_value (json_object_get (value, "id"));
            snprintf (item, sizeof item, "%s%zu:%s", *out ? " " : "", line, id ? id : "-");
            json_decref (value);
        }
        strncat (out, item, outlen - strlen (out) - 1);
    }
    tf_reader_destroy (&reader);
    assert_null (reader);
}

static void s_check (const char *text, const char *expected)
{
    char out[512];
    s_read_all (text, out, sizeof out);
    assert_string_equal (out, expected);
}

static void test_ndjson_lines (void **state)
{
    s_check ("{\"id\":\"a\"}\n{\"id\":\"b\"}\n\n{\"id\":\"c\"}\n", "1:a 2:b 4:c");
    s_check ("{\"id\":\"a\"}\r\n{\"id\":\"b\"}", "1:a 2:b"); // CRLF, no final newline
    s_check ("", "");
    s_check ("\n\n  \n", "");
}

static void test_ndjson_errors_resume (void **state)
{
    //  A bad line is reported on its line; reading goes on with the next
    s_check ("{\"id\":\"a\"}\n{\"id\": tru}\n{\"id\":\"c\"}\n", "1:a E:2 3:c");
    s_check ("{\"id\":\"a\"}\n{\"id\":\"x\",\"id\":\"y\"}\n{\"id\":\"c\"}\n", "1:a E:2 3:c");
    s_check ("{\"id\":\"a\"} garbage\n{\"id\":\"b\"}\n", "1:a E:1 2:b");
    //  Cut short by the end of the file: reported where the record starts
    s_check ("{\"id\":\"a\"}\n{\"id\":\n", "1:a E:2");
    s_check ("{\"id\":\"a\"}\n\n{\n  \"id\": \"b\",\n", "1:a E:3");
    //  Values that are not objects are handed out; the caller refuses them
    s_check ("{\"id\":\"a\"}\n42\n", "1:a 2:-");
}

static void test_cut_short_says_so (void **state)
{
    const char *text = "{\"id\":\"a\"}\n{\"id\": \"b\",\n";
    tf_reader_t *reader = tf_reader_new (text, strlen (text));
    json_t *value;
    size_t line;
    char err[200];
    assert_int_equal (tf_reader_next (reader, &value, &line, err, sizeof err), 1);
    json_decref (value);
    assert_int_equal (tf_reader_next (reader, &value, &line, err, sizeof err), -1);
    assert_int_equal (line, 2);
    assert_non_null (strstr (err, "cut short by the end of the file"));
    assert_int_equal (tf_reader_next (reader, &value, &line, err, sizeof err), 0);
    tf_reader_destroy (&reader);
}

static void test_pretty_stream (void **state)
{
    //  Objects spread over lines, one after another: each starts where it starts
    s_check ("{\n  \"id\": \"a\"\n}\n{\n  \"id\": \"b\"\n}\n", "1:a 4:b");
}

static void test_single_object (void **state)
{
    s_check ("\n\n{\n \"id\": \"only\",\n \"title\": \"x\"\n}\n", "3:only");
    s_check ("\xEF\xBB\xBF{\"id\":\"bom\"}", "1:bom");
}

static void test_array (void **state)
{
    s_check ("[\n  {\"id\":\"a\"},\n  {\"id\":\"b\"},\n\n  {\"id\":\"c\"}\n]\n", "2:a 3:b 5:c");
    s_check ("[{\"id\":\"a\"},{\"id\":\"b\"}]", "1:a 1:b");
    s_check ("[]", "");
    s_check ("  [ ]  \n", "");
}

static void test_array_errors_stop (void **state)
{
    s_check ("[\n {\"id\":\"a\"},\n {\"id\": nope},\n {\"id\":\"c\"}\n]", "2:a E:3");
    s_check ("[\n {\"id\":\"a\"}\n {\"id\":\"b\"}\n]", "2:a E:3"); // missing comma
    s_check ("[\n {\"id\":\"a\"},\n", "2:a E:3");                  // never closed
    s_check ("[{\"id\":\"a\"}] extra", "1:a E:1");
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_ndjson_lines),      cmocka_unit_test (test_ndjson_errors_resume),
        cmocka_unit_test (test_cut_short_says_so), cmocka_unit_test (test_pretty_stream),
        cmocka_unit_test (test_single_object),     cmocka_unit_test (test_array),
        cmocka_unit_test (test_array_errors_stop),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
