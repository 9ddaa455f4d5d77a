/*  techfeed-ingestd settings: flag over environment over default, a bad
    value exits 78 naming the setting (before any file is created), --print-config masks secrets, and
    --help starts with examples. Runs the real binary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tf_testkit.h"

/*  Runs techfeed-ingestd with `args` after the program name. */
static int s_ingestd (const char *const *args, char **out, char **err)
{
    const char *argv[16] = { tf_test_program ("techfeed-ingestd") };
    size_t argc = 1;
    for (; args[argc - 1] && argc < 15; argc++)
        argv[argc] = args[argc - 1];
    argv[argc] = NULL;
    return tf_test_run (NULL, argv, NULL, out, err, 20000);
}

static void test_precedence (void **state)
{
    char *out, *err;
    unsetenv ("TECHFEED_HEARTBEAT_MS");
    const char *defaults[] = { "--print-config", NULL };
    assert_int_equal (s_ingestd (defaults, &out, &err), 0);
    assert_non_null (strstr (out, "heartbeat-ms=1000\n"));
    free (out);
    free (err);

    setenv ("TECHFEED_HEARTBEAT_MS", "700", 1);
    assert_int_equal (s_ingestd (defaults, &out, &err), 0);
    assert_non_null (strstr (out, "heartbeat-ms=700\n"));
    free (out);
    free (err);

    const char *flagged[] = { "--heartbeat-ms", "300", "--print-config", NULL };
    assert_int_equal (s_ingestd (flagged, &out, &err), 0);
    assert_non_null (strstr (out, "heartbeat-ms=300\n"));
    free (out);
    free (err);
    unsetenv ("TECHFEED_HEARTBEAT_MS");
}

static void test_bad_values_exit_78 (void **state)
{
    char *out, *err;
    const char *not_number[] = { "--max-ops", "many", "--print-config", NULL };
    assert_int_equal (s_ingestd (not_number, &out, &err), 78);
    assert_non_null (strstr (err, "--max-ops (TECHFEED_MAX_OPS)"));
    assert_non_null (strstr (err, "'many' is not an integer"));
    free (out);
    free (err);

    setenv ("TECHFEED_HEARTBEAT_MS", "5", 1);
    const char *none[] = { "--print-config", NULL };
    assert_int_equal (s_ingestd (none, &out, &err), 78);
    assert_non_null (strstr (err, "--heartbeat-ms (TECHFEED_HEARTBEAT_MS) from environment"));
    assert_non_null (strstr (err, "out of range"));
    unsetenv ("TECHFEED_HEARTBEAT_MS");
    free (out);
    free (err);

    const char *bad_level[] = { "--log-level", "loud", "--print-config", NULL };
    assert_int_equal (s_ingestd (bad_level, &out, &err), 78);
    assert_non_null (strstr (err, "--log-level (TECHFEED_LOG_LEVEL)"));
    free (out);
    free (err);

    const char *unknown[] = { "--no-such-setting", NULL };
    assert_int_equal (s_ingestd (unknown, &out, &err), 78);
    assert_non_null (strstr (err, "--no-such-setting"));
    free (out);
    free (err);
}

/*  Refused as a bad setting (78, naming it) before the service creates
    its data directory or database. */
static void s_refused_before_files (const char *flag, const char *value, const char *named,
                                    const char *why)
{
    char *dir = tf_test_tempdir ();
    char data[600];
    snprintf (data, sizeof data, "%s/data", dir);
    const char *args[] = { "--data-dir", data, flag, value, NULL };
    char *out, *err;
    assert_int_equal (s_ingestd (args, &out, &err), 78);
    assert_non_null (strstr (err, named));
    assert_non_null (strstr (err, why));
    assert_int_equal (tf_test_file_size (data), -1);
    free (out);
    free (err);
    tf_test_rmtree (dir);
    free (dir);
}

static void test_server_settings_exit_78 (void **state)
{
    s_refused_before_files ("--http-addr", "nonsense", "--http-addr (TECHFEED_HTTP_ADDR)",
                            "'nonsense' is not HOST:PORT");
    //  libzmq would bind these to some other port, silently
    s_refused_before_files ("--sync", "tcp://127.0.0.1:99999", "--sync (TECHFEED_SYNC)",
                            "'tcp://127.0.0.1:99999' is not an endpoint to bind");
    s_refused_before_files ("--events", "tcp://127.0.0.1:*,tcp://127.0.0.1:5864x",
                            "--events (TECHFEED_EVENTS)", "'tcp://127.0.0.1:5864x'");
    s_refused_before_files ("--ingest", "udp://127.0.0.1:5560", "--ingest (TECHFEED_INGEST)",
                            "is not an endpoint to bind");
    s_refused_before_files ("--ingest", "tcp://127.0.0.1:5999,tcp://0.0.0.0:5999",
                            "--ingest (TECHFEED_INGEST): tcp://0.0.0.0:5999",
                            "refusing to listen beyond loopback");
    s_refused_before_files ("--curve-secret", "/nonexistent/server.key_secret",
                            "--curve-secret (TECHFEED_CURVE_SECRET)",
                            "not a readable CZMQ certificate");
    //  Key directories without CURVE would admit every client: refused
    s_refused_before_files ("--writers", "/tmp", "--writers (TECHFEED_WRITERS)", "CURVE is off");
    s_refused_before_files ("--readers", "/tmp", "--readers (TECHFEED_READERS)", "CURVE is off");
}

static void test_print_config_masks_secrets (void **state)
{
    char *out, *err;
    setenv ("TECHFEED_CURVE_SECRET", "/etc/techfeed/server_secret.cert", 1);
    const char *args[] = { "--print-config", NULL };
    assert_int_equal (s_ingestd (args, &out, &err), 0);
    assert_non_null (strstr (out, "curve-secret=********\n"));
    assert_null (strstr (out, "server_secret"));
    unsetenv ("TECHFEED_CURVE_SECRET");
    free (out);
    free (err);
}

static void test_help_starts_with_examples (void **state)
{
    char *out, *err;
    const char *args[] = { "--help", NULL };
    assert_int_equal (s_ingestd (args, &out, &err), 0);
    char *examples = strstr (out, "Examples:");
    char *usage = strstr (out, "Usage:");
    assert_non_null (examples);
    assert_non_null (usage);
    assert_true (examples < usage);
    assert_non_null (strstr (out, "TECHFEED_DATA_DIR"));
    free (out);
    free (err);
    //  Whatever the environment holds: the help needs no setting
    setenv ("TECHFEED_HEARTBEAT_MS", "abc", 1);
    assert_int_equal (s_ingestd (args, &out, &err), 0);
    assert_non_null (strstr (out, "Usage:"));
    free (out);
    free (err);
    //  The bad variable is still said when it would be used, and a bad
    //  flag still too
    const char *print[] = { "--print-config", NULL };
    assert_int_equal (s_ingestd (print, &out, &err), 78);
    assert_non_null (
        strstr (err, "--heartbeat-ms (TECHFEED_HEARTBEAT_MS) from environment: 'abc'"));
    free (out);
    free (err);
    unsetenv ("TECHFEED_HEARTBEAT_MS");
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_precedence),
        cmocka_unit_test (test_bad_values_exit_78),
        cmocka_unit_test (test_server_settings_exit_78),
        cmocka_unit_test (test_print_config_masks_secrets),
        cmocka_unit_test (test_help_starts_with_examples),
    };
    return cmocka_run_group_tests_name ("ingestd settings", tests, NULL, NULL);
}
