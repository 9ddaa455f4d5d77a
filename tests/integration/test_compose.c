/*  docker-compose.yml and the Dockerfile, checked without a Docker engine
    (none runs on the test machines): docker-compose (Debian's package)
    validates the file and prints it normalised; the checks read that, and
    the services' commands run natively on loopback with the compose
    file's environment, in the order compose starts them: ingestd, its
    healthcheck, loader, watch and mirror, then the healthcheck once more
    after ingestd has stopped.

    What a container has that a test on this machine has not, and what
    stands in for it:
    - ingestd's bind endpoints (every interface, ports 5560-5562): loopback
      on ports the system picks, read back from --endpoints-file (added);
    - TECHFEED_DATA_DIR=/var/lib/techfeed: a temporary directory (also
      given as --data-dir by the test kit); TECHFEED_HTTP_ADDR: 127.0.0.1:0;
    - the clients' TECHFEED_SERVER=ingestd, and the healthcheck's default
      127.0.0.1:5560-5562: TECHFEED_INGEST/EVENTS/SYNC of that service;
    - /usr/share/techfeed/demo/: the source tree's clients/demo/;
      /var/lib/techfeed-mirror/: a temporary directory;
    - the programs (the Dockerfile's ENTRYPOINT, or a service's
      entrypoint): the ones built beside the tests ($TF_BUILD_DIR).
    The source tree is the current directory or $TF_SOURCE_DIR. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "techfeed.h"
#include "tf_spawn.h"
#include "tf_testkit.h"

#define MAX_ARGS 64
#define S_CLIENT_MS 30000 /* a long-running client does its first work within this */

typedef struct {
    char src[PATH_MAX];          /* the source tree */
    char compose[PATH_MAX + 32]; /* its docker-compose.yml */
    char *tmp;                   /* this test's directory */
    json_t *config;              /* `docker-compose config`, as JSON */
    char *dockerfile;            /* the Dockerfile's text */
    tf_service_t svc;            /* ingestd, run natively */
    size_t demo_records;         /* lines of clients/demo/milestones.ndjson */
} fixture_t;

static int group_setup (void **state)
{
    fixture_t *f = (fixture_t *) calloc (1, sizeof *f);
    const char *src = getenv ("TF_SOURCE_DIR");
    if (!realpath (src && *src ? src : ".", f->src))
        return -1;
    snprintf (f->compose, sizeof f->compose, "%s/docker-compose.yml", f->src);
    f->tmp = tf_test_tempdir ();
    *state = f;
    return 0;
}

static int group_teardown (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    tf_service_cleanup (&f->svc);
    tf_test_rmtree (f->tmp);
    free (f->tmp);
    json_decref (f->config);
    free (f->dockerfile);
    free (f);
    return 0;
}

/*  Reads a whole file; NULL when it cannot. Caller frees. */
static char *s_slurp (const char *path)
{
    FILE *file = fopen (path, "r");
    if (!file)
        return NULL;
    char *text = NULL;
    size_t size = 0;
    FILE *memory = open_memstream (&text, &size);
    char chunk[4096];
    size_t n;
    while ((n = fread (chunk, 1, sizeof chunk, file)) > 0)
        fwrite (chunk, 1, n, memory);
    fclose (file);
    fclose (memory);
    return text;
}

/*  The JSON array after `instruction` at the start of a Dockerfile line
    (exec form), e.g. ENTRYPOINT ["techfeed-ingestd"]; NULL when absent or
    not in exec form. Caller decrefs. */
static json_t *s_dockerfile_array (fixture_t *f, const char *instruction)
{
    char prefix[64];
    snprintf (prefix, sizeof prefix, "\n%s ", instruction);
    const char *at = strstr (f->dockerfile, prefix);
    if (!at)
        return NULL;
    at += strlen (prefix);
    const char *end = strchr (at, '\n');
    return json_loadb (at, end ? (size_t) (end - at) : strlen (at), 0, NULL);
}

static json_t *s_service (fixture_t *f, const char *name)
{
    json_t *service = json_object_get (json_object_get (f->config, "services"), name);
    if (!service)
        fail_msg ("docker-compose.yml has no service '%s'", name);
    return service;
}

/*  A compose value (string, number or boolean) as text; caller frees. */
static char *s_text (json_t *value)
{
    if (json_is_string (value))
        return strdup (json_string_value (value));
    char *text = json_dumps (value, JSON_ENCODE_ANY);
    assert_non_null (text);
    return text;
}

/*  `value` with the first `from` prefix replaced by `to`; caller frees. */
static char *s_replace_prefix (const char *value, const char *from, const char *to)
{
    char *result = NULL;
    size_t size = strlen (from);
    if (strncmp (value, from, size) == 0) {
        if (asprintf (&result, "%s%s", to, value + size) < 0)
            abort ();
    } else
        result = strdup (value);
    return result;
}

/*  A value of a command or of an environment variable, substituted for
    loopback as the header says; NULL when the variable is dropped. */
static char *s_substitute (fixture_t *f, const char *name, const char *value)
{
    char demo[PATH_MAX + 20], mirror[PATH_MAX + 20], data[PATH_MAX + 20];
    snprintf (demo, sizeof demo, "%s/clients/demo/", f->src);
    snprintf (mirror, sizeof mirror, "%s/mirror/", f->tmp);
    snprintf (data, sizeof data, "%s/data", f->tmp);
    if (name && strcmp (name, "TECHFEED_SERVER") == 0)
        return NULL;
    if (name && strcmp (name, "TECHFEED_DATA_DIR") == 0)
        return strdup (data);
    if (name && strcmp (name, "TECHFEED_HTTP_ADDR") == 0)
        return strdup ("127.0.0.1:0");
    if (strncmp (value, "tcp://*:", 8) == 0 || strncmp (value, "tcp://0.0.0.0:", 14) == 0)
        return strdup ("tcp://127.0.0.1:*");
    if (strncmp (value, "/usr/share/techfeed/demo/", 25) == 0)
        return s_replace_prefix (value, "/usr/share/techfeed/demo/", demo);
    return s_replace_prefix (value, "/var/lib/techfeed-mirror/", mirror);
}

/*  Sets the variables of a service's environment in this process (the
    programs started next inherit them), substituted unless `raw`; with
    `set` false, unsets them again. */
static void s_environment (fixture_t *f, json_t *service, bool set, bool raw)
{
    const char *name;
    json_t *value;
    json_object_foreach (json_object_get (service, "environment"), name, value) {
        char *text = s_text (value);
        char *substituted = raw ? strdup (text) : s_substitute (f, name, text);
        if (set && substituted)
            setenv (name, substituted, 1);
        else
            unsetenv (name);
        free (text);
        free (substituted);
    }
}

/*  argv of a service's program: its entrypoint (or the Dockerfile's) and
    command, the program from the build directory, the arguments
    substituted unless `raw`. Returns argc; free the strings with
    s_argv_free. */
static size_t s_argv (fixture_t *f, json_t *service, bool raw, const char **argv)
{
    json_t *entrypoint = json_object_get (service, "entrypoint");
    json_t *image_entrypoint = NULL;
    if (!entrypoint)
        entrypoint = image_entrypoint = s_dockerfile_array (f, "ENTRYPOINT");
    assert_true (json_is_array (entrypoint) && json_array_size (entrypoint) >= 1);
    size_t argc = 0;
    argv[argc++] = strdup (tf_test_program (json_string_value (json_array_get (entrypoint, 0))));
    json_t *parts[2] = { entrypoint, json_object_get (service, "command") };
    for (size_t p = 0; p < 2; p++) {
        size_t i;
        json_t *arg;
        json_array_foreach (parts[p], i, arg) {
            if (p == 0 && i == 0)
                continue;
            assert_true (argc < MAX_ARGS - 1);
            const char *text = json_string_value (arg);
            argv[argc++] = raw ? strdup (text) : s_substitute (f, NULL, text);
        }
    }
    argv[argc] = NULL;
    json_decref (image_entrypoint);
    return argc;
}

static void s_argv_free (const char **argv)
{
    for (size_t i = 0; argv[i]; i++)
        free ((char *) argv[i]);
}

/*  Runs a client's command (`service`: its compose definition) with its
    environment against the service; stdout into *out (caller frees).
    Returns the exit status, -1 when it was still running after
    timeout_ms (then killed). */
static int s_run_client (fixture_t *f, json_t *service, int timeout_ms, char **out)
{
    const char *argv[MAX_ARGS];
    s_argv (f, service, false, argv);
    s_environment (f, service, true, false);
    char *err = NULL;
    int rc = tf_test_run (&f->svc, argv, NULL, out, &err, timeout_ms);
    s_environment (f, service, false, false);
    if (rc != 0 && rc != -1)
        print_message ("%s: exit %d\n%s", argv[0], rc, err);
    free (err);
    s_argv_free (argv);
    return rc;
}

/*  Starts a long-running client (`service`: its compose definition) with
    its environment against the service, in the background: its stdout
    and stderr in the test's directory as NAME.out and .err. */
static void s_start_client (fixture_t *f, json_t *service, const char *name, tf_spawn_t *client)
{
    const char *argv[MAX_ARGS];
    s_argv (f, service, false, argv);
    s_environment (f, service, true, false);
    int rc = tf_spawn_start (client, &f->svc, f->tmp, name, argv, NULL);
    s_environment (f, service, false, false);
    s_argv_free (argv);
    assert_int_equal (rc, 0);
}

/*  The client still runs (it did not exit meanwhile); then stopped by its
    PID with SIGTERM, as `docker stop` does: its exit status, -1 when it
    did not exit within 10 s (then killed). */
static int s_stop_client (tf_spawn_t *client)
{
    int status;
    pid_t done = waitpid (client->pid, &status, WNOHANG);
    if (done == client->pid) {
        client->pid = 0;
        char *err = tf_spawn_read (client->err);
        fail_msg ("the client exited (status %d) instead of running on:\n%s", status, err);
    }
    assert_int_equal (done, 0);
    return tf_spawn_stop (client, SIGTERM, 10000);
}

/*  ingestd's healthcheck as a service of its own: it runs in the ingestd
    container, with its environment. Caller decrefs. */
static json_t *s_healthcheck (fixture_t *f)
{
    json_t *ingestd = s_service (f, "ingestd");
    json_t *test = json_object_get (json_object_get (ingestd, "healthcheck"), "test");
    assert_true (json_array_size (test) >= 2);
    assert_string_equal (json_string_value (json_array_get (test, 0)), "CMD");
    json_t *command = json_array ();
    for (size_t i = 2; i < json_array_size (test); i++)
        json_array_append (command, json_array_get (test, i));
    return json_pack ("{s:[O], s:o, s:O}", "entrypoint", json_array_get (test, 1), "command",
                      command, "environment", json_object_get (ingestd, "environment"));
}

static void test_config_validates (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    const char *quiet[] = { "/usr/bin/docker-compose", "-f", f->compose, "config", "-q", NULL };
    char *out = NULL, *err = NULL;
    int rc = tf_test_run (NULL, quiet, NULL, &out, &err, 60000);
    if (rc != 0)
        print_message ("docker-compose config -q: exit %d\n%s", rc, err);
    assert_int_equal (rc, 0);
    assert_string_equal (err, ""); /* no warnings either */
    free (out);
    free (err);

    //  The normalised file, as JSON (Debian's PyYAML comes with docker-compose:
    //  the system python, not whichever python3 is first on PATH).
    char *command = NULL;
    if (asprintf (&command,
                  "docker-compose -f '%s' config | /usr/bin/python3 -c "
                  "'import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'",
                  f->compose) < 0)
        abort ();
    const char *shell[] = { "/bin/sh", "-c", command, NULL };
    assert_int_equal (tf_test_run (NULL, shell, NULL, &out, &err, 60000), 0);
    json_error_t error;
    f->config = json_loads (out, 0, &error);
    if (!f->config)
        fail_msg ("docker-compose config: %s\n%s", error.text, out);
    free (command);
    free (out);
    free (err);

    char path[PATH_MAX + 40];
    snprintf (path, sizeof path, "%s/Dockerfile", f->src);
    f->dockerfile = s_slurp (path);
    assert_non_null (f->dockerfile);
    snprintf (path, sizeof path, "%s/clients/demo/milestones.ndjson", f->src);
    char *demo = s_slurp (path);
    assert_non_null (demo);
    f->demo_records = tf_test_count_lines (demo);
    free (demo);
}

/*  True when the JSON array holds the string. */
static bool s_has (json_t *array, const char *text)
{
    size_t i;
    json_t *item;
    json_array_foreach (array, i, item)
        if (json_is_string (item) && strcmp (json_string_value (item), text) == 0)
            return true;
    return false;
}

static void test_compose_shape (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    assert_non_null (f->config);
    const char *name;
    json_t *service;
    json_object_foreach (json_object_get (f->config, "services"), name, service) {
        //  Read-only root, no capabilities, no privilege gain, everywhere.
        if (!json_is_true (json_object_get (service, "read_only")))
            fail_msg ("%s: read_only is not true", name);
        if (!s_has (json_object_get (service, "cap_drop"), "ALL"))
            fail_msg ("%s: cap_drop lacks ALL", name);
        if (!s_has (json_object_get (service, "security_opt"), "no-new-privileges:true"))
            fail_msg ("%s: security_opt lacks no-new-privileges:true", name);
        //  Ports published on the host's loopback only.
        size_t i;
        json_t *port;
        json_array_foreach (json_object_get (service, "ports"), i, port) {
            if (!json_is_string (port) || strncmp (json_string_value (port), "127.0.0.1:", 10))
                fail_msg ("%s: port %s is not published on 127.0.0.1", name,
                          json_is_string (port) ? json_string_value (port) : "(long form)");
        }
        //  The clients wait until the service is healthy.
        if (strcmp (name, "ingestd") != 0) {
            json_t *condition = json_object_get (
                json_object_get (json_object_get (service, "depends_on"), "ingestd"), "condition");
            if (!json_is_string (condition) ||
                strcmp (json_string_value (condition), "service_healthy") != 0)
                fail_msg ("%s: does not wait for ingestd to be healthy", name);
        }
    }
    //  ingestd: the image's command and health check, spelled out the same.
    json_t *ingestd = s_service (f, "ingestd");
    json_t *cmd = s_dockerfile_array (f, "CMD");
    assert_non_null (cmd);
    assert_true (json_equal (json_object_get (ingestd, "command"), cmd));
    json_decref (cmd);
    json_t *health = json_pack ("[s]", "CMD");
    const char *at = strstr (f->dockerfile, "\n    CMD [");
    assert_non_null (at); /* HEALTHCHECK ... \ CMD [...] */
    json_t *image_health = json_loadb (at + 9, strcspn (at + 9, "\n"), 0, NULL);
    assert_non_null (image_health);
    json_array_extend (health, image_health);
    assert_true (
        json_equal (json_object_get (json_object_get (ingestd, "healthcheck"), "test"), health));
    json_decref (health);
    json_decref (image_health);
    //  Its data directory is a named volume, the image's VOLUME.
    json_t *environment = json_object_get (ingestd, "environment");
    const char *data_dir = json_string_value (json_object_get (environment, "TECHFEED_DATA_DIR"));
    assert_non_null (data_dir);
    char mount[PATH_MAX], volume[PATH_MAX];
    snprintf (mount, sizeof mount, "techfeed-data:%s:rw", data_dir);
    assert_true (s_has (json_object_get (ingestd, "volumes"), mount));
    snprintf (volume, sizeof volume, "\nVOLUME [\"%s\"]\n", data_dir);
    assert_non_null (strstr (f->dockerfile, volume));
    //  Binding beyond loopback wants CURVE or an explicit --insecure (the
    //  substituted test run below binds loopback, so it would not notice).
    const char *insecure = json_string_value (json_object_get (environment, "TECHFEED_INSECURE"));
    if (!json_object_get (environment, "TECHFEED_CURVE_SECRET") &&
        !(insecure && strcmp (insecure, "true") == 0))
        fail_msg ("ingestd binds beyond loopback with neither TECHFEED_CURVE_SECRET nor "
                  "TECHFEED_INSECURE=true: it would refuse to start");
    //  A numeric user, not root; the service is PID 1 (exec form).
    assert_non_null (strstr (f->dockerfile, "\nUSER 10001:10001\n"));
    json_t *entrypoint = s_dockerfile_array (f, "ENTRYPOINT");
    assert_true (json_is_array (entrypoint));
    json_decref (entrypoint);
    //  The mirror's file is on its volume.
    json_t *mirror = s_service (f, "mirror");
    assert_true (
        s_has (json_object_get (mirror, "volumes"), "techfeed-mirror:/var/lib/techfeed-mirror:rw"));
    assert_true (s_has (json_object_get (mirror, "command"), "/var/lib/techfeed-mirror/mirror.db"));
}

static void test_ingestd_settings (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    assert_non_null (f->config);
    //  Every variable and flag of the ingestd service is a setting of the
    //  program and takes the compose file's value, unsubstituted.
    json_t *ingestd = s_service (f, "ingestd");
    const char *argv[MAX_ARGS];
    size_t argc = s_argv (f, ingestd, true, argv);
    argv[argc] = strdup ("--print-config");
    argv[argc + 1] = NULL;
    s_environment (f, ingestd, true, true);
    char *out = NULL, *err = NULL;
    int rc = tf_test_run (NULL, argv, NULL, &out, &err, 10000);
    s_environment (f, ingestd, false, true);
    if (rc != 0)
        fail_msg ("techfeed-ingestd --print-config: exit %d\n%s", rc, err);
    //  name=value lines: look for "\nname=value\n" in "\n" + out.
    char *printed = NULL;
    if (asprintf (&printed, "\n%s", out) < 0)
        abort ();
    const char *name;
    json_t *value;
    json_object_foreach (json_object_get (ingestd, "environment"), name, value) {
        char line[256];
        char *text = s_text (value);
        int n = snprintf (line, sizeof line, "\n%s=%s\n", name + strlen ("TECHFEED_"), text);
        for (int i = 1; i < n && line[i] != '='; i++)
            line[i] = line[i] == '_' ? '-' : (char) (line[i] - 'A' + 'a');
        if (!strstr (printed, line))
            fail_msg ("%s=%s is not in effect (no %s):\n%s", name, text, line + 1, out);
        free (text);
    }
    json_t *command = json_object_get (ingestd, "command");
    for (size_t i = 0; i + 1 < json_array_size (command); i += 2) {
        char line[256];
        snprintf (line, sizeof line, "\n%s=%s\n",
                  json_string_value (json_array_get (command, i)) + 2,
                  json_string_value (json_array_get (command, i + 1)));
        if (!strstr (printed, line))
            fail_msg ("%s is not in effect:\n%s", line + 1, out);
    }
    free (printed);
    free (out);
    free (err);
    s_argv_free (argv);
}

static void test_ingestd_runs (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    assert_non_null (f->config);
    json_t *ingestd = s_service (f, "ingestd");
    const char *argv[MAX_ARGS];
    size_t argc = s_argv (f, ingestd, false, argv);
    //  The test kit gives --log-format text: the compose file's wins here.
    const char *format = json_string_value (
        json_object_get (json_object_get (ingestd, "environment"), "TECHFEED_LOG_FORMAT"));
    assert_non_null (format);
    argv[argc++] = strdup ("--log-format");
    argv[argc++] = strdup (format);
    argv[argc] = NULL;
    s_environment (f, ingestd, true, false);
    int rc = tf_service_start (&f->svc, argv + 1);
    s_environment (f, ingestd, false, false);
    s_argv_free (argv);
    assert_int_equal (rc, 0);

    //  It answers on its sync socket...
    tf_query_t *query = tf_query_new (f->svc.sync);
    tf_status_t status;
    assert_int_equal (tf_query_status (query, &status), 0);
    assert_int_equal (status.record_count, 0);
    tf_query_destroy (&query);
    //  ...and logs JSON lines.
    char *log = s_slurp (f->svc.log);
    assert_non_null (log);
    json_error_t error;
    json_t *first = json_loadb (log, strcspn (log, "\n"), 0, &error);
    if (!json_is_object (first))
        fail_msg ("the log is not JSON lines:\n%s", log);
    json_decref (first);
    free (log);
}

static void test_healthcheck (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    assert_true (f->svc.pid > 0);
    json_t *healthcheck = s_healthcheck (f);
    char *out = NULL;
    assert_int_equal (s_run_client (f, healthcheck, 20000, &out), 0);
    free (out);
    json_decref (healthcheck);
}

static void test_loader (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    assert_true (f->svc.pid > 0);
    char *out = NULL;
    assert_int_equal (s_run_client (f, s_service (f, "loader"), 30000, &out), 0);
    free (out);
    tf_query_t *query = tf_query_new (f->svc.sync);
    tf_status_t status;
    assert_int_equal (tf_query_status (query, &status), 0);
    assert_int_equal (status.record_count, f->demo_records);
    tf_query_destroy (&query);
}

/*  What a wait on a client's work looks at: a file and what it must hold. */
typedef struct {
    const char *path; /* watch: its stdout; mirror: its database */
    uint64_t want;    /* watch: snapshot lines; mirror: position */
} s_work_t;

/*  Snapshot lines in the watch client's stdout. */
static size_t s_snapshot_lines (const char *path)
{
    char *out = tf_spawn_read (path);
    size_t snapshot = 0;
    char *save = NULL;
    for (char *line = strtok_r (out, "\n", &save); line; line = strtok_r (NULL, "\n", &save)) {
        json_t *object = json_loads (line, 0, NULL);
        const char *kind = json_string_value (json_object_get (object, "kind"));
        snapshot += kind && strcmp (kind, "snapshot") == 0;
        json_decref (object);
    }
    free (out);
    return snapshot;
}

/*  The watch client printed at least `want` snapshot lines. */
static bool s_watch_printed (void *arg)
{
    s_work_t *work = (s_work_t *) arg;
    return s_snapshot_lines (work->path) >= work->want;
}

static void test_watch (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    assert_true (f->svc.pid > 0);
    //  It prints the records, then goes on watching until stopped
    tf_spawn_t watch = { 0 };
    s_start_client (f, s_service (f, "watch"), "watch", &watch);
    s_work_t work = { .path = watch.out, .want = f->demo_records };
    bool printed = tf_test_wait_for (s_watch_printed, &work, S_CLIENT_MS);
    int rc = s_stop_client (&watch);
    size_t snapshot = s_snapshot_lines (watch.out);
    if (!printed)
        fail_msg ("watch printed %zu of %zu records in %d ms", snapshot, f->demo_records,
                  S_CLIENT_MS);
    assert_int_equal (snapshot, f->demo_records);
    print_message ("watch: exit %d on SIGTERM\n", rc);
    assert_true (rc != -1); // it exits on the signal
}

/*  The mirror file holds a snapshot and is at position `want`. */
static bool s_mirror_current (void *arg)
{
    s_work_t *work = (s_work_t *) arg;
    tf_view_store_status_t status;
    char err[256];
    return tf_view_store_status (work->path, &status, err, sizeof err) == 0 && status.epoch[0] &&
           status.position == work->want;
}

static void test_mirror (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    assert_true (f->svc.pid > 0);
    char path[PATH_MAX + 20];
    snprintf (path, sizeof path, "%s/mirror", f->tmp);
    assert_int_equal (mkdir (path, 0700), 0); /* the volume */
    tf_query_t *query = tf_query_new (f->svc.sync);
    tf_status_t head;
    assert_int_equal (tf_query_status (query, &head), 0);
    tf_query_destroy (&query);
    //  It mirrors the records into its file, then goes on until stopped
    tf_spawn_t mirror = { 0 };
    s_start_client (f, s_service (f, "mirror"), "mirror", &mirror);
    snprintf (path, sizeof path, "%s/mirror/mirror.db", f->tmp);
    s_work_t work = { .path = path, .want = head.head_sequence };
    bool current = tf_test_wait_for (s_mirror_current, &work, S_CLIENT_MS);
    int rc = s_stop_client (&mirror);
    tf_view_store_status_t status = { 0 };
    char err[256] = "";
    int status_rc = tf_view_store_status (path, &status, err, sizeof err);
    if (!current)
        fail_msg ("the mirror file was not at position %" PRIu64 " within %d ms: %s%s"
                  "position %" PRIu64,
                  head.head_sequence, S_CLIENT_MS, err, err[0] ? ", " : "", status.position);
    assert_int_equal (status_rc, 0);
    assert_int_equal (status.record_count, f->demo_records);
    assert_int_equal (status.digest, head.digest);
    assert_int_equal (rc, 0); // SIGTERM: exit 0 (its help says so)
}

static void test_healthcheck_when_stopped (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    assert_true (f->svc.pid > 0);
    //  docker stop: SIGTERM, exit 0 well within the grace period.
    assert_int_equal (tf_service_stop (&f->svc, 10000), 0);
    //  Endpoints where nothing answers (its ports may be another test's
    //  service by now).
    snprintf (f->svc.ingest, sizeof f->svc.ingest, "ipc://%s/gone-ingest", f->tmp);
    snprintf (f->svc.events, sizeof f->svc.events, "ipc://%s/gone-events", f->tmp);
    snprintf (f->svc.sync, sizeof f->svc.sync, "ipc://%s/gone-sync", f->tmp);
    json_t *healthcheck = s_healthcheck (f);
    char *out = NULL;
    int rc = s_run_client (f, healthcheck, 30000, &out);
    free (out);
    json_decref (healthcheck);
    assert_true (rc > 0 && rc != 64); /* unhealthy, not a usage error */
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_config_validates),
        cmocka_unit_test (test_compose_shape),
        cmocka_unit_test (test_ingestd_settings),
        cmocka_unit_test (test_ingestd_runs),
        cmocka_unit_test (test_healthcheck),
        cmocka_unit_test (test_loader),
        cmocka_unit_test (test_watch),
        cmocka_unit_test (test_mirror),
        cmocka_unit_test (test_healthcheck_when_stopped),
    };
    return cmocka_run_group_tests (tests, group_setup, group_teardown);
}
