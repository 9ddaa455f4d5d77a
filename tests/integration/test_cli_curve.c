/*  The CLI against a service that runs with CURVE (issue 4 item 1), keys
    made by `techfeed keygen`: the secret file is 0600 and never
    overwritten; a writer's key stores, a reader's key is refused with
    UNAUTHORIZED (exit 77) but reads, watches and mirrors; no key, or a
    fresh one the readers' list does not hold, gets no answer at all (69);
    the keys come by flag or by TECHFEED_SERVER_KEY / TECHFEED_KEY, the
    server key as its file or as Z85 text; --print-config shows the key
    file, never the secret; a wrong key's message names its setting alone.
    Every wait is bounded.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <czmq.h>
#include <signal.h>
#include <sys/stat.h>

#include "techfeed.h"
#include "tf_spawn.h"
#include "tf_testkit.h"
#include "tf_wire.h"

#define RUN_MS 30000 /* bound of one CLI run */

typedef struct {
    tf_service_t svc;
    char keys[300];       /* keygen's directory */
    char server_key[400]; /* keys/server.key: the public certificate */
    char writer[400];     /* keys/writer.key_secret */
    char reader[400];     /* keys/reader.key_secret */
    char server_z85[41];  /* the service's public key */
    char out[300], record[400];
} fixture_t;

static char *s_out, *s_err; /* output of the last s_cli */

static void s_forget_output (void)
{
    free (s_out);
    free (s_err);
    s_out = s_err = NULL;
}

static const tf_service_t *s_svc (fixture_t *f)
{
    return f ? &f->svc : NULL;
}

/*  The exit status, said with stderr when it is not 0. */
static int s_said (int rc)
{
    if (rc != 0)
        print_message ("techfeed: exit %d: %s", rc, s_err);
    return rc;
}

/*  techfeed ARGS... (NULL-terminated) with the service's endpoints and
    the environment of this process; output in s_out and s_err. */
#define s_cli(f, ...)                                                                              \
    (s_forget_output (), s_said (tf_test_cli (s_svc (f), NULL, &s_out, &s_err, __VA_ARGS__)))

/*  keygen NAME into f->keys: the public key it printed. */
static void s_keygen (fixture_t *f, const char *name, char z85[41])
{
    assert_int_equal (s_cli (NULL, "keygen", name, "--dir", f->keys, NULL), 0);
    assert_int_equal (strlen (s_out), 41); // 40 characters and a newline
    snprintf (z85, 41, "%s", s_out);
}

static void s_copy (const char *from, const char *to_dir, const char *name)
{
    char to[400];
    snprintf (to, sizeof to, "%s/%s", to_dir, name);
    char *text = tf_spawn_read (from);
    FILE *file = fopen (to, "w");
    assert_non_null (file);
    fputs (text, file);
    fclose (file);
    free (text);
}

static mode_t s_mode (const char *path)
{
    struct stat st;
    assert_int_equal (stat (path, &st), 0);
    return st.st_mode & 07777;
}

static int setup (void **state)
{
    fixture_t *f = (fixture_t *) zmalloc (sizeof *f);
    char *dir = tf_test_tempdir ();
    snprintf (f->svc.dir, sizeof f->svc.dir, "%s", dir);
    free (dir);
    snprintf (f->keys, sizeof f->keys, "%s/keys", f->svc.dir); // keygen makes it
    char writer_z85[41], reader_z85[41];
    s_keygen (f, "server", f->server_z85);
    s_keygen (f, "writer", writer_z85);
    s_keygen (f, "reader", reader_z85);
    snprintf (f->server_key, sizeof f->server_key, "%s/server.key", f->keys);
    snprintf (f->writer, sizeof f->writer, "%s/writer.key_secret", f->keys);
    snprintf (f->reader, sizeof f->reader, "%s/reader.key_secret", f->keys);
    //  The service: writers/ holds the writer; readers/ both (it governs
    //  every socket)
    char writers[400], readers[400], public_key[400];
    snprintf (writers, sizeof writers, "%s/writers", f->svc.dir);
    snprintf (readers, sizeof readers, "%s/readers", f->svc.dir);
    assert_int_equal (zsys_dir_create ("%s", writers), 0);
    assert_int_equal (zsys_dir_create ("%s", readers), 0);
    snprintf (public_key, sizeof public_key, "%s/writer.key", f->keys);
    s_copy (public_key, writers, "writer.key");
    s_copy (public_key, readers, "writer.key");
    snprintf (public_key, sizeof public_key, "%s/reader.key", f->keys);
    s_copy (public_key, readers, "reader.key");
    const char *extra[] = { "--curve-secret", f->server_key, "--writers", writers,
                            "--readers",      readers,       NULL };
    assert_int_equal (tf_service_start (&f->svc, extra), 0);
    snprintf (f->out, sizeof f->out, "%s/clients", f->svc.dir);
    assert_int_equal (zsys_dir_create ("%s", f->out), 0);
    snprintf (f->record, sizeof f->record, "%s/micius.json", f->out);
    FILE *file = fopen (f->record, "w");
    assert_non_null (file);
    fputs ("{\"id\":\"micius-qkd\",\"sector\":\"quantum\",\"title\":\"Micius distributes "
           "entangled photons over 1200 km\",\"date\":\"2017-06-16\"}\n",
           file);
    fclose (file);
    *state = f;
    return 0;
}

static int teardown (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    unsetenv ("TECHFEED_SERVER_KEY"); // set by a test that failed midway
    unsetenv ("TECHFEED_KEY");
    int rc = tf_service_stop (&f->svc, 10000);
    tf_service_cleanup (&f->svc);
    free (f);
    free (s_out);
    free (s_err);
    s_out = s_err = NULL;
    return rc == 0 ? 0 : -1;
}

// --------------------------------------------------------------- tests

static void test_keygen_files (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    char path[400];
    assert_int_equal (s_mode (f->keys), 0700);
    assert_int_equal (s_mode (f->writer), 0600);
    snprintf (path, sizeof path, "%s/writer.key", f->keys);
    assert_int_equal (s_mode (path), 0644);
    zcert_t *cert = zcert_load (f->server_key);
    assert_non_null (cert);
    assert_string_equal (zcert_public_txt (cert), f->server_z85);
    zcert_destroy (&cert);
    //  Never over an existing key: the files stay as they are
    char *before = tf_spawn_read (f->writer);
    assert_int_equal (s_cli (NULL, "keygen", "writer", "--dir", f->keys, NULL), 73);
    assert_non_null (strstr (s_err, "never overwrites"));
    char *after = tf_spawn_read (f->writer);
    assert_string_equal (before, after);
    free (before);
    free (after);
    assert_int_equal (s_cli (NULL, "keygen", "../escape", "--dir", f->keys, NULL), 64);
}

static void test_writer_and_reader (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    //  The writer's key stores
    assert_int_equal (s_cli (f, "--server-key", f->server_key, "--key", f->writer, "put", "--json",
                             f->record, NULL),
                      0);
    assert_non_null (strstr (s_out, "\"ok\":true"));
    //  The reader's key, from the environment: UNAUTHORIZED, nothing stored
    setenv ("TECHFEED_SERVER_KEY", f->server_key, 1);
    setenv ("TECHFEED_KEY", f->reader, 1);
    assert_int_equal (s_cli (f, "put", f->record, NULL), 77);
    //  Said once on stderr, with what was not stored; the record's
    //  result (NDJSON, as the output is not a terminal) says it too
    assert_int_equal (tf_test_count_text (s_err, "not allowed to write"), 1);
    assert_non_null (strstr (s_err, "UNAUTHORIZED"));
    assert_non_null (strstr (s_err, "1 record(s) from line 1 on not stored"));
    assert_non_null (strstr (s_out, "\"ok\":false"));
    assert_non_null (strstr (s_out, "\"code\":\"UNAUTHORIZED\""));
    //  ... but it reads, the server key given as Z85 text too
    assert_int_equal (s_cli (f, "--server-key", f->server_z85, "get", "--json", "micius-qkd", NULL),
                      0);
    assert_non_null (strstr (s_out, "\"revision\":1"));
    assert_int_equal (s_cli (f, "health", NULL), 0);
    //  --print-config: the key file, never the secret in it
    assert_int_equal (s_cli (f, "--print-config", NULL), 0);
    char line[500];
    snprintf (line, sizeof line, "key=%s\n", f->reader);
    assert_non_null (strstr (s_out, line));
    zcert_t *cert = zcert_load (f->reader);
    assert_non_null (cert);
    assert_null (strstr (s_out, zcert_secret_txt (cert)));
    zcert_destroy (&cert);
    unsetenv ("TECHFEED_SERVER_KEY");
    unsetenv ("TECHFEED_KEY");
}

static void test_no_answer_without_admitted_key (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    //  Plain: the handshake fails, no reply ever comes
    assert_int_equal (s_cli (f, "--timeout", "300", "health", NULL), 69);
    assert_int_equal (s_cli (f, "--timeout", "300", "put", f->record, NULL), 69);
    //  A fresh key pair the readers' list does not hold: the same
    assert_int_equal (s_cli (f, "--timeout", "300", "--server-key", f->server_key, "health", NULL),
                      69);
    //  Not a key, not a certificate: a bad setting
    assert_int_equal (s_cli (f, "--server-key", "nonsense", "health", NULL), 78);
    assert_non_null (strstr (s_err, "--server-key"));
    char public_only[400];
    snprintf (public_only, sizeof public_only, "%s/reader.key", f->keys);
    unlink (f->reader); // reader.key alone: no secret key
    assert_int_equal (
        s_cli (f, "--server-key", f->server_key, "--key", public_only, "health", NULL), 78);
    assert_non_null (strstr (s_err, "has no secret key"));
}

/*  78 and a message that names `setting` alone, the other key setting
    not at all. */
static void s_assert_names_only (int rc, const char *setting, const char *other, const char *why)
{
    assert_int_equal (rc, 78);
    char start[200];
    snprintf (start, sizeof start, "techfeed: %s: %s", setting, why);
    if (strncmp (s_err, start, strlen (start)) != 0 || strstr (s_err, other))
        fail_msg ("expected '%s...' without '%s', got: %s", start, other, s_err);
}

/*  A wrong server key names --server-key only, a wrong client certificate
    --key only, from a flag or a variable. */
static void test_bad_key_names_its_setting (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    const char *server = "--server-key (TECHFEED_SERVER_KEY)", *client = "--key (TECHFEED_KEY)";
    char missing[400], public_only[400];
    snprintf (missing, sizeof missing, "%s/nosuch.key", f->keys);
    snprintf (public_only, sizeof public_only, "%s/reader.key", f->keys);
    s_assert_names_only (s_cli (f, "--server-key", missing, "health", NULL), server, client,
                         "server key");
    s_assert_names_only (
        s_cli (f, "--server-key", missing, "--key", f->writer, "put", f->record, NULL), server,
        client, "server key");
    s_assert_names_only (s_cli (f, "--server-key", f->server_key, "--key", missing, "health", NULL),
                         client, server, "client certificate");
    unlink (f->reader); // reader.key alone: no secret key
    s_assert_names_only (
        s_cli (f, "--server-key", f->server_key, "--key", public_only, "get", "x", NULL), client,
        server, "client certificate");
    //  From the environment: the same
    setenv ("TECHFEED_SERVER_KEY", f->server_key, 1);
    setenv ("TECHFEED_KEY", missing, 1);
    s_assert_names_only (s_cli (f, "list", NULL), client, server, "client certificate");
    setenv ("TECHFEED_SERVER_KEY", "nonsense", 1);
    unsetenv ("TECHFEED_KEY");
    s_assert_names_only (s_cli (f, "status", NULL), server, client, "server key");
    unsetenv ("TECHFEED_SERVER_KEY");
}

/*  watch --count 1 and mirror with the reader's key: both see the
    writer's change. */
static void test_reader_watches_and_mirrors (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    char server_env[500], key_env[500], db[400];
    snprintf (server_env, sizeof server_env, "TECHFEED_SERVER_KEY=%s", f->server_key);
    snprintf (key_env, sizeof key_env, "TECHFEED_KEY=%s", f->reader);
    const char *env[] = { server_env, key_env, NULL };
    tf_spawn_t watch = { 0 }, mirror = { 0 };
    const char *watch_argv[] = {
        tf_test_program ("techfeed"), "watch", "--count", "1", "--json", NULL
    };
    assert_int_equal (tf_spawn_start (&watch, &f->svc, f->out, "watch", watch_argv, env), 0);
    snprintf (db, sizeof db, "%s/mirror.db", f->out);
    const char *mirror_argv[] = { tf_test_program ("techfeed"), "mirror", "--db", db, NULL };
    assert_int_equal (tf_spawn_start (&mirror, &f->svc, f->out, "mirror", mirror_argv, env), 0);
    assert_true (tf_spawn_wait_text (watch.err, "watching for changes", 1, RUN_MS));
    assert_true (tf_spawn_wait_text (mirror.err, "snapshot: ", 1, RUN_MS));

    assert_int_equal (
        s_cli (f, "--server-key", f->server_key, "--key", f->writer, "put", f->record, NULL), 0);
    assert_int_equal (tf_spawn_stop (&watch, 0, RUN_MS), 0); // it exits by itself
    char *out = tf_spawn_read (watch.out);
    assert_non_null (strstr (out, "\"id\":\"micius-qkd\""));
    assert_non_null (strstr (out, "\"op\":\"add\""));
    free (out);
    assert_true (tf_spawn_wait_text (mirror.err, "live: 1 change", 1, RUN_MS));
    assert_int_equal (tf_spawn_stop (&mirror, SIGTERM, RUN_MS), 0);
    tf_view_store_status_t file;
    char err[600];
    assert_int_equal (tf_view_store_status (db, &file, err, sizeof err), 0);
    assert_int_equal (file.record_count, 1);
    assert_int_equal (file.digest, tf_digest_item ("micius-qkd", 1));
}

int main (void)
{
    zsys_init ();
    unsetenv ("TECHFEED_SERVER_KEY");
    unsetenv ("TECHFEED_KEY");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_keygen_files, setup, teardown),
        cmocka_unit_test_setup_teardown (test_writer_and_reader, setup, teardown),
        cmocka_unit_test_setup_teardown (test_no_answer_without_admitted_key, setup, teardown),
        cmocka_unit_test_setup_teardown (test_reader_watches_and_mirrors, setup, teardown),
        cmocka_unit_test_setup_teardown (test_bad_key_names_its_setting, setup, teardown),
    };
    return cmocka_run_group_tests_name ("techfeed CLI with CURVE", tests, NULL, NULL);
}
