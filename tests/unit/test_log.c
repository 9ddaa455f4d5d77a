/*  Unit tests for services/common/tf_log.c: one event is one line in each
    format, whatever the message quotes (a client's id with a newline, a
    terminal escape, bytes that are not UTF-8). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "tf_log.h"

/*  What tf_log writes to stderr for one call, read back from a file. */
static char *s_logged (tf_log_format_t format, const char *message)
{
    FILE *capture = tmpfile ();
    assert_non_null (capture);
    fflush (stderr);
    int saved = dup (STDERR_FILENO);
    assert_true (saved >= 0);
    assert_true (dup2 (fileno (capture), STDERR_FILENO) >= 0);
    tf_log_set_format (format);
    tf_info ("refused: %s", message);
    fflush (stderr);
    dup2 (saved, STDERR_FILENO);
    close (saved);
    long size = ftell (capture);
    assert_true (size > 0);
    char *text = (char *) calloc (1, (size_t) size + 1);
    rewind (capture);
    assert_int_equal (fread (text, 1, (size_t) size, capture), (size_t) size);
    fclose (capture);
    return text;
}

/*  Lines in `text`: newlines, each line ending with one. */
static size_t s_lines (const char *text)
{
    size_t lines = 0;
    for (const char *c = text; *c; c++)
        lines += *c == '\n';
    assert_int_equal (text[strlen (text) - 1], '\n');
    return lines;
}

/*  The "msg" of a JSON line, decoded. */
static char *s_json_msg (const char *line)
{
    json_error_t error;
    json_t *object = json_loads (line, 0, &error);
    if (!object)
        fail_msg ("not JSON: %s (%s)", line, error.text);
    const char *msg = json_string_value (json_object_get (object, "msg"));
    assert_non_null (msg);
    char *copy = strdup (msg);
    json_decref (object);
    return copy;
}

static void test_text_escapes_controls (void **state)
{
    char *line =
        s_logged (TF_LOG_TEXT, "id 'a\n2026-01-01T00:00:00.000Z error forged' \x1b[2J\ttab");
    assert_int_equal (s_lines (line), 1);
    assert_non_null (
        strstr (line, "id 'a\\n2026-01-01T00:00:00.000Z error forged' \\u001b[2J\\ttab"));
    assert_null (strchr (line, '\x1b'));
    free (line);
    //  What is printable, UTF-8 included, stays as it was
    line = s_logged (TF_LOG_TEXT, "Chang'e-4 \"far side\" \\ 嫦娥四号");
    assert_non_null (strstr (line, "info  refused: Chang'e-4 \"far side\" \\ 嫦娥四号\n"));
    free (line);
}

static void test_logfmt_quotes_and_escapes (void **state)
{
    char *line = s_logged (TF_LOG_LOGFMT, "say \"hi\" \\ a\rb\nc\x7f");
    assert_int_equal (s_lines (line), 1);
    assert_non_null (
        strstr (line, " level=info msg=\"refused: say \\\"hi\\\" \\\\ a\\rb\\nc\\u007f\"\n"));
    free (line);
}

static void test_json_keeps_the_message (void **state)
{
    //  Control characters: JSON's own escapes, the message decodes whole
    char *line = s_logged (TF_LOG_JSON, "a\nb\x1b");
    assert_int_equal (s_lines (line), 1);
    char *msg = s_json_msg (line);
    assert_string_equal (msg, "refused: a\nb\x1b");
    free (msg);
    free (line);
    //  Not UTF-8: the bytes as \xNN, not the whole message lost
    line = s_logged (TF_LOG_JSON, "id \xff\xfe-\xc3");
    assert_int_equal (s_lines (line), 1);
    msg = s_json_msg (line);
    assert_string_equal (msg, "refused: id \\xff\\xfe-\\xc3");
    free (msg);
    free (line);
}

static void test_long_message_stays_one_line (void **state)
{
    //  Every byte escaped six times over, and the message at its bound
    char message[3000];
    memset (message, '\x01', sizeof message - 1);
    message[sizeof message - 1] = 0;
    for (int format = TF_LOG_TEXT; format <= TF_LOG_JSON; format++) {
        char *line = s_logged ((tf_log_format_t) format, message);
        assert_int_equal (s_lines (line), 1);
        assert_non_null (strstr (line, "\\u0001\\u0001"));
        free (line);
    }
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_text_escapes_controls),
        cmocka_unit_test (test_logfmt_quotes_and_escapes),
        cmocka_unit_test (test_json_keeps_the_message),
        cmocka_unit_test (test_long_message_stays_one_line),
    };
    return cmocka_run_group_tests_name ("log", tests, NULL, NULL);
}
