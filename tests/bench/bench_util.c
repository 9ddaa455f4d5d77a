/*  bench_util — clocks, latency samples, figures, child processes and
    payloads for the benchmark (see bench.h). */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tf_json.h"
#include "tf_reader.h"
#include "tf_testkit.h"
#include "tf_wire.h"

bench_opts_t bench_opts;

bool bench_enabled (const char *name)
{
    size_t name_len = strlen (name);
    const char *dot = strchr (name, '.');
    size_t suite_len = dot ? (size_t) (dot - name) : name_len;
    const char *p = bench_opts.only;
    while (*p) {
        size_t len = strcspn (p, ",");
        //  Exact name, the name's whole suite, or a scenario of the suite.
        if ((len == name_len && !strncmp (p, name, len)) ||
            (len == suite_len && !strncmp (p, name, len)) ||
            (!dot && len > name_len && p[name_len] == '.' && !strncmp (p, name, name_len)))
            return true;
        p += len + (p[len] == ',');
    }
    return false;
}

int64_t bench_window_ns (double seconds)
{
    double s = seconds * bench_opts.scale;
    if (s < 0.2)
        s = 0.2;
    return (int64_t) (s * 1e9);
}

// ------------------------------------------------------------------ time

int64_t bench_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void bench_sleep_until (int64_t deadline_ns)
{
    struct timespec ts = { deadline_ns / 1000000000, deadline_ns % 1000000000 };
    while (clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

void bench_sleep_ms (int ms)
{
    bench_sleep_until (bench_now_ns () + (int64_t) ms * 1000000);
}

int bench_wait_fd (int fd, int64_t deadline_ns)
{
    int64_t left = deadline_ns - bench_now_ns ();
    if (left < 0)
        left = 0;
    struct timespec ts = { left / 1000000000, left % 1000000000 };
    struct pollfd item = { fd, POLLIN, 0 };
    int rc = ppoll (&item, 1, &ts, NULL);
    return rc > 0 ? 1 : 0;
}

long bench_slack_tight (void)
{
    long saved = prctl (PR_GET_TIMERSLACK, 0, 0, 0, 0);
    prctl (PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    return saved;
}

void bench_slack_restore (long saved)
{
    if (saved > 0)
        prctl (PR_SET_TIMERSLACK, (unsigned long) saved, 0, 0, 0);
}

// ------------------------------------------------------------------ latency samples

void bench_lat_add (bench_lat_t *self, int64_t ns)
{
    if (self->n == self->cap) {
        self->cap = self->cap ? self->cap * 2 : 4096;
        self->v = (int64_t *) realloc (self->v, self->cap * sizeof *self->v);
        assert (self->v);
    }
    self->v[self->n++] = ns;
    self->sorted = false;
}

void bench_lat_merge (bench_lat_t *self, const bench_lat_t *other)
{
    for (size_t i = 0; i < other->n; i++)
        bench_lat_add (self, other->v[i]);
}

static int s_cmp_i64 (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return (x > y) - (x < y);
}

double bench_lat_pct (bench_lat_t *self, double p)
{
    if (!self->n)
        return NAN;
    if (!self->sorted) {
        qsort (self->v, self->n, sizeof *self->v, s_cmp_i64);
        self->sorted = true;
    }
    //  Nearest rank.
    size_t rank = (size_t) ceil (p / 100.0 * (double) self->n);
    if (rank < 1)
        rank = 1;
    if (rank > self->n)
        rank = self->n;
    return (double) self->v[rank - 1] / 1000.0;
}

void bench_lat_reset (bench_lat_t *self)
{
    self->n = 0;
    self->sorted = false;
}

void bench_lat_free (bench_lat_t *self)
{
    free (self->v);
    memset (self, 0, sizeof *self);
}

void bench_lat_put (bench_lat_t *self, const char *key)
{
    if (!self->n)
        return;
    bench_putf (bench_lat_pct (self, 50), "%s.p50", key);
    bench_putf (bench_lat_pct (self, 99), "%s.p99", key);
    bench_putf (bench_lat_pct (self, 99.9), "%s.p999", key);
    bench_putf ((double) self->n, "%s.samples", key);
    //  Spectrum for the plot: x = 1/(1-p), the last run's samples win.
    char path[1024];
    snprintf (path, sizeof path, "%s/data", bench_opts.out);
    mkdir (path, 0755);
    snprintf (path, sizeof path, "%s/data/%s.dat", bench_opts.out, key);
    FILE *file = fopen (path, "w");
    if (!file)
        return;
    fprintf (file, "# percentile  one_over_1_minus_p  latency_ms  (%zu samples)\n", self->n);
    static const double points[] = { 0,     10,    25,    50,     75,     90,   95,
                                     97,    98,    99,    99.5,   99.7,   99.8, 99.9,
                                     99.95, 99.97, 99.99, 99.995, 99.999, 100 };
    for (size_t i = 0; i < sizeof points / sizeof points[0]; i++) {
        double p = points[i];
        //  Only as deep as the samples reach.
        if (p > 0 && p < 100 && (100.0 - p) / 100.0 * (double) self->n < 1.0)
            continue;
        double x = p >= 100 ? 1.0 / (1.0 / (double) self->n) : 1.0 / (1.0 - p / 100.0);
        fprintf (file, "%g %g %.4f\n", p, x, bench_lat_pct (self, p > 0 ? p : 0.0001) / 1000.0);
    }
    fclose (file);
}

// ------------------------------------------------------------------ figures

typedef struct {
    char key[96];
    double v[BENCH_RUNS_MAX];
    int n;
} s_figure_t;

static s_figure_t *s_figures;
static size_t s_nfigures, s_capfigures;
static char **s_notes;
static size_t s_nnotes;

static s_figure_t *s_find (const char *key, bool create)
{
    for (size_t i = 0; i < s_nfigures; i++)
        if (streq (s_figures[i].key, key))
            return &s_figures[i];
    if (!create)
        return NULL;
    if (s_nfigures == s_capfigures) {
        s_capfigures = s_capfigures ? s_capfigures * 2 : 128;
        s_figures = (s_figure_t *) realloc (s_figures, s_capfigures * sizeof *s_figures);
        assert (s_figures);
    }
    s_figure_t *figure = &s_figures[s_nfigures++];
    memset (figure, 0, sizeof *figure);
    snprintf (figure->key, sizeof figure->key, "%s", key);
    return figure;
}

void bench_put (const char *key, double value)
{
    if (isnan (value))
        return;
    s_figure_t *figure = s_find (key, true);
    if (figure->n < BENCH_RUNS_MAX)
        figure->v[figure->n++] = value;
}

void bench_putf (double value, const char *format, ...)
{
    char key[96];
    va_list args;
    va_start (args, format);
    vsnprintf (key, sizeof key, format, args);
    va_end (args);
    bench_put (key, value);
}

static int s_cmp_double (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

/*  Sorted copy of a figure's values into v; count. */
static int s_sorted (const char *key, double *v)
{
    s_figure_t *figure = s_find (key, false);
    if (!figure || !figure->n)
        return 0;
    memcpy (v, figure->v, (size_t) figure->n * sizeof *v);
    qsort (v, (size_t) figure->n, sizeof *v, s_cmp_double);
    return figure->n;
}

double bench_median (const char *key)
{
    double v[BENCH_RUNS_MAX];
    int n = s_sorted (key, v);
    if (!n)
        return NAN;
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double bench_min (const char *key)
{
    double v[BENCH_RUNS_MAX];
    return s_sorted (key, v) ? v[0] : NAN;
}

double bench_max (const char *key)
{
    double v[BENCH_RUNS_MAX];
    int n = s_sorted (key, v);
    return n ? v[n - 1] : NAN;
}

double bench_sum (const char *key)
{
    s_figure_t *figure = s_find (key, false);
    double sum = 0;
    for (int i = 0; figure && i < figure->n; i++)
        sum += figure->v[i];
    return sum;
}

int bench_count (const char *key)
{
    s_figure_t *figure = s_find (key, false);
    return figure ? figure->n : 0;
}

void bench_note (const char *format, ...)
{
    char *text = NULL;
    va_list args;
    va_start (args, format);
    if (vasprintf (&text, format, args) < 0)
        abort ();
    va_end (args);
    for (size_t i = 0; i < s_nnotes; i++)
        if (streq (s_notes[i], text)) {
            free (text);
            return;
        }
    s_notes = (char **) realloc (s_notes, (s_nnotes + 1) * sizeof *s_notes);
    assert (s_notes);
    s_notes[s_nnotes++] = text;
}

size_t bench_notes (const char ***notes)
{
    *notes = (const char **) s_notes;
    return s_nnotes;
}

// ------------------------------------------------------------------ processes

#define S_CHILDREN_MAX 64
static volatile pid_t s_children[S_CHILDREN_MAX];

void bench_child_add (pid_t pid)
{
    for (int i = 0; i < S_CHILDREN_MAX; i++)
        if (!s_children[i]) {
            s_children[i] = pid;
            return;
        }
}

void bench_child_remove (pid_t pid)
{
    for (int i = 0; i < S_CHILDREN_MAX; i++)
        if (s_children[i] == pid)
            s_children[i] = 0;
}

void bench_children_kill (void)
{
    //  Async-signal-safe: kill and waitpid only.
    for (int i = 0; i < S_CHILDREN_MAX; i++)
        if (s_children[i] > 0) {
            kill (s_children[i], SIGKILL);
            waitpid (s_children[i], NULL, 0);
            s_children[i] = 0;
        }
}

pid_t bench_spawn (const char *const *argv, const char *log_path)
{
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid < 0)
        return 0;
    if (pid == 0) {
        prctl (PR_SET_PDEATHSIG, SIGKILL);
        if (getppid () != parent)
            _exit (127);
        int log = open (log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (log >= 0) {
            dup2 (log, STDOUT_FILENO);
            dup2 (log, STDERR_FILENO);
            close (log);
        }
        int null = open ("/dev/null", O_RDONLY);
        if (null >= 0)
            dup2 (null, STDIN_FILENO);
        execvp (argv[0], (char *const *) argv);
        _exit (127);
    }
    bench_child_add (pid);
    return pid;
}

void bench_stop (pid_t *pid, int timeout_ms)
{
    if (!*pid)
        return;
    kill (*pid, SIGTERM);
    int64_t deadline = bench_now_ns () + (int64_t) timeout_ms * 1000000;
    bool gone = false;
    while (bench_now_ns () < deadline) {
        if (waitpid (*pid, NULL, WNOHANG) == *pid) {
            gone = true;
            break;
        }
        bench_sleep_ms (5);
    }
    if (!gone) {
        kill (*pid, SIGKILL);
        waitpid (*pid, NULL, 0);
    }
    bench_child_remove (*pid);
    *pid = 0;
}

int bench_free_port (void)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in addr = { 0 };
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    int port = -1;
    if (bind (fd, (struct sockaddr *) &addr, sizeof addr) == 0 &&
        getsockname (fd, (struct sockaddr *) &addr, &len) == 0)
        port = ntohs (addr.sin_port);
    close (fd);
    return port;
}

void bench_peer_init (bench_peer_t *peer, const char *name)
{
    memset (peer, 0, sizeof *peer);
    peer->dir = bench_tempdir (name);
    peer->port = bench_free_port ();
    snprintf (peer->log, sizeof peer->log, "%.500s/%s.log", peer->dir, name);
}

int bench_peer_start (bench_peer_t *peer, const char *const *argv,
                      bool (*ready) (const bench_peer_t *peer))
{
    peer->pid = bench_spawn (argv, peer->log);
    int64_t deadline = bench_now_ns () + 10000000000LL;
    while (peer->pid && bench_now_ns () < deadline) {
        if (ready (peer))
            return 0;
        bench_sleep_ms (20);
    }
    bench_note ("%s did not start (see %s)", argv[0], peer->log);
    return -1;
}

void bench_peer_stop (bench_peer_t *peer)
{
    bench_stop (&peer->pid, 10000);
    tf_test_rmtree (peer->dir);
    free (peer->dir);
    peer->dir = NULL;
}

char *bench_tempdir (const char *prefix)
{
    char *path = NULL;
    if (asprintf (&path, "%s/%s-XXXXXX", bench_opts.tmp, prefix) < 0 || !mkdtemp (path)) {
        fprintf (stderr, "bench: cannot make a directory under %s: %s\n", bench_opts.tmp,
                 strerror (errno));
        exit (1);
    }
    return path;
}

/*  The number after `key` in /proc/PID/<file> ("VmRSS:" in status,
    "write_bytes:" in io); -1 when unreadable. */
static double s_proc_number (pid_t pid, const char *file, const char *key)
{
    char path[64], line[256];
    snprintf (path, sizeof path, "/proc/%d/%s", (int) pid, file);
    FILE *stream = fopen (path, "r");
    if (!stream)
        return -1;
    double value = -1;
    size_t len = strlen (key);
    while (fgets (line, sizeof line, stream))
        if (strncmp (line, key, len) == 0) {
            value = strtod (line + len, NULL);
            break;
        }
    fclose (stream);
    return value;
}

long bench_rss_kib (pid_t pid)
{
    return (long) s_proc_number (pid, "status", "VmRSS:");
}

double bench_write_bytes (pid_t pid)
{
    return s_proc_number (pid, "io", "write_bytes:");
}

double bench_cpu_seconds (pid_t pid)
{
    char path[64], text[1024];
    snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    size_t n = fread (text, 1, sizeof text - 1, file);
    fclose (file);
    text[n] = 0;
    //  Fields after the command name, which may hold spaces: state is 3rd.
    char *p = strrchr (text, ')');
    unsigned long utime = 0, stime = 0;
    if (!p ||
        sscanf (p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
        return -1;
    return (double) (utime + stime) / (double) sysconf (_SC_CLK_TCK);
}

void bench_command_line (const char *command, char *out, size_t size)
{
    out[0] = 0;
    FILE *pipe = popen (command, "r");
    if (!pipe)
        return;
    if (fgets (out, (int) size, pipe))
        out[strcspn (out, "\n")] = 0;
    pclose (pipe);
}

// ------------------------------------------------------------------ payloads

static Techfeed__Milestone **s_demo; /* the demo file's records */
static size_t s_ndemo;
static uint8_t **s_ops;     /* pre-packed Operation {put record k} */
static size_t *s_ops_size;  /* their sizes */
static uint8_t **s_bodies;  /* pre-packed Milestone k */
static size_t *s_body_size; /* their sizes */
static size_t s_avg_size;   /* average packed Milestone */

void bench_record (uint32_t k, Techfeed__Milestone *out, char *id)
{
    const Techfeed__Milestone *demo = s_demo[k % s_ndemo];
    *out = *demo;
    sprintf (id, "%.120s-b%06u", demo->id, (unsigned) (k % BENCH_IDS_MAX));
    out->id = id;
}

uint32_t bench_id_number (const char *id)
{
    const char *mark = id ? strrchr (id, '-') : NULL;
    if (!mark || mark[1] != 'b')
        return UINT32_MAX;
    char *end;
    unsigned long k = strtoul (mark + 2, &end, 10);
    return *end || k >= BENCH_IDS_MAX ? UINT32_MAX : (uint32_t) k;
}

int bench_payloads_load (const char *path)
{
    FILE *file = fopen (path, "r");
    if (!file) {
        fprintf (stderr, "bench: %s: %s\n", path, strerror (errno));
        return -1;
    }
    fseek (file, 0, SEEK_END);
    long length = ftell (file);
    rewind (file);
    char *text = (char *) malloc ((size_t) length + 1);
    size_t got = fread (text, 1, (size_t) length, file);
    fclose (file);
    text[got] = 0;
    tf_reader_t *reader = tf_reader_new (text, got);
    json_t *value;
    size_t line;
    char err[256];
    int rc;
    while ((rc = tf_reader_next (reader, &value, &line, err, sizeof err)) != 0) {
        if (rc < 0) {
            fprintf (stderr, "bench: %s:%zu: %s\n", path, line, err);
            continue;
        }
        tf_verror_t verr;
        Techfeed__Milestone *record = tf_json_to_milestone (value, &verr);
        json_decref (value);
        if (!record) {
            fprintf (stderr, "bench: %s:%zu: %s: %s\n", path, line, verr.field, verr.message);
            continue;
        }
        s_demo = (Techfeed__Milestone **) realloc (s_demo, (s_ndemo + 1) * sizeof *s_demo);
        s_demo[s_ndemo++] = record;
    }
    tf_reader_destroy (&reader);
    free (text);
    if (!s_ndemo) {
        fprintf (stderr, "bench: %s: no milestones\n", path);
        return -1;
    }
    //  Pack every record once: as an Operation (techfeed) and as a bare
    //  Milestone (what the peers carry).
    s_ops = (uint8_t **) calloc (BENCH_IDS_MAX, sizeof *s_ops);
    s_ops_size = (size_t *) calloc (BENCH_IDS_MAX, sizeof *s_ops_size);
    s_bodies = (uint8_t **) calloc (BENCH_IDS_MAX, sizeof *s_bodies);
    s_body_size = (size_t *) calloc (BENCH_IDS_MAX, sizeof *s_body_size);
    size_t total = 0;
    for (uint32_t k = 0; k < BENCH_IDS_MAX; k++) {
        Techfeed__Milestone record;
        char id[160];
        bench_record (k, &record, id);
        Techfeed__Operation op = TECHFEED__OPERATION__INIT;
        op.has_kind = 1;
        op.kind = TECHFEED__OP_KIND__OP_PUT;
        op.record = &record;
        s_ops[k] = tf_wire_pack (&op.base, &s_ops_size[k]);
        s_bodies[k] = tf_wire_pack (&record.base, &s_body_size[k]);
        total += s_body_size[k];
    }
    s_avg_size = total / BENCH_IDS_MAX;
    return 0;
}

void bench_payloads_free (void)
{
    for (size_t i = 0; s_ops && i < BENCH_IDS_MAX; i++) {
        free (s_ops[i]);
        free (s_bodies[i]);
    }
    free (s_ops);
    free (s_ops_size);
    free (s_bodies);
    free (s_body_size);
    for (size_t i = 0; i < s_ndemo; i++)
        techfeed__milestone__free_unpacked (s_demo[i], NULL);
    free (s_demo);
    s_demo = NULL;
    s_ops = s_bodies = NULL;
    s_ndemo = 0;
}

const uint8_t *bench_record_bytes (uint32_t k, size_t *size)
{
    k %= BENCH_IDS_MAX;
    *size = s_body_size[k];
    return s_bodies[k];
}

size_t bench_record_size (void)
{
    return s_avg_size;
}

/*  Protobuf varint into p; bytes written. */
static size_t s_varint (uint8_t *p, uint64_t value)
{
    size_t n = 0;
    while (value >= 0x80) {
        p[n++] = (uint8_t) (value | 0x80);
        value >>= 7;
    }
    p[n++] = (uint8_t) value;
    return n;
}

size_t bench_ingest_request (uint8_t *buf, size_t size, const char *request_id, uint32_t k,
                             size_t n)
{
    Techfeed__IngestRequest head = TECHFEED__INGEST_REQUEST__INIT;
    head.has_version = 1;
    head.version = 1;
    head.request_id = (char *) request_id;
    size_t used = protobuf_c_message_get_packed_size (&head.base);
    if (used > size)
        return 0;
    protobuf_c_message_pack (&head.base, buf);
    //  A repeated message field is its encodings one after another, so
    //  appending "ops" (field 3, length-delimited) to the packed head is
    //  the same message protobuf-c would pack.
    for (size_t i = 0; i < n; i++) {
        uint32_t r = (uint32_t) ((k + i) % BENCH_IDS_MAX);
        if (used + 11 + s_ops_size[r] > size)
            return 0;
        buf[used++] = (3 << 3) | 2;
        used += s_varint (buf + used, s_ops_size[r]);
        memcpy (buf + used, s_ops[r], s_ops_size[r]);
        used += s_ops_size[r];
    }
    return used;
}
