/*  `techfeed mirror` against the real service (issue 3 item 8, PROTOCOL.md
    §9 rule 7): a mirror file converges to the service's digest (all
    sectors, and two sectors through TECHFEED_SECTOR), stops on SIGTERM
    with exit 0, resumes with a catch-up (not a snapshot) after a restart,
    survives kill -9 in the middle of a long catch-up (intact file, records
    exactly those of its stored position, then convergence), and resyncs
    when the service's epoch changes, running or restarted. A file keeps
    its sectors: another --sector is refused, --status too, and the
    refused run leaves no -wal or -shm behind.

    Writes go through libtechfeed's writer; the mirror's file is read with
    tf_view_store_status while the mirror runs. Every wait is bounded.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "techfeed.h"
#include "tf_spawn.h"
#include "tf_sqlcheck.h"
#include "tf_testkit.h"
#include "tf_wire.h"

#define CONVERGE_MS 60000 /* bound of every wait for a mirror to converge */
#define STOP_MS 10000     /* bound of a mirror's exit after SIGTERM */
#define BATCH 1000        /* records per write request */
#define SPACE TECHFEED__SECTOR__SECTOR_SPACE
#define RAIL TECHFEED__SECTOR__SECTOR_HIGH_SPEED_RAIL

/*  One change the test made: what a file at a position must hold. */
typedef struct {
    char id[32];
    uint64_t revision; /* 0: deleted */
    uint64_t sequence;
} change_t;

typedef struct {
    tf_service_t svc;
    char dir[300];       /* svc.dir/clients: mirror files and their output */
    tf_writer_t *writer; /* puts and deletes */
    tf_query_t *query;   /* the service's status */
    change_t *changes;   /* every change made, in sequence order */
    size_t n_changes, cap;
} fixture_t;

static int setup (void **state)
{
    fixture_t *f = (fixture_t *) calloc (1, sizeof *f);
    if (tf_service_start (&f->svc, NULL) != 0)
        return -1;
    snprintf (f->dir, sizeof f->dir, "%s/clients", f->svc.dir);
    if (zsys_dir_create ("%s", f->dir) != 0)
        return -1;
    f->writer = tf_writer_new (f->svc.ingest);
    f->query = tf_query_new (f->svc.sync);
    tf_writer_set_timeout (f->writer, 10000);
    tf_query_set_timeout (f->query, 10000);
    *state = f;
    return 0;
}

static int teardown (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    tf_writer_destroy (&f->writer);
    tf_query_destroy (&f->query);
    int rc = tf_service_stop (&f->svc, 10000);
    tf_service_cleanup (&f->svc);
    free (f->changes);
    free (f);
    return rc == 0 ? 0 : -1;
}

// --------------------------------------------------------------- writing

static void s_note (fixture_t *f, const char *id, uint64_t revision, uint64_t sequence)
{
    if (f->n_changes == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 1024;
        f->changes = (change_t *) realloc (f->changes, f->cap * sizeof *f->changes);
        assert_non_null (f->changes);
    }
    change_t *c = &f->changes[f->n_changes++];
    snprintf (c->id, sizeof c->id, "%s", id);
    c->revision = revision;
    c->sequence = sequence;
}

/*  Puts records PREFIX-from .. PREFIX-(to-1), sector by number, in
    requests of BATCH; a record already there gets a new revision. */
static void s_put (fixture_t *f, const char *prefix, int from, int to)
{
    Techfeed__Milestone storage[BATCH], *records[BATCH];
    char ids[BATCH][32];
    tf_result_t results[BATCH];
    for (int i = from; i < to; i += BATCH) {
        size_t n = (size_t) (to - i < BATCH ? to - i : BATCH);
        for (size_t j = 0; j < n; j++) {
            snprintf (ids[j], sizeof ids[j], "%s-%06d", prefix, i + (int) j);
            Techfeed__Milestone *r = &storage[j];
            techfeed__milestone__init (r);
            r->id = ids[j];
            r->has_sector = 1;
            r->sector = (Techfeed__Sector) (1 + (i + (int) j) % TF_SECTOR_MAX);
            r->title = (char *) "Chang'e-4 lands on the far side of the Moon";
            r->date = (char *) "2019-01-03";
            records[j] = r;
        }
        assert_int_equal (tf_writer_put (f->writer, records, n, false, results), 0);
        for (size_t j = 0; j < n; j++) {
            assert_int_equal (results[j].code, TECHFEED__ERROR_CODE__OK);
            s_note (f, ids[j], results[j].revision, results[j].sequence);
        }
    }
}

static void s_delete (fixture_t *f, const char *prefix, int from, int to)
{
    for (int i = from; i < to; i++) {
        char id[32];
        snprintf (id, sizeof id, "%s-%06d", prefix, i);
        tf_result_t result;
        assert_int_equal (tf_writer_delete (f->writer, id, false, 0, &result), 0);
        assert_int_equal (result.code, TECHFEED__ERROR_CODE__OK);
        s_note (f, id, 0, result.sequence);
    }
}

/*  Count and digest of what the changes made up to `position` leave. */
static void s_expected (fixture_t *f, uint64_t position, uint64_t *count, uint64_t *digest)
{
    zhashx_t *latest = zhashx_new (); // id -> change_t *
    for (size_t i = 0; i < f->n_changes && f->changes[i].sequence <= position; i++)
        zhashx_update (latest, f->changes[i].id, &f->changes[i]);
    *count = *digest = 0;
    for (change_t *c = (change_t *) zhashx_first (latest); c; c = (change_t *) zhashx_next (latest))
        if (c->revision) {
            (*count)++;
            *digest += tf_digest_item (c->id, c->revision);
        }
    zhashx_destroy (&latest);
}

// --------------------------------------------------------------- the mirror

static const char *s_path (fixture_t *f, const char *name)
{
    static char path[4][400];
    static int next;
    char *slot = path[next++ % 4];
    snprintf (slot, 400, "%s/%s", f->dir, name);
    return slot;
}

/*  `techfeed mirror --db DIR/NAME.db` (+ env), output in DIR/NAME.err. */
static void s_mirror_start (fixture_t *f, tf_spawn_t *mirror, const char *name,
                            const char *const *env)
{
    char db[400];
    snprintf (db, sizeof db, "%s/%s.db", f->dir, name);
    const char *argv[] = { tf_test_program ("techfeed"), "mirror", "--db", db, NULL };
    assert_int_equal (tf_spawn_start (mirror, &f->svc, f->dir, name, argv, env), 0);
}

static void s_mirror_stop (tf_spawn_t *mirror)
{
    assert_int_equal (tf_spawn_stop (mirror, SIGTERM, STOP_MS), 0);
}

/*  What a mirror should equal: the service's digest of its sectors. */
typedef struct {
    fixture_t *f;
    const char *db;                  /* the mirror file */
    const Techfeed__Sector *sectors; /* NULL: all */
    size_t n_sectors;
    tf_view_store_status_t file; /* last read */
    uint64_t count, digest;      /* last asked of the service */
    char epoch[33];
} target_t;

static int s_sum (const Techfeed__Milestone *record, void *arg)
{
    target_t *t = (target_t *) arg;
    t->count++;
    t->digest += tf_digest_item (record->id, record->revision);
    return 0;
}

static bool s_converged (void *arg)
{
    target_t *t = (target_t *) arg;
    char err[600];
    if (tf_view_store_status (t->db, &t->file, err, sizeof err) != 0)
        return false; // not made yet
    tf_status_t st;
    assert_int_equal (tf_query_status (t->f->query, &st), 0);
    snprintf (t->epoch, sizeof t->epoch, "%s", st.epoch);
    t->count = st.record_count;
    t->digest = st.digest;
    if (t->n_sectors) {
        Techfeed__Filter filter = TECHFEED__FILTER__INIT;
        filter.n_sectors = t->n_sectors;
        filter.sectors = (Techfeed__Sector *) t->sectors;
        t->count = t->digest = 0;
        assert_int_equal (tf_query_list (t->f->query, &filter, s_sum, t), 0);
    } else if (t->file.position != st.head_sequence)
        return false;
    return strcmp (t->file.epoch, st.epoch) == 0 && t->file.record_count == t->count &&
           t->file.digest == t->digest;
}

static void s_assert_converges (fixture_t *f, const char *name, const Techfeed__Sector *sectors,
                                size_t n_sectors)
{
    target_t t = { .f = f, .db = s_path (f, name), .sectors = sectors, .n_sectors = n_sectors };
    if (!tf_test_wait_for (s_converged, &t, CONVERGE_MS))
        fail_msg ("%s: %" PRIu64 " records, digest %016" PRIx64 ", position %" PRIu64
                  ", epoch %s; the service: %" PRIu64 " records, digest %016" PRIx64 ", epoch %s",
                  t.db, t.file.record_count, t.file.digest, t.file.position, t.file.epoch, t.count,
                  t.digest, t.epoch);
    print_message ("%s: %" PRIu64 " records at position %" PRIu64 ", digest %016" PRIx64
                   " = the service's\n",
                   name, t.file.record_count, t.file.position, t.file.digest);
}

static void s_assert_intact (const char *path)
{
    char why[300];
    if (!tf_sql_intact (path, why, sizeof why))
        fail_msg ("%s: integrity_check: %s", path, why);
}

/*  One integer from plain SQL on the mirror file, as another program would. */
static int64_t s_sql (const char *path, const char *sql)
{
    int64_t value = 0;
    if (tf_sql_int (path, sql, &value) != 0)
        fail_msg ("%s: %s: failed", path, sql);
    return value;
}

/*  The database at `path` was closed: no -wal or -shm file beside it. */
static void s_assert_closed (const char *path)
{
    const char *suffixes[] = { "-wal", "-shm" };
    for (size_t i = 0; i < 2; i++) {
        char beside[450];
        snprintf (beside, sizeof beside, "%s%s", path, suffixes[i]);
        if (access (beside, F_OK) == 0)
            fail_msg ("%s is left: %s was not closed", beside, path);
    }
}

/*  Starts mirror NAME, waits until it converges, stops it (SIGTERM). */
static void s_mirror_session (fixture_t *f, tf_spawn_t *mirror, const char *name)
{
    char db[64];
    snprintf (db, sizeof db, "%s.db", name);
    s_mirror_start (f, mirror, name, NULL);
    s_assert_converges (f, db, NULL, 0);
    s_mirror_stop (mirror);
}

// --------------------------------------------------------------- tests

static void test_converges (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    s_put (f, "r", 0, 300);
    tf_spawn_t all = { 0 }, two = { 0 };
    s_mirror_start (f, &all, "all", NULL);
    const char *env[] = { "TECHFEED_SECTOR=space,rail", NULL };
    s_mirror_start (f, &two, "two", env);
    const Techfeed__Sector space_rail[] = { SPACE, RAIL };
    s_assert_converges (f, "all.db", NULL, 0);
    s_assert_converges (f, "two.db", space_rail, 2);

    //  Live: updates and deletes while they run
    s_put (f, "r", 0, 50);
    s_delete (f, "r", 50, 60);
    s_put (f, "s", 0, 40);
    s_assert_converges (f, "all.db", NULL, 0);
    s_assert_converges (f, "two.db", space_rail, 2);
    assert_true (tf_spawn_count_text (all.err, "live: ") >= 1);

    //  --status reads the file: the service's digest
    char *out = NULL, *err = NULL;
    const char *argv[] = { tf_test_program ("techfeed"), "mirror", "--status", "--json", "--db",
                           s_path (f, "all.db"),         NULL };
    assert_int_equal (tf_test_run (NULL, argv, NULL, &out, &err, 20000), 0);
    json_t *status = json_loads (out, 0, NULL);
    assert_non_null (status);
    tf_status_t st;
    assert_int_equal (tf_query_status (f->query, &st), 0);
    char hex[17];
    tf_digest_format (st.digest, hex);
    assert_string_equal (json_string_value (json_object_get (status, "digest")), hex);
    assert_int_equal (json_integer_value (json_object_get (status, "position")), st.head_sequence);
    json_decref (status);
    free (out);
    free (err);

    //  SIGTERM: exit 0; the files answer plain SQL, and the last line says
    //  what the file holds
    s_mirror_stop (&all);
    s_mirror_stop (&two);
    char said[600];
    snprintf (said, sizeof said, "stopped: %s holds %" PRIu64 " records at position %" PRIu64,
              s_path (f, "all.db"), st.record_count, st.head_sequence);
    assert_int_equal (tf_spawn_count_text (all.err, said), 1);
    s_assert_intact (s_path (f, "all.db"));
    assert_int_equal (s_sql (s_path (f, "all.db"), "SELECT count(*) FROM records"),
                      st.record_count);
    assert_int_equal (
        s_sql (s_path (f, "two.db"), "SELECT count(*) FROM records WHERE sector NOT IN (5, 6)"), 0);
    assert_int_equal (s_sql (s_path (f, "all.db"),
                             "SELECT count(*) FROM records, json_each (records.organizations)"),
                      0);
}

static void test_restart_catches_up (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    s_put (f, "r", 0, 100);
    tf_spawn_t mirror = { 0 };
    s_mirror_session (f, &mirror, "m");
    assert_int_equal (tf_spawn_count_text (mirror.err, "snapshot: "), 1);

    //  Away: writes, then back
    s_put (f, "r", 0, 20);
    s_put (f, "r", 100, 250);
    s_delete (f, "r", 20, 30);
    s_mirror_session (f, &mirror, "m");
    char *log = tf_spawn_read (mirror.err);
    print_message ("%s", log);
    free (log);
    assert_int_equal (tf_spawn_count_text (mirror.err, "snapshot: "), 1); // no second one
    assert_int_equal (tf_spawn_count_text (mirror.err, "catch-up: "), 1);
    assert_int_equal (tf_spawn_count_text (mirror.err, "caught up from the stored position"), 1);
}

/*  kill -9 while a catch-up of 20000 changes is being written, chunk by
    chunk: the file is intact and holds exactly what the changes up to its
    stored position make; restarted, the mirror converges. Tried up to
    three times in case a catch-up was over before the kill reached it. */
static void test_kill_during_catchup (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    s_put (f, "r", 0, 100);
    tf_spawn_t mirror = { 0 };
    s_mirror_session (f, &mirror, "k");
    bool midway = false;
    for (int attempt = 0; attempt < 3 && !midway; attempt++) {
        s_put (f, "bulk", attempt * 20000, (attempt + 1) * 20000);
        tf_status_t st;
        assert_int_equal (tf_query_status (f->query, &st), 0);
        int lines = tf_spawn_count_text (mirror.err, "catch-up: ");
        s_mirror_start (f, &mirror, "k", NULL);
        //  The first chunk is in: kill it now
        assert_true (tf_spawn_wait_text (mirror.err, "catch-up: ", lines + 1, CONVERGE_MS));
        assert_int_equal (tf_spawn_stop (&mirror, SIGKILL, STOP_MS), 128 + SIGKILL);

        s_assert_intact (s_path (f, "k.db"));
        tf_view_store_status_t file;
        char err[600];
        assert_int_equal (tf_view_store_status (s_path (f, "k.db"), &file, err, sizeof err), 0);
        uint64_t count, digest;
        s_expected (f, file.position, &count, &digest);
        print_message ("killed at position %" PRIu64 " of %" PRIu64 ": %" PRIu64
                       " records, digest %016" PRIx64 " (expected %" PRIu64 ", %016" PRIx64 ")\n",
                       file.position, st.head_sequence, file.record_count, file.digest, count,
                       digest);
        assert_int_equal (file.record_count, count);
        assert_int_equal (file.digest, digest);
        midway = file.position < st.head_sequence;
    }
    assert_true (midway);
    s_mirror_session (f, &mirror, "k");
    assert_int_equal (tf_spawn_count_text (mirror.err, "snapshot: "), 1); // resumed each time
}

/*  A new database behind the same endpoints (new epoch): a running mirror
    resyncs, and so does one that was away. */
static void test_epoch_change (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    s_put (f, "r", 0, 50);
    tf_spawn_t running = { 0 }, away = { 0 };
    s_mirror_start (f, &running, "running", NULL);
    s_mirror_start (f, &away, "away", NULL);
    s_assert_converges (f, "running.db", NULL, 0);
    s_assert_converges (f, "away.db", NULL, 0);
    s_mirror_stop (&away);
    tf_status_t before;
    assert_int_equal (tf_query_status (f->query, &before), 0);

    assert_int_equal (tf_service_stop (&f->svc, 10000), 0);
    char data[400];
    snprintf (data, sizeof data, "%s/data", f->svc.dir);
    tf_test_rmtree (data);
    assert_int_equal (tf_service_start (&f->svc, NULL), 0);
    f->n_changes = 0; // a new history
    s_put (f, "new", 0, 20);
    tf_status_t after;
    assert_int_equal (tf_query_status (f->query, &after), 0);
    assert_string_not_equal (after.epoch, before.epoch);

    s_assert_converges (f, "running.db", NULL, 0);
    assert_true (tf_spawn_count_text (running.err, "resync: ") >= 1);
    assert_int_equal (tf_spawn_count_text (running.err, "snapshot: "), 2);
    s_mirror_stop (&running);

    s_mirror_session (f, &away, "away");
    assert_int_equal (tf_spawn_count_text (away.err, "snapshot: "), 2);
    assert_true (tf_spawn_count_text (away.err, "resync: ") >= 1);
}

/*  A file keeps its sectors: another filter is refused with 78, named. */
static void test_other_filter_refused (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    s_put (f, "r", 0, 10);
    tf_spawn_t mirror = { 0 };
    s_mirror_session (f, &mirror, "f");
    char *out = NULL, *err = NULL;
    const char *argv[] = { tf_test_program ("techfeed"),
                           "mirror",
                           "--db",
                           s_path (f, "f.db"),
                           "--sector",
                           "space",
                           NULL };
    assert_int_equal (tf_test_run (&f->svc, argv, NULL, &out, &err, 20000), 78);
    assert_non_null (strstr (err, "mirrors sectors 'all', not 'space'"));
    free (out);
    free (err);
    s_assert_closed (s_path (f, "f.db"));
    //  Not a mirror file: the service's own database
    char db[400];
    snprintf (db, sizeof db, "%s/data/techfeed.db", f->svc.dir);
    const char *foreign[] = { tf_test_program ("techfeed"), "mirror", "--db", db, NULL };
    assert_int_equal (tf_test_run (&f->svc, foreign, NULL, &out, &err, 20000), 65);
    assert_non_null (strstr (err, "is a techfeed-ingestd database, not a mirror file"));
    free (out);
    free (err);
}

/*  --status with another --sector than the file's is refused as the
    mirror refuses it: 78, the same message, nothing on stdout; without
    --sector, or with the file's own, it prints. Every run closes the
    file: no -wal or -shm is left. */
static void test_status_other_filter_refused (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    s_put (f, "r", 0, 20);
    tf_spawn_t mirror = { 0 };
    const char *env[] = { "TECHFEED_SECTOR=rail", NULL };
    s_mirror_start (f, &mirror, "rail", env);
    const Techfeed__Sector rail[] = { RAIL };
    s_assert_converges (f, "rail.db", rail, 1);
    s_mirror_stop (&mirror);
    const char *db = s_path (f, "rail.db");
    s_assert_closed (db);
    char *out = NULL, *err = NULL, *refusal = NULL;
    assert_int_equal (tf_test_cli (&f->svc, NULL, &out, &refusal, "mirror", "--quiet", "--db", db,
                                   "--sector", "space", NULL),
                      78);
    assert_non_null (strstr (refusal, "mirrors sectors 'rail', not 'space'"));
    s_assert_closed (db);
    free (out);
    assert_int_equal (tf_test_cli (NULL, NULL, &out, &err, "mirror", "--status", "--db", db,
                                   "--sector", "space", NULL),
                      78);
    assert_string_equal (err, refusal);
    assert_string_equal (out, "");
    s_assert_closed (db);
    free (out);
    free (err);
    free (refusal);
    //  Without --sector, and with the file's own, it prints
    const char *const sectors[][3] = { { "--json", NULL }, { "--json", "--sector", "rail" } };
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal (tf_test_cli (NULL, NULL, &out, &err, "mirror", "--status", "--db", db,
                                       sectors[i][0], sectors[i][1], sectors[i][2], NULL),
                          0);
        json_t *status = json_loads (out, 0, NULL);
        assert_non_null (status);
        json_t *file_sectors = json_object_get (status, "sectors");
        assert_int_equal (json_array_size (file_sectors), 1);
        assert_string_equal (json_string_value (json_array_get (file_sectors, 0)), "rail");
        json_decref (status);
        s_assert_closed (db);
        free (out);
        free (err);
    }
}

int main (void)
{
    zsys_init ();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_converges, setup, teardown),
        cmocka_unit_test_setup_teardown (test_restart_catches_up, setup, teardown),
        cmocka_unit_test_setup_teardown (test_kill_during_catchup, setup, teardown),
        cmocka_unit_test_setup_teardown (test_epoch_change, setup, teardown),
        cmocka_unit_test_setup_teardown (test_other_filter_refused, setup, teardown),
        cmocka_unit_test_setup_teardown (test_status_other_filter_refused, setup, teardown),
    };
    return cmocka_run_group_tests_name ("techfeed mirror", tests, NULL, NULL);
}
