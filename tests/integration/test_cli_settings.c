/*  The CLI's settings and `techfeed health` (issue 5 items 1 and 4): flag
    over TECHFEED_* variable over default, shown by --print-config; a bad
    value exits 78 naming the flag and the variable, from either source,
    while the command line's own mistakes stay 64; health exits 0 while
    the service answers and 69, with one line saying why (no answer within
    its timeout) once it is gone, after one try (a sync endpoint that never
    answers gets exactly one request); its help shows the line it prints.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tf_fake.h"
#include "tf_testkit.h"

static char *s_out, *s_err; /* output of the last s_cli */

static void s_forget_output (void)
{
    free (s_out);
    free (s_err);
    s_out = s_err = NULL;
}

/*  techfeed ARGS... (NULL-terminated) with `svc`'s endpoints when not NULL;
    its output in s_out and s_err. Exit status. */
#define s_cli(svc, ...) (s_forget_output (), tf_test_cli ((svc), NULL, &s_out, &s_err, __VA_ARGS__))

static const char *const s_variables[] = {
    "TECHFEED_SERVER",    "TECHFEED_INGEST", "TECHFEED_EVENTS",  "TECHFEED_SYNC",
    "TECHFEED_TIMEOUT",   "TECHFEED_JSON",   "TECHFEED_SECTOR",  "TECHFEED_SERVER_KEY",
    "TECHFEED_KEY",       "TECHFEED_QUIET",  "TECHFEED_KEY_DIR", "TECHFEED_MIRROR_DB",
    "TECHFEED_MAX_FRAME",
};

static int setup (void **state)
{
    for (size_t i = 0; i < sizeof s_variables / sizeof s_variables[0]; i++)
        unsetenv (s_variables[i]);
    return 0;
}

static int teardown (void **state)
{
    free (s_out);
    free (s_err);
    s_out = s_err = NULL;
    return setup (state);
}

static void s_assert_has (const char *text, const char *part)
{
    if (!strstr (text, part))
        fail_msg ("'%s' not in:\n%s", part, text);
}

static void test_precedence (void **state)
{
    assert_int_equal (s_cli (NULL, "--print-config", NULL), 0);
    s_assert_has (s_out, "timeout=3000\n");
    s_assert_has (s_out, "ingest=tcp://127.0.0.1:5560\n");
    s_assert_has (s_out, "dir=.\n");
    setenv ("TECHFEED_TIMEOUT", "700", 1);
    setenv ("TECHFEED_SERVER", "db1", 1);
    setenv ("TECHFEED_SYNC", "tcp://10.0.0.9:7000", 1);
    setenv ("TECHFEED_SECTOR", "space,rail", 1);
    setenv ("TECHFEED_MIRROR_DB", "/var/lib/m.db", 1);
    assert_int_equal (s_cli (NULL, "--print-config", NULL), 0);
    s_assert_has (s_out, "timeout=700\n");
    s_assert_has (s_out, "ingest=tcp://db1:5560\n");    // from TECHFEED_SERVER
    s_assert_has (s_out, "sync=tcp://10.0.0.9:7000\n"); // its own variable wins
    s_assert_has (s_out, "sector=space,rail\n");
    s_assert_has (s_out, "db=/var/lib/m.db\n");
    //  Flags win: over their variables, and --server over endpoint variables
    assert_int_equal (s_cli (NULL, "--timeout", "300", "--server", "db2", "--sector", "ai",
                             "--print-config", NULL),
                      0);
    s_assert_has (s_out, "timeout=300\n");
    s_assert_has (s_out, "sync=tcp://db2:5562\n");
    s_assert_has (s_out, "sector=ai\n");
}

static void test_bad_values_exit_78 (void **state)
{
    assert_int_equal (s_cli (NULL, "--timeout", "abc", "status", NULL), 78);
    s_assert_has (s_err, "--timeout (TECHFEED_TIMEOUT) from flag: 'abc'");
    setenv ("TECHFEED_TIMEOUT", "-5", 1);
    assert_int_equal (s_cli (NULL, "status", NULL), 78);
    s_assert_has (s_err, "--timeout (TECHFEED_TIMEOUT) from environment: '-5'");
    //  Help needs no settings: shown whatever the environment holds
    assert_int_equal (s_cli (NULL, "--help", NULL), 0);
    s_assert_has (s_out, "SETTINGS");
    assert_int_equal (s_cli (NULL, "help", "put", NULL), 0);
    s_assert_has (s_out, "techfeed put [OPTIONS] [FILE|-]");
    assert_int_equal (s_cli (NULL, "status", "--help", NULL), 0);
    unsetenv ("TECHFEED_TIMEOUT");
    setenv ("TECHFEED_MAX_FRAME", "1000", 1);
    assert_int_equal (s_cli (NULL, "put", NULL), 78);
    s_assert_has (s_err, "--max-frame (TECHFEED_MAX_FRAME) from environment: '1000' is not a "
                         "number of bytes (1024 to 268435456)");
    unsetenv ("TECHFEED_MAX_FRAME");
    setenv ("TECHFEED_JSON", "maybe", 1);
    assert_int_equal (s_cli (NULL, "--print-config", NULL), 78);
    s_assert_has (s_err, "--json (TECHFEED_JSON) from environment: 'maybe'");
    unsetenv ("TECHFEED_JSON");
    setenv ("TECHFEED_SECTOR", "space,moon", 1);
    assert_int_equal (s_cli (NULL, "list", NULL), 78);
    s_assert_has (s_err, "--sector (TECHFEED_SECTOR) from environment: 'moon' is not a sector");
    unsetenv ("TECHFEED_SECTOR");
    assert_int_equal (s_cli (NULL, "--server", "tcp://db1:5560", "status", NULL), 78);
    s_assert_has (s_err, "--server (TECHFEED_SERVER)");
    assert_int_equal (s_cli (NULL, "--key", "writer.key_secret", "put", NULL), 78);
    s_assert_has (s_err, "needs --server-key (TECHFEED_SERVER_KEY)");
    assert_int_equal (s_cli (NULL, "--sync", "nonsense", "status", NULL), 78);
    s_assert_has (s_err, "--sync (TECHFEED_SYNC): 'nonsense' is not a valid endpoint");
    //  The command line's own mistakes stay usage errors
    assert_int_equal (s_cli (NULL, "bogus", NULL), 64);
    assert_int_equal (s_cli (NULL, "watch", "--count", "x", NULL), 64);
    assert_int_equal (s_cli (NULL, "mirror", NULL), 64);
    s_assert_has (s_err, "--db FILE (or TECHFEED_MIRROR_DB) is needed");
    assert_int_equal (s_cli (NULL, "keygen", NULL), 64);
}

static long long s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*  True when `text` holds a line of health's terminal form, the one
    cli_health prints: `healthy: ENDPOINT, head N, N records`. */
static bool s_health_line (const char *text)
{
    regex_t line;
    assert_int_equal (regcomp (&line, "^ *healthy: tcp://[^ ,]+, head [0-9]+, [0-9]+ records$",
                               REG_EXTENDED | REG_NOSUB | REG_NEWLINE),
                      0);
    bool found = regexec (&line, text, 0, NULL, 0) == 0;
    regfree (&line);
    return found;
}

static void test_health (void **state)
{
    tf_service_t svc = { 0 };
    assert_int_equal (tf_service_start (&svc, NULL), 0);
    assert_int_equal (s_cli (&svc, "health", NULL), 0);
    s_assert_has (s_out, "\"healthy\":true");
    assert_string_equal (s_err, "");
    //  The help shows the line a terminal gets: that form of these values
    json_t *answer = json_loads (s_out, 0, NULL);
    assert_non_null (answer);
    char printed[400];
    snprintf (printed, sizeof printed,
              "healthy: %s, head %" JSON_INTEGER_FORMAT ", %" JSON_INTEGER_FORMAT " records",
              json_string_value (json_object_get (answer, "sync")),
              json_integer_value (json_object_get (answer, "head_sequence")),
              json_integer_value (json_object_get (answer, "record_count")));
    json_decref (answer);
    assert_true (s_health_line (printed));
    assert_int_equal (s_cli (NULL, "help", "health", NULL), 0);
    if (!s_health_line (s_out))
        fail_msg ("techfeed help health shows no line like '%s':\n%s", printed, s_out);
    assert_int_equal (tf_service_stop (&svc, 10000), 0);
    long long started = s_now_ms ();
    assert_int_equal (s_cli (&svc, "--timeout", "1000", "health", NULL), 69);
    long long took = s_now_ms () - started;
    print_message ("health of a stopped service: exit 69 after %lld ms: %s", took, s_err);
    char said[300];
    snprintf (said, sizeof said, "unhealthy: no answer from %s within 1000 ms\n", svc.sync);
    s_assert_has (s_err, said);
    assert_int_equal (tf_test_count_lines (s_err), 1);
    assert_true (took < 15000); // a hang guard: one try takes 1 s

    //  One try: a sync endpoint that takes requests and never answers
    tf_service_t silent = svc;
    zsock_t *router = tf_fake_router (silent.sync, sizeof silent.sync);
    assert_int_equal (s_cli (&silent, "--timeout", "1000", "health", NULL), 69);
    snprintf (said, sizeof said, "unhealthy: no answer from %s within 1000 ms\n", silent.sync);
    s_assert_has (s_err, said);
    //  Every request it sent has arrived by now (it waited 1 s after each)
    int requests = 0;
    zsock_set_rcvtimeo (router, 200);
    zmsg_t *request;
    while ((request = zmsg_recv (router)) != NULL) {
        requests++;
        zmsg_destroy (&request);
    }
    zsock_destroy (&router);
    print_message ("health of a service that never answers: %d request(s)\n", requests);
    assert_int_equal (requests, 1);
    tf_service_cleanup (&svc);
}

/*  IPv6 loopback, which the service counts as loopback: it binds
    tcp://[::1]:PORT, and the CLI writes, reads and watches through it. */
static void test_ipv6_loopback (void **state)
{
    tf_service_t svc = { 0 };
    const char *v6 = "tcp://[::1]:![61000-65535]";
    snprintf (svc.ingest, sizeof svc.ingest, "%s", v6);
    snprintf (svc.events, sizeof svc.events, "%s", v6);
    snprintf (svc.sync, sizeof svc.sync, "%s", v6);
    assert_int_equal (tf_service_start (&svc, NULL), 0);
    s_assert_has (svc.sync, "tcp://[::1]:");
    const char *record = "{\"id\":\"v6-rail\",\"sector\":\"rail\",\"title\":\"Over [::1]\","
                         "\"date\":\"2026-11-29\"}\n";
    s_forget_output ();
    assert_int_equal (tf_test_cli (&svc, record, &s_out, &s_err, "put", "-", NULL), 0);
    assert_int_equal (s_cli (&svc, "status", NULL), 0);
    s_assert_has (s_out, "\"record_count\":1");
    assert_int_equal (s_cli (&svc, "list", "--sector", "rail", NULL), 0);
    s_assert_has (s_out, "\"v6-rail\"");
    assert_int_equal (tf_service_stop (&svc, 10000), 0);
    tf_service_cleanup (&svc);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown (test_bad_values_exit_78, setup, teardown),
        cmocka_unit_test_setup_teardown (test_health, setup, teardown),
        cmocka_unit_test_setup_teardown (test_ipv6_loopback, setup, teardown),
    };
    return cmocka_run_group_tests_name ("techfeed settings and health", tests, NULL, NULL);
}
