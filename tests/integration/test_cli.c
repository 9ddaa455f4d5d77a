/*  The techfeed CLI as a user types it, against the real techfeed-ingestd:
    put of a file and from stdin, get, list with filters, delete, watch
    (snapshot, then the changes made while it runs), a bad NDJSON file
    (exit 65, FILE:LINE: /field: message per bad record, the good ones
    stored), the service down (exit 69) and usage errors (exit 64). Output
    goes to pipes, so it is NDJSON. `techfeed help help` is help too;
    get and delete of a missing id exit 1, as the help says. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tf_fake.h"
#include "tf_viewkit.h"

static char *s_out; /* stdout of the last s_cli */
static char *s_err; /* its stderr */

#define S_MILESTONES                                                                               \
    "{\"id\":\"change-4-far-side-landing\",\"sector\":\"space\","                                  \
    "\"title\":\"Chang'e-4 makes the first soft landing on the far side of the Moon\","            \
    "\"organizations\":[\"CNSA\"],\"country\":\"CN\",\"date\":\"2019-01-03\","                     \
    "\"status\":\"achieved\",\"metrics\":[{\"name\":\"rover mass\",\"value\":140,\"unit\":\"kg\"}" \
    "],\"sources\":[\"https://en.wikipedia.org/wiki/Chang%27e_4\"],\"tags\":[\"moon\"]}\n"         \
    "{\"id\":\"tianwen-1-zhurong-mars-landing\",\"sector\":\"space\","                             \
    "\"title\":\"Tianwen-1 lands the Zhurong rover on Mars\",\"organizations\":[\"CNSA\"],"        \
    "\"country\":\"CN\",\"date\":\"2021-05-15\",\"status\":\"achieved\"}\n"                        \
    "{\"id\":\"beijing-shanghai-hsr-opening\",\"sector\":\"rail\","                                \
    "\"title\":\"Beijing-Shanghai high-speed railway opens\","                                     \
    "\"organizations\":[\"Ministry of Railways\"],\"country\":\"CN\",\"date\":\"2011-06-30\","     \
    "\"metrics\":[{\"name\":\"line length\",\"value\":1318,\"unit\":\"km\"}]}\n"                   \
    "{\"id\":\"apollo-go-driverless-wuhan\",\"sector\":\"ai\","                                    \
    "\"title\":\"Baidu Apollo Go wins permits for driverless robotaxi rides\","                    \
    "\"organizations\":[\"Baidu\"],\"country\":\"CN\",\"date\":\"2022-08\"}\n"                     \
    "{\"id\":\"smic-us-entity-list\",\"sector\":\"chips\",\"title\":\"US adds SMIC to the "        \
    "Entity List\",\"organizations\":[\"US Department of Commerce\",\"SMIC\"],"                    \
    "\"country\":\"US\",\"date\":\"2020-12-18\",\"status\":\"announced\"}\n"

static const char *s_ids[] = { "change-4-far-side-landing", "tianwen-1-zhurong-mars-landing",
                               "beijing-shanghai-hsr-opening", "apollo-go-driverless-wuhan",
                               "smic-us-entity-list" };

static int teardown (void **state)
{
    free (s_out);
    free (s_err);
    s_out = s_err = NULL;
    return tf_test_teardown_service (state);
}

/*  Runs `techfeed ARGS...` (NULL-terminated) with `input` on stdin; the
    exit status, its output in s_out and s_err. */
#define s_cli(svc, input, ...) s_cli_run ((svc), (input), __VA_ARGS__, (const char *) NULL)

static int s_cli_run (const tf_service_t *svc, const char *input, ...)
{
    const char *argv[32] = { tf_test_program ("techfeed") };
    size_t argc = 1;
    va_list args;
    va_start (args, input);
    while ((argv[argc] = va_arg (args, const char *)) && argc < 31)
        argc++;
    va_end (args);
    argv[argc] = NULL;
    free (s_out);
    free (s_err);
    s_out = s_err = NULL;
    return tf_test_run (svc, argv, input, &s_out, &s_err, 20000);
}

/*  A file in the service's directory with `text`; its path (static). */
static const char *s_file (tf_service_t *svc, const char *name, const char *text)
{
    static char path[400];
    snprintf (path, sizeof path, "%s/%s", svc->dir, name);
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    fputs (text, file);
    fclose (file);
    return path;
}

/*  s_out as NDJSON. */
static json_t *s_out_json (void)
{
    json_t *lines = tf_test_ndjson (s_out);
    if (!lines)
        fail_msg ("not NDJSON: %s", s_out);
    return lines;
}

/*  The "id" members of s_out's lines, space-separated, in order. */
static const char *s_out_ids (void)
{
    static char ids[2000];
    ids[0] = 0;
    json_t *lines = s_out_json ();
    size_t i;
    json_t *line;
    json_array_foreach (lines, i, line) {
        const char *id = json_string_value (json_object_get (line, "id"));
        snprintf (ids + strlen (ids), sizeof ids - strlen (ids), "%s%s", i ? " " : "",
                  id ? id : "?");
    }
    json_decref (lines);
    return ids;
}

/*  Stores the five milestones. */
static void s_put_milestones (tf_service_t *svc)
{
    assert_int_equal (s_cli (svc, NULL, "put", s_file (svc, "milestones.ndjson", S_MILESTONES)), 0);
}

static void test_put_file_then_get (void **state)
{
    tf_service_t *svc = (tf_service_t *) *state;
    const char *path = s_file (svc, "milestones.ndjson", S_MILESTONES);
    assert_int_equal (s_cli (svc, NULL, "put", path), 0);
    //  One ok line per record, in file order, with revision, sequence and line
    json_t *results = s_out_json ();
    assert_int_equal (json_array_size (results), 5);
    for (size_t i = 0; i < 5; i++) {
        json_t *r = json_array_get (results, i);
        assert_string_equal (json_string_value (json_object_get (r, "id")), s_ids[i]);
        assert_true (json_is_true (json_object_get (r, "ok")));
        assert_int_equal (json_integer_value (json_object_get (r, "revision")), 1);
        assert_int_equal (json_integer_value (json_object_get (r, "sequence")), i + 1);
        assert_int_equal (json_integer_value (json_object_get (r, "line")), i + 1);
    }
    json_decref (results);
    assert_string_equal (s_err, "");

    //  get: the record as JSON, every member as put, plus revision and time
    assert_int_equal (s_cli (svc, NULL, "get", "change-4-far-side-landing"), 0);
    json_t *got = json_loads (s_out, 0, NULL);
    assert_non_null (got);
    json_t *lines = tf_test_ndjson (S_MILESTONES);
    json_t *want = json_array_get (lines, 0);
    const char *key;
    json_t *value;
    json_object_foreach (want, key, value) {
        if (!json_equal (value, json_object_get (got, key)))
            fail_msg ("get: member %s differs: %s", key, s_out);
    }
    assert_int_equal (json_integer_value (json_object_get (got, "revision")), 1);
    assert_true (json_is_string (json_object_get (got, "updated_at")));
    json_decref (got);
    json_decref (lines);

    //  Several ids, in the order asked for
    assert_int_equal (s_cli (svc, NULL, "get", "smic-us-entity-list", "apollo-go-driverless-wuhan"),
                      0);
    assert_string_equal (s_out_ids (), "smic-us-entity-list apollo-go-driverless-wuhan");
    //  A missing id: exit 1, said on stderr, the found ones still printed
    assert_int_equal (s_cli (svc, NULL, "get", "no-such-milestone"), 1);
    assert_string_equal (s_out, "");
    assert_non_null (strstr (s_err, "no-such-milestone: not found"));
    assert_int_equal (s_cli (svc, NULL, "get", "smic-us-entity-list", "no-such-milestone"), 1);
    assert_string_equal (s_out_ids (), "smic-us-entity-list");
    assert_non_null (strstr (s_err, "no-such-milestone: not found"));

    //  Put again: revision 2, the next sequence
    assert_int_equal (s_cli (svc, NULL, "put", path), 0);
    results = s_out_json ();
    json_t *first = json_array_get (results, 0);
    assert_int_equal (json_integer_value (json_object_get (first, "revision")), 2);
    assert_int_equal (json_integer_value (json_object_get (first, "sequence")), 6);
    json_decref (results);
}

/*  The head the service reports (techfeed status). */
static long long s_head (tf_service_t *svc)
{
    assert_int_equal (s_cli (svc, NULL, "status", "--json"), 0);
    json_t *status = json_loads (s_out, 0, NULL);
    assert_non_null (status);
    long long head = json_integer_value (json_object_get (status, "head_sequence"));
    json_decref (status);
    return head;
}

/*  NDJSON of `n` records as large as validation lets them be (32 sources
    of 2000 characters: about 68 KB packed). Caller frees. */
static char *s_large_records (size_t n)
{
    char source[2100];
    snprintf (source, sizeof source, "\"https://example.org/%01990d", 0);
    size_t cap = n * 70000, len = 0;
    char *text = (char *) malloc (cap);
    assert_non_null (text);
    for (size_t i = 0; i < n; i++) {
        len += (size_t) snprintf (text + len, cap - len,
                                  "{\"id\":\"large-%zu\",\"sector\":\"space\",\"title\":\"A large "
                                  "record\",\"date\":\"2019-01-03\",\"sources\":[",
                                  i);
        for (int k = 0; k < 32; k++)
            len += (size_t) snprintf (text + len, cap - len, "%s%s-%d\"", k ? "," : "", source, k);
        len += (size_t) snprintf (text + len, cap - len, "]}\n");
    }
    return text;
}

static void test_put_over_one_frame (void **state)
{
    tf_service_t *svc = (tf_service_t *) *state;
    //  80 records, 5.4 MB: more than one request of the service's 4 MiB may
    //  hold (it would drop the connection, and put would wait for a reply)
    char *records = s_large_records (80);
    const char *path = s_file (svc, "large.ndjson", records);
    free (records);
    if (s_cli (svc, NULL, "put", path) != 0)
        fail_msg ("put of 5.4 MB: %s", s_err);
    json_t *results = s_out_json ();
    assert_int_equal (json_array_size (results), 80);
    json_decref (results);
    assert_int_equal (s_head (svc), 80);
    //  --atomic must send them in one request: refused here, said once
    assert_int_equal (s_cli (svc, NULL, "put", "--atomic", path), 65);
    assert_non_null (strstr (s_err, "TOO_LARGE: the request is "));
    assert_non_null (strstr (s_err, "--max-frame"));
    assert_int_equal (tf_test_count_text (s_err, "TOO_LARGE"), 1);
    assert_int_equal (s_head (svc), 80);
    //  A smaller frame: requests of one record each, all stored
    assert_int_equal (s_cli (svc, NULL, "put", "--max-frame", "100000", path), 0);
    assert_int_equal (s_head (svc), 160);
    //  A record no request under --max-frame can carry: refused as such,
    //  the records around it stored
    char *one = s_large_records (1);
    char mixed[80000];
    snprintf (mixed, sizeof mixed,
              "{\"id\":\"small-1\",\"sector\":\"ai\",\"title\":\"one\",\"date\":\"2020\"}\n%s"
              "{\"id\":\"small-2\",\"sector\":\"ai\",\"title\":\"two\",\"date\":\"2021\"}\n",
              one);
    free (one);
    path = s_file (svc, "mixed.ndjson", mixed);
    assert_int_equal (s_cli (svc, NULL, "put", "--max-frame", "20000", path), 65);
    assert_string_equal (s_out_ids (), "small-1 large-0 small-2");
    assert_non_null (strstr (s_out, "\"code\":\"TOO_LARGE\""));
    assert_non_null (strstr (s_err, "mixed.ndjson:2: the record makes a request of "));
    assert_non_null (strstr (s_err, "bytes, over --max-frame (20000)"));
    assert_int_equal (s_head (svc), 162);
    assert_int_equal (s_cli (svc, NULL, "put", "--max-frame", "1000", path), 78);
    assert_non_null (strstr (s_err, "--max-frame (TECHFEED_MAX_FRAME) from flag: '1000'"));
}

static void test_put_from_stdin (void **state)
{
    tf_service_t *svc = (tf_service_t *) *state;
    const char *one = "{\"id\":\"from-stdin\",\"sector\":\"quantum\",\"title\":\"Micius launched\","
                      "\"date\":\"2016-08-16\"}\n";
    assert_int_equal (s_cli (svc, one, "put", "-"), 0);
    assert_string_equal (s_out_ids (), "from-stdin");
    //  No file argument means stdin too; a JSON array and a pretty object work
    const char *array =
        "[{\"id\":\"arr-1\",\"sector\":\"ai\",\"title\":\"one\",\"date\":\"2020\"},\n"
        " {\"id\":\"arr-2\",\"sector\":\"ai\",\"title\":\"two\",\"date\":\"2021\"}]\n";
    assert_int_equal (s_cli (svc, array, "put"), 0);
    assert_string_equal (s_out_ids (), "arr-1 arr-2");
    const char *pretty = "{\n  \"id\": \"pretty\",\n  \"sector\": \"other\",\n  \"title\": \"x\",\n"
                         "  \"date\": \"2013-09-07\"\n}\n";
    assert_int_equal (s_cli (svc, pretty, "put", "-"), 0);
    assert_string_equal (s_out_ids (), "pretty");
    assert_int_equal (s_cli (svc, NULL, "get", "from-stdin", "arr-2", "pretty"), 0);
    assert_string_equal (s_out_ids (), "from-stdin arr-2 pretty");
    //  Nothing on stdin: no records, bad data
    assert_int_equal (s_cli (svc, "", "put", "-"), 65);
    assert_non_null (strstr (s_err, "no records"));
}

static void test_list_filters (void **state)
{
    tf_service_t *svc = (tf_service_t *) *state;
    s_put_milestones (svc);
    //  NDJSON by id when piped
    assert_int_equal (s_cli (svc, NULL, "list"), 0);
    assert_string_equal (s_out_ids (), "apollo-go-driverless-wuhan beijing-shanghai-hsr-opening "
                                       "change-4-far-side-landing smic-us-entity-list "
                                       "tianwen-1-zhurong-mars-landing");
    struct {
        const char *args[5];
        const char *ids;
    } cases[] = {
        { { "--sector", "space" }, "change-4-far-side-landing tianwen-1-zhurong-mars-landing" },
        { { "--sector", "space", "--sector", "rail" },
          "beijing-shanghai-hsr-opening change-4-far-side-landing tianwen-1-zhurong-mars-landing" },
        { { "--org", "CNSA" }, "change-4-far-side-landing tianwen-1-zhurong-mars-landing" },
        { { "--org", "SMIC" }, "smic-us-entity-list" },
        { { "--since", "2020" },
          "apollo-go-driverless-wuhan smic-us-entity-list tianwen-1-zhurong-mars-landing" },
        { { "--since", "2021-05-16" }, "apollo-go-driverless-wuhan" },
        { { "--sector", "space", "--since", "2020" }, "tianwen-1-zhurong-mars-landing" },
        { { "--until", "2019" }, "beijing-shanghai-hsr-opening change-4-far-side-landing" },
        { { "--country", "US" }, "smic-us-entity-list" },
        { { "--org", "Nobody" }, "" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *const *a = cases[i].args;
        assert_int_equal (s_cli (svc, NULL, "list", a[0], a[1], a[2], a[3]), 0);
        if (strcmp (s_out_ids (), cases[i].ids) != 0)
            fail_msg ("list %s %s %s %s: got [%s], expected [%s]", a[0], a[1], a[2] ? a[2] : "",
                      a[3] ? a[3] : "", s_out_ids (), cases[i].ids);
    }
    //  Records in full, as get prints them
    assert_int_equal (s_cli (svc, NULL, "list", "--sector", "rail"), 0);
    json_t *lines = s_out_json ();
    json_t *r = json_array_get (lines, 0);
    assert_string_equal (json_string_value (json_object_get (r, "title")),
                         "Beijing-Shanghai high-speed railway opens");
    assert_int_equal (json_integer_value (json_object_get (
                          json_array_get (json_object_get (r, "metrics"), 0), "value")),
                      1318);
    json_decref (lines);
}

static void test_delete (void **state)
{
    tf_service_t *svc = (tf_service_t *) *state;
    s_put_milestones (svc);
    assert_int_equal (s_cli (svc, NULL, "delete", "smic-us-entity-list"), 0);
    json_t *lines = s_out_json ();
    json_t *r = json_array_get (lines, 0);
    assert_string_equal (json_string_value (json_object_get (r, "id")), "smic-us-entity-list");
    assert_true (json_is_true (json_object_get (r, "ok")));
    assert_int_equal (json_integer_value (json_object_get (r, "sequence")), 6);
    json_decref (lines);
    assert_int_equal (s_cli (svc, NULL, "get", "smic-us-entity-list"), 1);
    assert_non_null (strstr (s_err, "smic-us-entity-list: not found"));
    //  Twice: not found, exit 1
    assert_int_equal (s_cli (svc, NULL, "delete", "smic-us-entity-list"), 1);
    assert_non_null (strstr (s_err, "not found"));
    assert_int_equal (s_cli (svc, NULL, "list", "--country", "US"), 0);
    assert_string_equal (s_out, "");
    assert_int_equal (s_cli (svc, NULL, "status", "--json"), 0);
    json_t *st = json_loads (s_out, 0, NULL);
    assert_int_equal (json_integer_value (json_object_get (st, "record_count")), 4);
    assert_int_equal (json_integer_value (json_object_get (st, "head_sequence")), 6);
    json_decref (st);
}

static void test_bad_ndjson_file (void **state)
{
    tf_service_t *svc = (tf_service_t *) *state;
    const char *text =
        "{\"id\":\"good-1\",\"sector\":\"space\",\"title\":\"fine\",\"date\":\"2019\"}\n"
        "{\"id\":\"Bad Id\",\"sector\":\"space\",\"title\":\"x\",\"date\":\"2019\"}\n"
        "{\"id\":\"bad-date\",\"sector\":\"rail\",\"title\":\"x\",\"date\":\"2023-02-30\"}\n"
        "{\"id\":\"no-title\",\"sector\":\"rail\",\"date\":\"2019\"}\n"
        "{\"id\":\"good-2\",\"sector\":\"rail\",\"title\":\"fine\",\"date\":\"2020-01\"}\n"
        "{\"id\":\"broken\" \"sector\":\"ai\"}\n"
        "{\"id\":\"bad-unit\",\"sector\":\"ai\",\"title\":\"x\",\"date\":\"2019\","
        "\"metrics\":[{\"name\":\"m\",\"value\":1,\"unit\":\"far too long a unit for any metric "
        "at all\"}]}\n"
        "{\"id\":\"good-3\",\"sector\":\"ai\",\"title\":\"fine\",\"date\":\"2021-12-30\"}\n"
        "{\"id\":\"unknown\",\"sector\":\"ai\",\"title\":\"x\",\"date\":\"2019\",\"colour\":1}\n";
    const char *path = s_file (svc, "bad.ndjson", text);
    assert_int_equal (s_cli (svc, NULL, "put", path), 65);
    print_message ("stderr:\n%s", s_err);
    //  One FILE:LINE: /field: message line per bad record
    struct {
        int line;
        const char *field;
    } bad[] = { { 2, "/id" }, { 3, "/date" },           { 4, "/title" },
                { 6, NULL },  { 7, "/metrics/0/unit" }, { 9, "/colour" } };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char prefix[500];
        snprintf (prefix, sizeof prefix, "%s:%d: %s%s", path, bad[i].line,
                  bad[i].field ? bad[i].field : "", bad[i].field ? ": " : "");
        const char *at = strstr (s_err, prefix);
        if (!at || (at != s_err && at[-1] != '\n'))
            fail_msg ("no line starting \"%s\" on stderr", prefix);
        const char *eol = strchr (at, '\n');
        assert_true (eol && eol - at > (ptrdiff_t) strlen (prefix)); // a message follows
    }
    char count[80];
    snprintf (count, sizeof count, "%s:", path);
    size_t n = 0;
    for (const char *p = s_err; (p = strstr (p, count)); p++)
        n++;
    assert_int_equal (n, 6);
    //  stdout: a result per record, ok or not, with its line, in file order
    json_t *results = s_out_json ();
    assert_int_equal (json_array_size (results), 9);
    for (size_t i = 0; i < json_array_size (results); i++)
        assert_int_equal (
            json_integer_value (json_object_get (json_array_get (results, i), "line")),
            (json_int_t) i + 1);
    json_decref (results);
    //  The good ones are stored, the bad ones not
    assert_int_equal (s_cli (svc, NULL, "list"), 0);
    assert_string_equal (s_out_ids (), "good-1 good-2 good-3");
    //  --atomic with a bad record: nothing
    const char *atomic = s_file (svc, "atomic.ndjson",
                                 "{\"id\":\"atomic-ok\",\"sector\":\"ai\",\"title\":\"t\","
                                 "\"date\":\"2019\"}\n{\"id\":\"atomic-bad\",\"sector\":\"ai\"}\n");
    assert_int_equal (s_cli (svc, NULL, "put", "--atomic", atomic), 65);
    assert_int_equal (s_cli (svc, NULL, "get", "atomic-ok"), 1);
}

// --------------------------------------------------------------- watch

/*  A CLI run in a thread of its own. */
typedef struct {
    tf_service_t *svc;
    const char *args[8];
    char *out, *err;
    int rc;
    atomic_bool done;
    pthread_t thread;
} s_background_t;

static void *s_background_main (void *arg)
{
    s_background_t *b = (s_background_t *) arg;
    const char *const *a = b->args;
    b->rc = tf_test_cli (b->svc, NULL, &b->out, &b->err, a[0], a[1], a[2], a[3], a[4], a[5], a[6],
                         NULL);
    atomic_store (&b->done, true);
    return NULL;
}

/*  One change made through the CLI while the watch runs. */
typedef struct {
    uint64_t sequence;
    char id[32];
    const char *op; /* add, update, delete */
    uint64_t revision;
    const char *sector;
} s_op_t;

/*  Change number k: put id K/3 in `sector` (k%3 == 0), put it again
    (1), delete it (2). */
static void s_change (tf_service_t *svc, int k, const char *sector, s_op_t *op)
{
    snprintf (op->id, sizeof op->id, "watched-%s-%d", sector, k / 3);
    op->sector = sector;
    op->op = k % 3 == 0 ? "add" : k % 3 == 1 ? "update" : "delete";
    if (k % 3 == 2)
        assert_int_equal (s_cli (svc, NULL, "delete", op->id), 0);
    else {
        char record[300];
        snprintf (record, sizeof record,
                  "{\"id\":\"%s\",\"sector\":\"%s\",\"title\":\"%s\",\"date\":\"2024\"}\n", op->id,
                  sector, k % 3 ? "second title" : "first title");
        assert_int_equal (s_cli (svc, record, "put", "-"), 0);
    }
    json_t *lines = s_out_json ();
    json_t *r = json_array_get (lines, 0);
    op->sequence = (uint64_t) json_integer_value (json_object_get (r, "sequence"));
    op->revision = (uint64_t) json_integer_value (json_object_get (r, "revision"));
    json_decref (lines);
}

/*  Runs `watch --json --count COUNT [--sector S]` in the background and
    makes changes until it exits: put, re-put, delete, in turn, in the
    sectors of `sectors` (cycled). Checks that it printed the records at
    its snapshot's sequence, then the next COUNT changes of its sectors. */
static void s_watch_while_changing (tf_service_t *svc, const char *count, const char *filter,
                                    const char *const *sectors, size_t n_sectors)
{
    s_background_t b = { .svc = svc, .args = { "watch", "--json", "--count", count } };
    if (filter) {
        b.args[4] = "--sector";
        b.args[5] = filter;
    }
    assert_int_equal (pthread_create (&b.thread, NULL, s_background_main, &b), 0);
    s_op_t ops[400];
    size_t n_ops = 0;
    int64_t deadline = zclock_mono () + 20000;
    //  Each change is a CLI run: they pace themselves; the watch exits after COUNT
    for (int k = 0; !atomic_load (&b.done) && zclock_mono () < deadline && n_ops < 400; k++)
        s_change (svc, k, sectors[(k / 3) % n_sectors], &ops[n_ops++]);
    pthread_join (b.thread, NULL);
    assert_int_equal (b.rc, 0);
    print_message ("watch --count %s%s%s exited after %zu changes were made; stderr: %s", count,
                   filter ? " --sector " : "", filter ? filter : "", n_ops, b.err);

    //  Its snapshot's sequence, from the notice on stderr
    const char *notice = strstr (b.err, " records at sequence ");
    assert_non_null (notice);
    uint64_t at = strtoull (notice + strlen (" records at sequence "), NULL, 10);
    json_t *lines = tf_test_ndjson (b.out);
    assert_non_null (lines);
    //  The snapshot first: the initial records and what the changes left at `at`
    zhashx_t *expected = zhashx_new ();
    for (size_t k = 0; k < 5; k++)
        if (!filter || (!strcmp (filter, "space") && strstr (s_ids[k], "landing")))
            zhashx_insert (expected, s_ids[k], (void *) 1);
    for (size_t i = 0; i < n_ops && ops[i].sequence <= at; i++) {
        if (filter && strcmp (ops[i].sector, filter) != 0)
            continue;
        if (!strcmp (ops[i].op, "delete"))
            zhashx_delete (expected, ops[i].id);
        else
            zhashx_update (expected, ops[i].id, (void *) (uintptr_t) ops[i].revision);
    }
    size_t i = 0;
    for (; i < json_array_size (lines); i++) {
        json_t *line = json_array_get (lines, i);
        if (strcmp (json_string_value (json_object_get (line, "kind")), "snapshot") != 0)
            break;
        json_t *record = json_object_get (line, "record");
        const char *id = json_string_value (json_object_get (record, "id"));
        uintptr_t revision = (uintptr_t) zhashx_lookup (expected, id);
        if (revision != (uintptr_t) json_integer_value (json_object_get (record, "revision")))
            fail_msg ("snapshot line %zu: %s not expected at this revision at seq %" PRIu64, i, id,
                      at);
    }
    assert_int_equal (i, zhashx_size (expected));
    zhashx_destroy (&expected);
    //  Then exactly the next changes of its sectors, in order
    size_t next = 0, changes = (size_t) atoi (count);
    for (; i < json_array_size (lines); i++, next++) {
        while (next < n_ops &&
               (ops[next].sequence <= at || (filter && strcmp (ops[next].sector, filter) != 0)))
            next++;
        assert_true (next < n_ops);
        json_t *line = json_array_get (lines, i);
        s_op_t *op = &ops[next];
        assert_int_equal (json_integer_value (json_object_get (line, "seq")), op->sequence);
        assert_string_equal (json_string_value (json_object_get (line, "op")), op->op);
        assert_string_equal (json_string_value (json_object_get (line, "id")), op->id);
        assert_string_equal (json_string_value (json_object_get (line, "sector")), op->sector);
        assert_int_equal (json_integer_value (json_object_get (line, "revision")), op->revision);
        assert_string_equal (json_string_value (json_object_get (line, "kind")),
                             strcmp (op->op, "delete") ? "put" : "delete");
        changes--;
    }
    assert_int_equal (changes, 0);
    json_decref (lines);
    free (b.out);
    free (b.err);
}

static void test_watch_snapshot_then_changes (void **state)
{
    tf_service_t *svc = (tf_service_t *) *state;
    s_put_milestones (svc);
    const char *sectors[] = { "space", "ai" };
    s_watch_while_changing (svc, "4", NULL, sectors, 2);
}

static void test_watch_filtered (void **state)
{
    tf_service_t *svc = (tf_service_t *) *state;
    s_put_milestones (svc);
    //  Changes in rail and space; the watch of space sees the space ones only
    const char *sectors[] = { "rail", "space" };
    s_watch_while_changing (svc, "3", "space", sectors, 2);
}

// --------------------------------------------------------------- failures

/*  A sync service that answers a snapshot's first chunk, then NOT_FOUND
    for its cursor, as one that restarted mid-list does. */
static void s_cut_short_actor (zsock_t *pipe, void *args)
{
    zsock_t *router = tf_fake_router ((char *) args, 128);
    zsock_signal (pipe, 0);
    zpoller_t *poller = zpoller_new (pipe, router, NULL);
    while (zpoller_wait (poller, -1) == router) {
        zframe_t *identity = NULL;
        Techfeed__SyncRequest *request = (Techfeed__SyncRequest *) tf_fake_recv (
            router, &techfeed__sync_request__descriptor, &identity);
        Techfeed__Milestone record, *records[] = { &record };
        techfeed__milestone__init (&record);
        record.id = (char *) "first-chunk";
        record.has_sector = record.has_revision = 1;
        record.sector = TECHFEED__SECTOR__SECTOR_SPACE;
        record.title = (char *) "in the first chunk";
        record.date = (char *) "2019";
        record.revision = 1;
        Techfeed__SyncReply reply;
        if (request && request->kind == TECHFEED__SYNC_KIND__SYNC_SNAPSHOT)
            tf_fake_snapshot_chunk (&reply, "0123456789abcdef0123456789abcdef", records, 1, false,
                                    0, NULL, 0);
        else {
            techfeed__sync_reply__init (&reply);
            reply.has_code = 1;
            reply.code = TECHFEED__ERROR_CODE__NOT_FOUND;
            reply.message = (char *) "cursor 42 is not open";
        }
        if (identity)
            tf_fake_reply (router, identity, &reply.base);
        if (request)
            protobuf_c_message_free_unpacked (&request->base, NULL);
        zframe_destroy (&identity);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&router);
}

static void test_list_cut_short (void **state)
{
    tf_service_t *svc = (tf_service_t *) *state;
    char endpoint[128];
    zactor_t *fake = zactor_new (s_cut_short_actor, endpoint);
    //  Not bad data (65): the snapshot ended early, and a new one may not
    int rc = s_cli (svc, NULL, "--sync", endpoint, "list", "--json");
    zactor_destroy (&fake);
    assert_int_equal (rc, 69);
    assert_non_null (strstr (s_err, "cursor 42 is not open"));
    assert_non_null (strstr (s_err, "the snapshot was cut short; run the command again"));
}

static void test_service_down (void **state)
{
    tf_service_t *svc = (tf_service_t *) *state;
    const char *path = s_file (svc, "milestones.ndjson", S_MILESTONES);
    //  Endpoints nobody serves: ipc files in our own directory (a TCP port
    //  freed by a stopped service may be taken by another at once)
    tf_service_t down = { 0 };
    snprintf (down.ingest, sizeof down.ingest, "ipc://%.100s/nobody-ingest", svc->dir);
    snprintf (down.events, sizeof down.events, "ipc://%.100s/nobody-events", svc->dir);
    snprintf (down.sync, sizeof down.sync, "ipc://%.100s/nobody-sync", svc->dir);
    const char *commands[][3] = { { "put", path },   { "get", "change-4-far-side-landing" },
                                  { "list" },        { "status" },
                                  { "delete", "x" }, { "watch" } };
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        char *out = NULL, *err = NULL;
        int64_t started = zclock_mono ();
        int rc = tf_test_cli (&down, NULL, &out, &err, "--timeout", "300", commands[i][0],
                              commands[i][1], NULL);
        print_message ("%s: exit %d after %lld ms: %s", commands[i][0], rc,
                       (long long) (zclock_mono () - started), err);
        assert_int_equal (rc, 69);
        assert_non_null (strstr (err, "service unavailable at ipc://"));
        free (out);
        free (err);
    }
    //  A put that got no answer says which records may not be stored
    char *out = NULL, *err = NULL;
    assert_int_equal (
        tf_test_cli (&down, S_MILESTONES, &out, &err, "--timeout", "300", "put", "-", NULL), 69);
    assert_non_null (strstr (err, "5 record(s) from line 1 on may not be stored"));
    free (out);
    free (err);
    //  The real service, stopped: the same
    assert_int_equal (tf_service_stop (svc, 10000), 0);
    assert_int_equal (s_cli (svc, NULL, "--timeout", "300", "status"), 69);
    assert_non_null (strstr (s_err, "service unavailable at tcp://127.0.0.1:"));
    assert_int_equal (s_cli (svc, NULL, "--timeout", "300", "put", path), 69);
    assert_non_null (strstr (s_err, "service unavailable at tcp://127.0.0.1:"));
    //  And up again on the same data: nothing of that was stored
    assert_int_equal (tf_service_start (svc, NULL), 0);
    assert_int_equal (s_cli (svc, NULL, "status", "--json"), 0);
    json_t *st = json_loads (s_out, 0, NULL);
    assert_int_equal (json_integer_value (json_object_get (st, "record_count")), 0);
    json_decref (st);
}

/*  Runs each case; every one must exit 64 with `message` on stderr. */
typedef struct {
    const char *args[5];
    const char *message;
} s_usage_t;

static void s_expect_usage (tf_service_t *svc, const s_usage_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *const *a = cases[i].args;
        int rc = s_cli (svc, NULL, a[0], a[1], a[2], a[3]);
        if (rc != 64 || !strstr (s_err, cases[i].message))
            fail_msg ("techfeed %s %s %s %s: exit %d (expected 64 and \"%s\"), stderr: %s",
                      a[0] ? a[0] : "", a[1] ? a[1] : "", a[2] ? a[2] : "", a[3] ? a[3] : "", rc,
                      cases[i].message, s_err);
    }
}

static void test_usage_errors (void **state)
{
    tf_service_t *svc = (tf_service_t *) *state;
    s_usage_t cases[] = {
        { { NULL }, "EXAMPLES" },
        { { "bogus" }, "'bogus' is not a command" },
        { { "--bogus", "list" }, "unknown option '--bogus'" },
        { { "get" }, "missing arguments" },
        { { "delete" }, "missing arguments" },
        { { "delete", "a", "b" }, "too many arguments" },
        { { "list", "extra" }, "too many arguments" },
        { { "list", "--since" }, "--since" },
        { { "put", "a", "b" }, "too many arguments" },
        { { "status", "extra" }, "too many arguments" },
        { { "help", "put", "extra" }, "extra argument 'extra'" },
        { { "help", "help", "more" }, "extra argument 'more'" },
        { { "help", "bogus" }, "'bogus' is not a command" },
    };
    s_expect_usage (svc, cases, sizeof cases / sizeof cases[0]);
    //  Help is not an error: examples first, exit 0
    assert_int_equal (s_cli (svc, NULL, "--help"), 0);
    assert_non_null (strstr (s_out, "EXAMPLES"));
    assert_true (strstr (s_out, "EXAMPLES") < strstr (s_out, "USAGE"));
    assert_non_null (strstr (s_out, "  help [COMMAND]"));
    assert_int_equal (s_cli (svc, NULL, "help", "watch"), 0);
    assert_true (strncmp (s_out, "EXAMPLES", 8) == 0);
    //  ... help among them, as --help lists it
    assert_int_equal (s_cli (svc, NULL, "help", "help"), 0);
    assert_true (strncmp (s_out, "EXAMPLES", 8) == 0);
    assert_non_null (strstr (s_out, "USAGE\n  techfeed help [COMMAND]\n"));
    assert_string_equal (s_err, "");
    //  A file that is not there: 66
    assert_int_equal (s_cli (svc, NULL, "put", "/nonexistent/milestones.ndjson"), 66);
    assert_non_null (strstr (s_err, "No such file"));
}

/*  get and delete of an id that is not there exit 1, and the help says
    so: --help's EXIT STATUS and the commands' own. */
static void test_not_found_exit_documented (void **state)
{
    tf_service_t *svc = (tf_service_t *) *state;
    assert_int_equal (s_cli (svc, NULL, "get", "no-such-id"), 1);
    assert_string_equal (s_err, "no-such-id: not found\n");
    assert_int_equal (s_cli (svc, NULL, "delete", "no-such-id"), 1);
    assert_non_null (strstr (s_err, "no-such-id: not found"));
    const char *helps[][2] = {
        { "--help", "\nEXIT STATUS\n  0 done, 1 not found (get, delete)," },
        { "get", "\nEXIT STATUS\n  0 all found, 1 some not found," },
        { "delete", "\nEXIT STATUS\n  0 deleted, 1 not found," },
    };
    for (size_t i = 0; i < sizeof helps / sizeof helps[0]; i++) {
        int rc = helps[i][0][0] == '-' ? s_cli (svc, NULL, helps[i][0])
                                       : s_cli (svc, NULL, "help", helps[i][0]);
        assert_int_equal (rc, 0);
        if (!strstr (s_out, helps[i][1]))
            fail_msg ("techfeed help %s: no \"%s\" in:\n%s", helps[i][0], helps[i][1], s_out);
    }
}

/*  A bad value of a command's own option, typed on the command line, is a
    usage error (64); a bad value of a setting (flag or TECHFEED_*
    variable) is a configuration error (78) naming both. */
static void test_bad_option_values (void **state)
{
    tf_service_t *svc = (tf_service_t *) *state;
    s_usage_t cases[] = {
        { { "list", "--since", "2019-13" }, "--since: '2019-13'" },
        { { "list", "--until", "x" }, "--until: 'x'" },
        { { "watch", "--count", "abc" }, "--count: 'abc'" },
        { { "put", "--expect-revision", "x", "a" }, "--expect-revision: 'x'" },
    };
    s_expect_usage (svc, cases, sizeof cases / sizeof cases[0]);
    assert_int_equal (s_cli (svc, NULL, "list", "--sector", "bogus"), 78);
    assert_non_null (
        strstr (s_err, "--sector (TECHFEED_SECTOR) from flag: 'bogus' is not a sector"));
    assert_int_equal (s_cli (svc, NULL, "--timeout", "abc", "status"), 78);
    assert_non_null (strstr (s_err, "--timeout (TECHFEED_TIMEOUT) from flag: 'abc'"));
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_put_file_then_get, tf_test_setup_service, teardown),
        cmocka_unit_test_setup_teardown (test_put_from_stdin, tf_test_setup_service, teardown),
        cmocka_unit_test_setup_teardown (test_put_over_one_frame, tf_test_setup_service, teardown),
        cmocka_unit_test_setup_teardown (test_list_filters, tf_test_setup_service, teardown),
        cmocka_unit_test_setup_teardown (test_delete, tf_test_setup_service, teardown),
        cmocka_unit_test_setup_teardown (test_bad_ndjson_file, tf_test_setup_service, teardown),
        cmocka_unit_test_setup_teardown (test_watch_snapshot_then_changes, tf_test_setup_service,
                                         teardown),
        cmocka_unit_test_setup_teardown (test_watch_filtered, tf_test_setup_service, teardown),
        cmocka_unit_test_setup_teardown (test_service_down, tf_test_setup_service, teardown),
        cmocka_unit_test_setup_teardown (test_list_cut_short, tf_test_setup_service, teardown),
        cmocka_unit_test_setup_teardown (test_usage_errors, tf_test_setup_service, teardown),
        cmocka_unit_test_setup_teardown (test_bad_option_values, tf_test_setup_service, teardown),
        cmocka_unit_test_setup_teardown (test_not_found_exit_documented, tf_test_setup_service,
                                         teardown),
    };
    return cmocka_run_group_tests_name ("cli", tests, NULL, NULL);
}
