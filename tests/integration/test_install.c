/*  make install, used as a packager and a C programmer would: the tree is
    built again without sanitizers into a temporary directory (O=) and
    installed with DESTDIR=TMP/root PREFIX=/usr; then the layout, the
    shared library's soname and exported symbols, techfeed.pc, a program
    (clients/examples/hello.c) compiled with nothing but
    `pkg-config --cflags --libs techfeed` against the shared and the static
    library, the installed programs serving that program, the man pages
    against the programs' --help, the container's runtime packages
    against the installed programs' libraries, and make uninstall.

    The source tree is the current directory (make test runs from it) or
    $TF_SOURCE_DIR. TF_KEEP=1 keeps the temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "techfeed.h"
#include "tf_testkit.h"

#define DEMO_RECORDS "share/techfeed/demo/milestones.ndjson"

typedef struct {
    char src[PATH_MAX];     /* the source tree */
    char *tmp;              /* this test's directory */
    char root[PATH_MAX];    /* DESTDIR */
    char usr[PATH_MAX + 8]; /* DESTDIR/usr: the installed prefix */
    bool installed;         /* make install succeeded */
} fixture_t;

/*  Runs `sh -c COMMAND` (printf-style); its stdout into *out (caller frees)
    when out is not NULL. Shows the command and its output when it fails.
    Returns the exit status. */
static int s_sh (char **out, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *command = NULL;
    if (vasprintf (&command, format, args) < 0)
        abort ();
    va_end (args);
    const char *argv[] = { "/bin/sh", "-c", command, NULL };
    char *text = NULL, *errors = NULL;
    int rc = tf_test_run (NULL, argv, NULL, &text, &errors, 240000);
    if (rc != 0)
        print_message ("$ %s\n%s%s(exit %d)\n", command, text, errors, rc);
    free (command);
    free (errors);
    if (out)
        *out = text;
    else
        free (text);
    return rc;
}

/*  True when `word` occurs in text as a whole word (not inside a longer
    name of letters, digits, '-' or '_'). */
static bool s_has_word (const char *text, const char *word)
{
    size_t size = strlen (word);
    for (const char *at = strstr (text, word); at; at = strstr (at + 1, word)) {
        char before = at == text ? ' ' : at[-1];
        char after = at[size];
        if (!strchr ("abcdefghijklmnopqrstuvwxyz0123456789-_", before) &&
            !(after && strchr ("abcdefghijklmnopqrstuvwxyz0123456789-_", after)))
            return true;
    }
    return false;
}

/*  A file's text into *text (caller frees); fails the test when it cannot
    be read. */
static void s_cat (const char *path, char **text)
{
    if (s_sh (text, "cat '%s'", path) != 0)
        fail_msg ("cannot read %s", path);
}

static int group_setup (void **state)
{
    fixture_t *f = (fixture_t *) calloc (1, sizeof *f);
    const char *src = getenv ("TF_SOURCE_DIR");
    if (!realpath (src && *src ? src : ".", f->src))
        return -1;
    f->tmp = tf_test_tempdir ();
    snprintf (f->root, sizeof f->root, "%s/root", f->tmp);
    snprintf (f->usr, sizeof f->usr, "%s/usr", f->root);
    //  What a user of a DESTDIR install sets; inherited by every command.
    char path[PATH_MAX + 32];
    snprintf (path, sizeof path, "%s/lib/pkgconfig", f->usr);
    setenv ("PKG_CONFIG_PATH", path, 1);
    setenv ("PKG_CONFIG_SYSROOT_DIR", f->root, 1);
    *state = f;
    return 0;
}

static int group_teardown (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    const char *keep = getenv ("TF_KEEP");
    if (keep && *keep == '1')
        fprintf (stderr, "test_install: kept %s\n", f->tmp);
    else
        tf_test_rmtree (f->tmp);
    free (f->tmp);
    free (f);
    return 0;
}

/*  The path of an installed file, DESTDIR/usr/REL. Rotating buffers. */
static const char *s_installed (fixture_t *f, const char *rel)
{
    static char path[4][PATH_MAX + 300];
    static int next = 0;
    char *slot = path[next++ % 4];
    snprintf (slot, sizeof path[0], "%s/%s", f->usr, rel);
    return slot;
}

static void s_assert_file (fixture_t *f, const char *rel, mode_t mode)
{
    struct stat st;
    if (stat (s_installed (f, rel), &st) != 0)
        fail_msg ("not installed: %s", rel);
    assert_true (S_ISREG (st.st_mode));
    if ((st.st_mode & 07777) != mode)
        fail_msg ("%s: mode %04o, expected %04o", rel, (unsigned) (st.st_mode & 07777),
                  (unsigned) mode);
}

static void s_assert_link (fixture_t *f, const char *rel, const char *target)
{
    char link[PATH_MAX] = "";
    ssize_t n = readlink (s_installed (f, rel), link, sizeof link - 1);
    if (n < 0)
        fail_msg ("not a symbolic link: %s", rel);
    link[n] = 0;
    assert_string_equal (link, target);
}

static void test_make_install (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    //  A clean make of its own: not the sanitizer build make test is in
    //  (MAKEFLAGS would pass its O= and SAN= down).
    int rc = s_sh (NULL,
                   "cd '%s' && env -u MAKEFLAGS -u MFLAGS -u MAKEOVERRIDES -u MAKELEVEL "
                   "make -j2 --no-print-directory O='%s/build' SAN=0 install "
                   "DESTDIR='%s' PREFIX=/usr >'%s/make.log' 2>&1 || { tail -30 '%s/make.log'; "
                   "exit 1; }",
                   f->src, f->tmp, f->root, f->tmp, f->tmp);
    assert_int_equal (rc, 0);

    s_assert_file (f, "bin/techfeed-ingestd", 0755);
    s_assert_file (f, "bin/techfeed", 0755);
    s_assert_file (f, "lib/libtechfeed.so.0.1.0", 0644);
    s_assert_link (f, "lib/libtechfeed.so.0", "libtechfeed.so.0.1.0");
    s_assert_link (f, "lib/libtechfeed.so", "libtechfeed.so.0.1.0");
    s_assert_file (f, "lib/libtechfeed.a", 0644);
    s_assert_file (f, "lib/pkgconfig/techfeed.pc", 0644);
    s_assert_file (f, "include/techfeed/techfeed.h", 0644);
    s_assert_file (f, "include/techfeed/techfeed.pb-c.h", 0644);
    s_assert_file (f, "share/man/man1/techfeed.1", 0644);
    s_assert_file (f, "share/man/man8/techfeed-ingestd.8", 0644);
    s_assert_file (f, DEMO_RECORDS, 0644);
    f->installed = true;
}

static void test_shared_library (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    assert_true (f->installed);
    const char *so = s_installed (f, "lib/libtechfeed.so.0.1.0");
    char *out = NULL;
    assert_int_equal (s_sh (&out, "readelf -d '%s'", so), 0);
    assert_non_null (strstr (out, "Library soname: [libtechfeed.so.0]"));
    free (out);

    //  The functions techfeed.h declares are exactly the tf_*/techfeed_*
    //  functions the library exports (clients/lib/libtechfeed.map).
    char *declared = NULL, *exported = NULL;
    assert_int_equal (
        s_sh (&declared,
              "cc -x c -fpreprocessed -dD -E -P '%s' | "
              "grep -oE '\\b(techfeed|tf)_[a-z0-9_]+ ?\\(' | sed 's/ *($//' | sort -u",
              s_installed (f, "include/techfeed/techfeed.h")),
        0);
    assert_int_equal (s_sh (&exported,
                            "nm -D --defined-only '%s' | awk '$2 == \"T\" { print $3 }' | "
                            "sed 's/@.*//' | grep -E '^(techfeed|tf)_[a-z0-9]' | sort -u",
                            so),
                      0);
    assert_true (tf_test_count_lines (declared) > 30);
    if (strcmp (exported, declared) != 0)
        print_message ("the functions of techfeed.h (second list) are not the ones "
                       "libtechfeed.so exports (first): a function added to techfeed.h goes "
                       "into clients/lib/libtechfeed.map too\n");
    assert_string_equal (exported, declared);
    free (declared);
    free (exported);
    //  ...and the generated protobuf-c API the header exposes.
    assert_int_equal (
        s_sh (NULL, "nm -D --defined-only '%s' | grep -q ' techfeed__milestone__init@'", so), 0);
    //  Internal modules stay hidden.
    assert_int_equal (s_sh (NULL, "! nm -D --defined-only '%s' | grep ' tf_wire_'", so), 0);
}

static void test_pkg_config (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    assert_true (f->installed);
    char *version = NULL, *cflags = NULL, *header = NULL;
    assert_int_equal (s_sh (&version, "pkg-config --modversion techfeed"), 0);
    //  One version everywhere: Makefile (techfeed.pc), header, library.
    if (asprintf (&header, "%d.%d.%d\n", TECHFEED_VERSION_MAJOR, TECHFEED_VERSION_MINOR,
                  TECHFEED_VERSION_PATCH) < 0)
        abort ();
    assert_string_equal (version, header);
    version[strcspn (version, "\n")] = 0;
    assert_string_equal (version, techfeed_version ());

    assert_int_equal (s_sh (&cflags, "pkg-config --cflags techfeed"), 0);
    char expected[PATH_MAX + 40];
    snprintf (expected, sizeof expected, "-I%s/include/techfeed", f->usr);
    if (!strstr (cflags, expected))
        fail_msg ("pkg-config --cflags: '%s' lacks %s", cflags, expected);
    free (version);
    free (cflags);
    free (header);
}

/*  Compiles clients/examples/hello.c to TMP/NAME with `extra` before the
    pkg-config flags; 0 on success. */
static int s_build_hello (fixture_t *f, const char *name, const char *pkg_config_args,
                          const char *extra)
{
    return s_sh (NULL,
                 "cc -std=c11 -Wall -Wextra -Werror -o '%s/%s' '%s/clients/examples/hello.c' "
                 "%s $(pkg-config %s techfeed)",
                 f->tmp, name, f->src, extra, pkg_config_args);
}

static void test_example_shared (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    assert_true (f->installed);
    assert_int_equal (s_build_hello (f, "hello", "--cflags --libs", ""), 0);
    char *out = NULL;
    assert_int_equal (s_sh (&out, "LD_LIBRARY_PATH='%s/lib' '%s/hello'", f->usr, f->tmp), 0);
    assert_string_equal (out, "libtechfeed 0.1.0 (header 0.1.0)\n");
    free (out);
    //  It runs on the installed shared library, found by its soname.
    char expected[PATH_MAX + 60];
    snprintf (expected, sizeof expected, "libtechfeed.so.0 => %s/lib/libtechfeed.so.0", f->usr);
    assert_int_equal (s_sh (&out, "LD_LIBRARY_PATH='%s/lib' ldd '%s/hello'", f->usr, f->tmp), 0);
    if (!strstr (out, expected))
        fail_msg ("ldd hello:\n%s\nlacks %s", out, expected);
    free (out);
}

static void test_example_static (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    assert_true (f->installed);
    //  All of libtechfeed.a (--whole-archive: not only what hello uses),
    //  plus the shared libraries of Requires and Requires.private and the
    //  flags of Libs.private, is enough to link.
    //  (Not `pkg-config --static`: Debian's libzmq.pc asks for libraries
    //  that are not installed, such as libprotokit.a.)
    char extra[PATH_MAX * 2];
    snprintf (
        extra, sizeof extra,
        "$(pkg-config --libs-only-L techfeed) -Wl,-Bstatic,--whole-archive -ltechfeed "
        "-Wl,--no-whole-archive,-Bdynamic "
        "$(pkg-config --libs $(pkg-config --print-requires --print-requires-private techfeed)) "
        "$(sed -n 's/^Libs.private: //p' '%s')",
        s_installed (f, "lib/pkgconfig/techfeed.pc"));
    assert_int_equal (s_build_hello (f, "hello-static", "--cflags", extra), 0);
    char *out = NULL;
    assert_int_equal (s_sh (&out, "readelf -d '%s/hello-static'", f->tmp), 0);
    assert_null (strstr (out, "libtechfeed"));
    free (out);
    assert_int_equal (s_sh (&out, "'%s/hello-static'", f->tmp), 0);
    assert_string_equal (out, "libtechfeed 0.1.0 (header 0.1.0)\n");
    free (out);
}

static void test_installed_programs (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    assert_true (f->installed);
    assert_int_equal (s_build_hello (f, "hello", "--cflags --libs", ""), 0);

    //  The installed service (tf_service_start runs $TF_BUILD_DIR/techfeed-ingestd).
    char *build_dir = strdup (getenv ("TF_BUILD_DIR") ? getenv ("TF_BUILD_DIR") : "build");
    setenv ("TF_BUILD_DIR", s_installed (f, "bin"), 1);
    tf_service_t svc = { 0 };
    int started = tf_service_start (&svc, NULL);
    setenv ("TF_BUILD_DIR", build_dir, 1);
    free (build_dir);
    assert_int_equal (started, 0);

    //  The installed CLI loads the installed demo data...
    const char *put[] = { s_installed (f, "bin/techfeed"), "put", s_installed (f, DEMO_RECORDS),
                          NULL };
    char *out = NULL, *err = NULL;
    int rc = tf_test_run (&svc, put, NULL, &out, &err, 30000);
    if (rc != 0)
        print_message ("techfeed put: exit %d\n%s%s", rc, out, err);
    assert_int_equal (rc, 0);
    free (out);
    free (err);
    char *demo = NULL;
    s_cat (s_installed (f, DEMO_RECORDS), &demo);
    size_t records = tf_test_count_lines (demo);
    free (demo);

    //  ...and the example program sees them through the installed library.
    assert_int_equal (
        s_sh (&out, "LD_LIBRARY_PATH='%s/lib' '%s/hello' '%s'", f->usr, f->tmp, svc.sync), 0);
    char expected[64];
    snprintf (expected, sizeof expected, ", records %zu\n", records);
    if (!strstr (out, "techfeed-ingestd 0.1.0: epoch ") || !strstr (out, expected))
        fail_msg ("hello printed:\n%s(expected '%s')", out, expected);
    free (out);

    assert_int_equal (tf_service_stop (&svc, 10000), 0);
    //  Without a service it says so: 69 (EX_UNAVAILABLE). (Not the stopped
    //  service's port: another test's service may have taken it since.)
    assert_int_equal (
        s_sh (NULL,
              "LD_LIBRARY_PATH='%s/lib' '%s/hello' 'ipc://%s/no-service' 2>/dev/null; "
              "test $? = 69",
              f->usr, f->tmp, f->tmp),
        0);
    tf_service_cleanup (&svc);
}

/*  Every "--flag" of `text` whole-word in `man`, as roff writes it
    (\-\-a\-b), and every TECHFEED_* variable. */
static void s_assert_documented (const char *text, const char *man, const char *page,
                                 const char *what)
{
    for (const char *at = strstr (text, "--"); at; at = strstr (at + 2, "--")) {
        if (at > text && !strchr (" \t\n([,", at[-1]))
            continue;
        size_t size = strspn (at + 2, "abcdefghijklmnopqrstuvwxyz0123456789-");
        if (size == 0)
            continue;
        char roff[256] = "\\-\\-";
        size_t length = 4;
        for (size_t i = 0; i < size && length < sizeof roff - 3; i++) {
            if (at[2 + i] == '-')
                roff[length++] = '\\';
            roff[length++] = at[2 + i];
        }
        roff[length] = 0;
        if (!s_has_word (man, roff))
            fail_msg ("%s: --%.*s (from %s) is not documented", page, (int) size, at + 2, what);
    }
    for (const char *at = strstr (text, "TECHFEED_"); at; at = strstr (at + 1, "TECHFEED_")) {
        char name[64];
        snprintf (name, sizeof name, "%.*s", (int) strspn (at, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_"), at);
        if (!s_has_word (man, name))
            fail_msg ("%s: %s (from %s) is not documented", page, name, what);
    }
}

/*  Output of an installed program into *out (caller frees); fails the
    test unless it exits 0. */
static void s_help (fixture_t *f, const char *command, char **out)
{
    int rc = s_sh (out, "%s/bin/%s", f->usr, command);
    if (rc != 0)
        fail_msg ("%s: exit %d", command, rc);
}

static void test_man_pages (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    assert_true (f->installed);
    const char *pages[] = { "share/man/man1/techfeed.1", "share/man/man8/techfeed-ingestd.8" };
    for (size_t i = 0; i < 2; i++) {
        //  groff's warnings (-ww) are errors here; man renders it.
        char *warnings = NULL;
        assert_int_equal (
            s_sh (&warnings, "groff -t -man -ww -z -Tutf8 '%s' 2>&1", s_installed (f, pages[i])),
            0);
        assert_string_equal (warnings, "");
        free (warnings);
        assert_int_equal (
            s_sh (NULL, "MANWIDTH=80 man -l '%s' | grep -q '^EXAMPLES'", s_installed (f, pages[i])),
            0);
    }

    //  techfeed-ingestd(8): every flag and variable of --help.
    char *man = NULL;
    s_cat (s_installed (f, pages[1]), &man);
    char *help = NULL;
    s_help (f, "techfeed-ingestd --help", &help);
    s_assert_documented (help, man, pages[1], "techfeed-ingestd --help");
    free (help);
    free (man);

    //  techfeed(1): every command of --help's COMMANDS, with the flags and
    //  variables of its own help, and every global flag and variable.
    s_cat (s_installed (f, pages[0]), &man);
    s_help (f, "techfeed --help", &help);
    s_assert_documented (help, man, pages[0], "techfeed --help");
    const char *commands = strstr (help, "\nCOMMANDS\n");
    assert_non_null (commands);
    size_t checked = 0;
    for (const char *line = commands + 10; strncmp (line, "  ", 2) == 0;
         line = strchr (line, '\n') + 1) {
        char name[32], call[64], heading[64], heading_bold[64];
        if (sscanf (line, " %31[a-z]", name) != 1 || strcmp (name, "help") == 0)
            continue;
        snprintf (heading, sizeof heading, "\n.TP\n.BR %s ", name);
        snprintf (heading_bold, sizeof heading_bold, "\n.TP\n.B %s\n", name);
        if (!strstr (man, heading) && !strstr (man, heading_bold))
            fail_msg ("%s: command '%s' is not documented", pages[0], name);
        snprintf (call, sizeof call, "techfeed help %s", name);
        char *command_help = NULL;
        s_help (f, call, &command_help);
        s_assert_documented (command_help, man, pages[0], call);
        free (command_help);
        checked++;
    }
    assert_true (checked >= 6);
    free (help);
    free (man);
}

static void test_container_runtime_packages (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    assert_true (f->installed);
    //  The Dockerfile's run stage installs RUNTIME_PACKAGES on
    //  debian:bookworm-slim: each library the programs link directly must
    //  come from one of them (or from libc6/libgcc-s1, always there).
    char path[PATH_MAX + 20];
    snprintf (path, sizeof path, "%s/Dockerfile", f->src);
    char *dockerfile = NULL;
    s_cat (path, &dockerfile);
    const char *arg = strstr (dockerfile, "ARG RUNTIME_PACKAGES=\"");
    assert_non_null (arg);
    arg += strlen ("ARG RUNTIME_PACKAGES=\"");
    char allowed[512];
    snprintf (allowed, sizeof allowed, " libc6 libgcc-s1 %.*s ", (int) strcspn (arg, "\""), arg);
    //  What it copies from the build stage's `make install DESTDIR=/out
    //  PREFIX=/usr` is there.
    size_t copied = 0;
    for (const char *at = strstr (dockerfile, "\nCOPY --from=build "); at;
         at = strstr (at + 1, "\nCOPY --from=build ")) {
        for (const char *word = strstr (at, " /out/"); word && word < strchr (at + 1, '\n');
             word = strstr (word + 1, " /out/")) {
            char source[PATH_MAX + 300];
            snprintf (source, sizeof source, "%s/%.*s", f->root, (int) strcspn (word + 6, " \n"),
                      word + 6);
            if (access (source, R_OK) != 0)
                fail_msg ("the Dockerfile copies %s, which make install did not make", source);
            copied++;
        }
    }
    assert_true (copied >= 3);
    free (dockerfile);

    const char *programs[] = { "bin/techfeed-ingestd", "bin/techfeed" };
    for (size_t i = 0; i < 2; i++) {
        char *needed = NULL;
        assert_int_equal (s_sh (&needed,
                                "readelf -d '%s' | sed -n 's/.*(NEEDED).*\\[\\(.*\\)\\]/\\1/p'",
                                s_installed (f, programs[i])),
                          0);
        assert_true (tf_test_count_lines (needed) >= 4);
        char *save = NULL;
        for (char *lib = strtok_r (needed, "\n", &save); lib; lib = strtok_r (NULL, "\n", &save)) {
            char *owners = NULL;
            assert_int_equal (s_sh (&owners, "dpkg -S '*/%s' | sed 's/[:,].*//' | sort -u", lib),
                              0);
            bool found = false;
            char *save2 = NULL;
            for (char *pkg = strtok_r (owners, "\n", &save2); pkg && !found;
                 pkg = strtok_r (NULL, "\n", &save2)) {
                char word[128];
                snprintf (word, sizeof word, " %s ", pkg);
                found = strstr (allowed, word) != NULL;
            }
            if (!found)
                fail_msg ("%s needs %s, which no package of RUNTIME_PACKAGES provides (%s)",
                          programs[i], lib, allowed);
            free (owners);
        }
        free (needed);
    }
}

static void test_uninstall (void **state)
{
    fixture_t *f = (fixture_t *) *state;
    assert_true (f->installed);
    assert_int_equal (s_sh (NULL,
                            "cd '%s' && env -u MAKEFLAGS -u MFLAGS -u MAKEOVERRIDES -u MAKELEVEL "
                            "make --no-print-directory O='%s/build' SAN=0 uninstall "
                            "DESTDIR='%s' PREFIX=/usr >/dev/null",
                            f->src, f->tmp, f->root),
                      0);
    char *left = NULL;
    assert_int_equal (s_sh (&left, "find '%s' ! -type d", f->root), 0);
    assert_string_equal (left, "");
    free (left);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_make_install),   cmocka_unit_test (test_shared_library),
        cmocka_unit_test (test_pkg_config),     cmocka_unit_test (test_example_shared),
        cmocka_unit_test (test_example_static), cmocka_unit_test (test_installed_programs),
        cmocka_unit_test (test_man_pages),      cmocka_unit_test (test_container_runtime_packages),
        cmocka_unit_test (test_uninstall),
    };
    return cmocka_run_group_tests (tests, group_setup, group_teardown);
}
