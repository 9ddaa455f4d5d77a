/*  tf_vfs: a connection opened with it commits like one on SQLite's
    default VFS (what other connections see, after a crash, on a full
    disk), in a few large writes instead of two per WAL page, and into
    WAL space written ahead when asked. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tf_testkit.h"
#include "tf_vfs.h"

typedef struct {
    char *dir;
    char path[300];
    sqlite3 *writer; /* through tf_vfs */
    sqlite3 *reader; /* SQLite's default VFS, read-only */
} s_fixture_t;

static void s_exec (sqlite3 *db, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec (db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        fail_msg ("%s: %s", sql, err ? err : sqlite3_errstr (rc));
}

static sqlite3 *s_open_writer (const char *path, const char *vfs)
{
    sqlite3 *db = NULL;
    assert_int_equal (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs),
                      SQLITE_OK);
    s_exec (db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL");
    return db;
}

static int64_t s_int (sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt;
    assert_int_equal (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL), SQLITE_OK);
    assert_int_equal (sqlite3_step (stmt), SQLITE_ROW);
    int64_t value = sqlite3_column_int64 (stmt, 0);
    sqlite3_finalize (stmt);
    return value;
}

static void s_assert_intact (sqlite3 *db)
{
    sqlite3_stmt *stmt;
    assert_int_equal (sqlite3_prepare_v2 (db, "PRAGMA integrity_check", -1, &stmt, NULL),
                      SQLITE_OK);
    assert_int_equal (sqlite3_step (stmt), SQLITE_ROW);
    assert_string_equal ((const char *) sqlite3_column_text (stmt, 0), "ok");
    sqlite3_finalize (stmt);
}

/*  Appends `rows` rows of 1,000 random bytes (a page holds three or four)
    in the open transaction. */
/*  The statement that inserts `rows` rows into `sql`. */
static void s_insert_sql (char *sql, size_t size, int rows)
{
    snprintf (sql, size,
              "WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d)"
              " INSERT INTO t (x) SELECT randomblob (1000) FROM n",
              rows);
}

static void s_insert (sqlite3 *db, int rows)
{
    char sql[200];
    s_insert_sql (sql, sizeof sql, rows);
    s_exec (db, sql);
}

/*  What a forked child uses instead, with no cmocka (a failed assert
    would run the rest of the suite in the child): a step that fails
    exits with `code`, the reason on stderr, and the parent reports it
    (s_reopen_after_kill). */
static void s_child_exec (sqlite3 *db, const char *sql, int code)
{
    char *err = NULL;
    int rc = sqlite3_exec (db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK) {
        fprintf (stderr, "child: %.60s: %s\n", sql, err ? err : sqlite3_errstr (rc));
        _exit (code);
    }
}

static sqlite3 *s_child_open_writer (const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, tf_vfs_name ()) !=
        SQLITE_OK) {
        fprintf (stderr, "child: cannot open %s\n", path);
        _exit (2);
    }
    s_child_exec (db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL", 3);
    return db;
}

static void s_child_insert (sqlite3 *db, int rows, int code)
{
    char sql[200];
    s_insert_sql (sql, sizeof sql, rows);
    s_child_exec (db, sql, code);
}

/*  Appends `rows` rows in a transaction of their own. */
static void s_commit_rows (sqlite3 *db, int rows)
{
    s_exec (db, "BEGIN IMMEDIATE");
    s_insert (db, rows);
    s_exec (db, "COMMIT");
}

static int setup (void **state)
{
    assert_non_null (tf_vfs_name ());
    s_fixture_t *fx = (s_fixture_t *) calloc (1, sizeof *fx);
    fx->dir = tf_test_tempdir ();
    snprintf (fx->path, sizeof fx->path, "%s/vfs.db", fx->dir);
    fx->writer = s_open_writer (fx->path, tf_vfs_name ());
    s_exec (fx->writer, "CREATE TABLE t (id INTEGER PRIMARY KEY, x BLOB)");
    assert_int_equal (sqlite3_open_v2 (fx->path, &fx->reader, SQLITE_OPEN_READONLY, NULL),
                      SQLITE_OK);
    *state = fx;
    return 0;
}

static int teardown (void **state)
{
    s_fixture_t *fx = (s_fixture_t *) *state;
    sqlite3_close (fx->reader);
    sqlite3_close (fx->writer);
    tf_test_rmtree (fx->dir);
    free (fx->dir);
    free (fx);
    return 0;
}

/*  Commits of one page, of more than one write (64 KiB) and of more than
    the buffer (1 MiB), synced and not: another connection sees none of a
    transaction before its COMMIT and all of it after. */
static void test_commits_seen_whole (void **state)
{
    s_fixture_t *fx = (s_fixture_t *) *state;
    const int sizes[] = { 1, 100, 2000, 1, 100, 2000 };
    int64_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        if (i == 3) // as the applier commits: no sync, the index tells
            s_exec (fx->writer, "PRAGMA synchronous = NORMAL");
        s_exec (fx->writer, "BEGIN IMMEDIATE");
        s_insert (fx->writer, sizes[i]);
        assert_int_equal (s_int (fx->reader, "SELECT count(*) FROM t"), total);
        s_exec (fx->writer, "COMMIT");
        total += sizes[i];
        assert_int_equal (s_int (fx->reader, "SELECT count(*) FROM t"), total);
        s_assert_intact (fx->reader);
    }
    s_assert_intact (fx->writer);
}

/*  A transaction larger than the page cache spills frames into the WAL
    before its COMMIT; the writer reads them back, nobody else sees them,
    and a ROLLBACK leaves the committed rows as they were. */
static void test_spilled_transaction (void **state)
{
    s_fixture_t *fx = (s_fixture_t *) *state;
    s_commit_rows (fx->writer, 50);
    s_exec (fx->writer, "PRAGMA cache_size = 20");
    s_exec (fx->writer, "BEGIN IMMEDIATE");
    s_insert (fx->writer, 2000);
    assert_int_equal (s_int (fx->writer, "SELECT count(*) FROM t"), 2050);
    assert_int_equal (s_int (fx->writer, "SELECT sum(length (x)) FROM t"), 2050 * 1000);
    assert_int_equal (s_int (fx->reader, "SELECT count(*) FROM t"), 50);
    s_exec (fx->writer, "ROLLBACK");
    assert_int_equal (s_int (fx->writer, "SELECT count(*) FROM t"), 50);
    assert_int_equal (s_int (fx->reader, "SELECT count(*) FROM t"), 50);
    s_commit_rows (fx->writer, 300);
    assert_int_equal (s_int (fx->reader, "SELECT count(*) FROM t"), 350);
    s_assert_intact (fx->reader);
}

/*  Write system calls this process made so far (/proc/self/io). */
static long s_write_calls (void)
{
    FILE *file = fopen ("/proc/self/io", "r");
    assert_non_null (file);
    char line[128];
    long calls = -1;
    while (fgets (line, sizeof line, file))
        if (sscanf (line, "syscw: %ld", &calls) == 1)
            break;
    fclose (file);
    assert_true (calls >= 0);
    return calls;
}

/*  Write calls one COMMIT of `rows` rows took on `db`. */
static long s_commit_writes (sqlite3 *db, int rows)
{
    s_exec (db, "BEGIN IMMEDIATE");
    s_insert (db, rows);
    long before = s_write_calls ();
    s_exec (db, "COMMIT");
    return s_write_calls () - before;
}

/*  The point of the VFS: a commit of about 200 pages is a handful of
    writes, where the default VFS makes two per page. */
static void test_commit_writes_few (void **state)
{
    s_fixture_t *fx = (s_fixture_t *) *state;
    long gathered = s_commit_writes (fx->writer, 600);
    char plain_path[320];
    snprintf (plain_path, sizeof plain_path, "%s/plain.db", fx->dir);
    sqlite3 *plain = s_open_writer (plain_path, NULL);
    s_exec (plain, "CREATE TABLE t (id INTEGER PRIMARY KEY, x BLOB)");
    long separate = s_commit_writes (plain, 600);
    sqlite3_close (plain);
    assert_true (separate >= 2 * 150); // two per page, about 170 pages
    assert_true (gathered <= 20);      // 64 KiB each, and the WAL header
    assert_int_equal (s_int (fx->reader, "SELECT count(*) FROM t"), 600);
}

/*  The child `pid` killed itself: the database opens again with the
    `committed` rows, intact, and takes more. */
static void s_reopen_after_kill (s_fixture_t *fx, pid_t pid, int64_t committed)
{
    int status = 0;
    assert_int_equal (waitpid (pid, &status, 0), pid);
    if (WIFEXITED (status))
        fail_msg ("the child failed before it killed itself: exit %d", WEXITSTATUS (status));
    assert_true (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL);
    sqlite3_close (fx->writer);
    fx->writer = s_open_writer (fx->path, tf_vfs_name ());
    assert_int_equal (s_int (fx->writer, "SELECT count(*) FROM t"), committed);
    s_assert_intact (fx->writer);
    s_commit_rows (fx->writer, 10);
    assert_int_equal (s_int (fx->reader, "SELECT count(*) FROM t"), committed + 10);
}

/*  Killed with a transaction's frames in the buffer and in the file: the
    database opens with the committed rows only. */
static void test_killed_mid_transaction (void **state)
{
    s_fixture_t *fx = (s_fixture_t *) *state;
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        sqlite3 *db = s_child_open_writer (fx->path);
        s_child_exec (db, "BEGIN IMMEDIATE", 4);
        s_child_insert (db, 120, 5);
        s_child_exec (db, "COMMIT; PRAGMA cache_size = 20; BEGIN IMMEDIATE", 6);
        s_child_insert (db, 3000, 7); // spills past the buffer: some frames written
        raise (SIGKILL);
    }
    s_reopen_after_kill (fx, pid, 120);
}

/*  The WAL file's size, -1 when it is missing. */
static int64_t s_wal_size (const s_fixture_t *fx)
{
    char wal[320];
    snprintf (wal, sizeof wal, "%s-wal", fx->path);
    return tf_test_file_size (wal);
}

/*  A file that cannot grow while the buffer is written: COMMIT fails
    with the write's error, nothing of the transaction is stored, and it commits once
    there is room. */
static void test_full_disk (void **state)
{
    s_fixture_t *fx = (s_fixture_t *) *state;
    s_commit_rows (fx->writer, 10);
    int64_t size = s_wal_size (fx);
    assert_true (size > 0);
    s_exec (fx->writer, "BEGIN IMMEDIATE");
    s_insert (fx->writer, 500); // about 600 KiB of frames
    tf_test_fsize_t fsize;
    if (!tf_test_fsize_limit (&fsize, (long) size + 200 * 1024))
        skip ();
    int rc = sqlite3_exec (fx->writer, "COMMIT", NULL, NULL, NULL);
    int code = sqlite3_extended_errcode (fx->writer);
    tf_test_fsize_restore (&fsize);
    //  What the default VFS says too (a write past RLIMIT_FSIZE: EFBIG),
    //  which the store reports as a full disk.
    assert_int_not_equal (rc, SQLITE_OK);
    assert_int_equal (code, SQLITE_IOERR_WRITE);
    if (!sqlite3_get_autocommit (fx->writer))
        s_exec (fx->writer, "ROLLBACK");
    assert_int_equal (s_int (fx->writer, "SELECT count(*) FROM t"), 10);
    assert_int_equal (s_int (fx->reader, "SELECT count(*) FROM t"), 10);
    s_assert_intact (fx->writer);
    s_commit_rows (fx->writer, 500);
    assert_int_equal (s_int (fx->reader, "SELECT count(*) FROM t"), 510);
    s_assert_intact (fx->reader);
}

/*  Reserved WAL space: the file is that long at once, commits go into it
    without growing it, other connections see them, a smaller request
    changes nothing, and a connection on the default VFS has no such file
    control. */
static void test_reserve_wal (void **state)
{
    s_fixture_t *fx = (s_fixture_t *) *state;
    s_commit_rows (fx->writer, 10);
    int64_t before = s_wal_size (fx);
    assert_true (before < (1 << 20));
    assert_int_equal (tf_vfs_reserve_wal (fx->writer, 2 << 20), SQLITE_OK);
    assert_int_equal (s_wal_size (fx), 2 << 20);
    for (int i = 0; i < 20; i++)
        s_commit_rows (fx->writer, 20); // about 600 KiB of frames
    assert_int_equal (s_wal_size (fx), 2 << 20);
    assert_int_equal (s_int (fx->reader, "SELECT count(*) FROM t"), 410);
    s_assert_intact (fx->reader);
    assert_int_equal (tf_vfs_reserve_wal (fx->writer, 1 << 20), SQLITE_OK);
    assert_int_equal (s_wal_size (fx), 2 << 20);
    assert_int_equal (tf_vfs_reserve_wal (fx->reader, 4 << 20), SQLITE_NOTFOUND);
    assert_int_equal (s_wal_size (fx), 2 << 20);
}

/*  Killed after commits into reserved space: the database opens with
    every committed row (recovery stops at the first zero frame). */
static void test_reserve_wal_killed (void **state)
{
    s_fixture_t *fx = (s_fixture_t *) *state;
    s_commit_rows (fx->writer, 10);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        sqlite3 *db = s_child_open_writer (fx->path);
        if (tf_vfs_reserve_wal (db, 4 << 20) != SQLITE_OK)
            _exit (1);
        for (int i = 0; i < 30; i++) {
            s_child_exec (db, "BEGIN IMMEDIATE", 4);
            s_child_insert (db, 10, 5);
            s_child_exec (db, "COMMIT", 6);
        }
        raise (SIGKILL);
    }
    s_reopen_after_kill (fx, pid, 310);
}

/*  No room for the reserve: an error, the WAL as long as it was, and
    commits go on growing it. */
static void test_reserve_wal_full_disk (void **state)
{
    s_fixture_t *fx = (s_fixture_t *) *state;
    s_commit_rows (fx->writer, 10);
    int64_t before = s_wal_size (fx);
    tf_test_fsize_t fsize;
    if (!tf_test_fsize_limit (&fsize, (long) before + (1 << 20)))
        skip ();
    int rc = tf_vfs_reserve_wal (fx->writer, 4 << 20);
    tf_test_fsize_restore (&fsize);
    assert_int_not_equal (rc, SQLITE_OK);
    assert_int_not_equal (rc, SQLITE_NOTFOUND);
    assert_int_equal (s_wal_size (fx), before);
    s_commit_rows (fx->writer, 100);
    assert_true (s_wal_size (fx) > before);
    assert_int_equal (s_int (fx->reader, "SELECT count(*) FROM t"), 110);
    s_assert_intact (fx->reader);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_commits_seen_whole, setup, teardown),
        cmocka_unit_test_setup_teardown (test_spilled_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown (test_commit_writes_few, setup, teardown),
        cmocka_unit_test_setup_teardown (test_killed_mid_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown (test_full_disk, setup, teardown),
        cmocka_unit_test_setup_teardown (test_reserve_wal, setup, teardown),
        cmocka_unit_test_setup_teardown (test_reserve_wal_killed, setup, teardown),
        cmocka_unit_test_setup_teardown (test_reserve_wal_full_disk, setup, teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
