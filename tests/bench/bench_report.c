/*  bench_report — the one markdown table (stdout and OUT/RESULTS.md) and
    the gnuplot PNGs (OUT/latency-view.png, OUT/latency-ack.png,
    OUT/throughput.png).

    Every figure is the median over the runs, its spread the min–max.
    Ratio columns divide techfeed's median by the limit's or the peer's
    median: for rates above 1 is better, for latencies below 1 is better.
*/
#include "bench.h"

#include <hiredis.h>
#include <math.h>
#include <nats/nats.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

typedef enum { U_RATE, U_US, U_S, U_KIB, U_PCT, U_RATIO, U_COUNT } s_unit_t;

typedef struct {
    const char *label; /* NULL: `key` is a section title */
    const char *key;
    s_unit_t unit;
    const char *limit; /* key, or "a+b": the sum of two medians */
    const char *redis; /* Redis appendfsync always, same shape */
    const char *nats;  /* NATS JetStream, same shape */
    const char *bar;   /* issue 6's bar, as text */
} s_row_t;

#define SECTION(title)                                                                             \
    {                                                                                              \
        NULL, title, U_COUNT, NULL, NULL, NULL, NULL                                               \
    }

/*  Rows leave the trailing fields they do not need out (NULL). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const s_row_t s_rows[] = {
    SECTION ("machine limits"),
    { "fdatasync 4 KiB (overwrite in place), rate", "machine.fsync.rate", U_RATE },
    { "fdatasync 4 KiB (overwrite in place), p50", "machine.fsync.p50", U_US },
    { "fdatasync 4 KiB (overwrite in place), p99", "machine.fsync.p99", U_US },
    { "fdatasync 4 KiB (overwrite), one every ms, p50", "machine.fsync_paced.p50", U_US },
    { "fdatasync 4 KiB (overwrite), one every ms, p99", "machine.fsync_paced.p99", U_US },
    { "fdatasync 4 KiB (appending), p50", "machine.fsync_append.p50", U_US },
    { "append 1 MiB + fdatasync, MiB/s", "machine.fsync_mib.rate", U_COUNT },
    { "ZeroMQ DEALER→ROUTER round trip, 500 B, p50", "machine.zmq_rtt.p50", U_US },
    { "ZeroMQ DEALER→ROUTER round trip, 500 B, p99", "machine.zmq_rtt.p99", U_US },
    { "ZeroMQ PUB→SUB 500 B, throughput", "machine.zmq_pubsub.rate", U_RATE },
    { "SQLite WAL synchronous=FULL, 100 rows/txn, integer key", "machine.sqlite.rate", U_RATE },
    { "same, TEXT PRIMARY KEY on the id", "machine.sqlite_idkey.rate", U_RATE },
    SECTION ("techfeed"),
    { "serial durable put (libtechfeed writer, 1 in flight), rate", "tf.serial.rate", U_RATE,
      "machine.fsync.rate", "redis.always.serial.rate", "nats.serial.rate" },
    { "serial durable put, ack p50", "tf.serial.p50", U_US, "machine.fsync.p50+machine.zmq_rtt.p50",
      "redis.always.serial.p50", "nats.serial.p50", "≤ fdatasync p50 + ZeroMQ RTT p50 + 150 µs" },
    { "serial durable put, ack p99", "tf.serial.p99", U_US, NULL, "redis.always.serial.p99",
      "nats.serial.p99" },
    { "… in the service, receive → reply, mean", "tf.serial.service_us", U_US },
    { "… of which COMMIT (WAL write + fdatasync), mean", "tf.serial.commit_us", U_US,
      "machine.fsync.p50" },
    { "… bytes the server writes to storage per put", "tf.serial.written_kib", U_KIB },
    { "concurrent durable put (8 DEALERs × 64 in flight), rate", "tf.concurrent.rate", U_RATE,
      "machine.sqlite.rate", "redis.always.c50.rate", "nats.c8x64.rate",
      "≥ 150k/s, ≥ 0.6× SQLite, ≥ 2.5× Redis always" },
    { "concurrent durable put, ack p99", "tf.concurrent.p99", U_US, NULL, "redis.always.c50.p99",
      "nats.c8x64.p99" },
    { "concurrent durable put, server CPU", "tf.concurrent.server_cpu", U_PCT },
    { "… server CPU per put", "tf.concurrent.cpu_us", U_US },
    { "… bench CPU (the 8 writers, one thread)", "tf.concurrent.client_cpu", U_PCT },
    { "… bytes the server writes to storage per put (443-byte record)", "tf.concurrent.written_kib",
      U_KIB },
    { "… the one writer connection held per put: by the loop's write groups",
      "tf.concurrent.lock_loop_us", U_US },
    { "… by the applier (the records table), one after the other", "tf.concurrent.lock_applier_us",
      U_US },
    { "… the loop waiting for it meanwhile, per put", "tf.concurrent.lock_wait_us", U_US },
    { "… puts per write transaction (group commit), mean", "tf.concurrent.group", U_COUNT },
    { "… changes the records table was behind when the writers stopped", "tf.concurrent.behind",
      U_COUNT },
    { "… and caught up (applier thread) after", "tf.concurrent.applied_s", U_S },
    { "bulk load, 1000 puts per request", "tf.load.rate", U_RATE, "machine.sqlite.rate" },
    { "… records table caught up with it (applier thread) after", "tf.load.applied_s", U_S },
    { "ingest→view 1k/s, 1 view, p50", "tf.view.1k.1.p50", U_US, NULL, "redis.always.xread.p50",
      "nats.consumer.p50", "≤ 1.5× Redis always XADD→XREAD p50" },
    { "ingest→view 1k/s, 1 view, p99", "tf.view.1k.1.p99", U_US, NULL, "redis.always.xread.p99",
      "nats.consumer.p99" },
    { "ingest→view 1k/s, 1 view, p99.9", "tf.view.1k.1.p999", U_US, NULL, "redis.always.xread.p999",
      "nats.consumer.p999" },
    { "… in the service, receive → reply, mean", "tf.view.1k.1.service_us", U_US },
    { "… of which COMMIT (WAL write + fdatasync), mean", "tf.view.1k.1.commit_us", U_US,
      "machine.fsync_paced.p50" },
    { "ingest→view 1k/s, 10 views, p50", "tf.view.1k.10.p50", U_US },
    { "ingest→view 1k/s, 10 views, p99", "tf.view.1k.10.p99", U_US },
    { "ingest→view 1k/s, 10 views, p99.9", "tf.view.1k.10.p999", U_US },
    { "ingest→view 1k/s, 100 views, p50", "tf.view.1k.100.p50", U_US },
    { "ingest→view 1k/s, 100 views, p99", "tf.view.1k.100.p99", U_US, NULL, NULL, NULL, "≤ 10 ms" },
    { "ingest→view 1k/s, 100 views, p99.9", "tf.view.1k.100.p999", U_US },
    { "… service CPU at 1k/s with 100 views", "tf.view.1k.100.server_cpu", U_PCT },
    { "… bench CPU per change applied in a view (100 views)", "tf.view.1k.100.client_us", U_US },
    { "ingest→view 10k/s, 1 view, p50", "tf.view.10k.1.p50", U_US },
    { "ingest→view 10k/s, 1 view, p99", "tf.view.10k.1.p99", U_US },
    { "ingest→view 10k/s, 1 view, p99.9", "tf.view.10k.1.p999", U_US },
    { "ingest→view 10k/s, 10 views, p50", "tf.view.10k.10.p50", U_US },
    { "ingest→view 10k/s, 10 views, p99", "tf.view.10k.10.p99", U_US },
    { "ingest→view 10k/s, 10 views, p99.9", "tf.view.10k.10.p999", U_US },
    { "ingest→view 10k/s, 100 views, p50", "tf.view.10k.100.p50", U_US },
    { "ingest→view 10k/s, 100 views, p99", "tf.view.10k.100.p99", U_US },
    { "ingest→view 10k/s, 100 views, p99.9", "tf.view.10k.100.p999", U_US },
    { "snapshot of the records into a new view", "tf.snapshot.s", U_S, NULL, NULL, NULL,
      "≤ 0.5 s (100k)" },
    { "… service CPU during that snapshot", "tf.snapshot.server_s", U_S },
    { "… bench CPU (the view decoding and applying) during it", "tf.snapshot.client_s", U_S },
    { "same, while the concurrent put's 8 × 64 writers run", "tf.snapshot_busy.s", U_S },
    { "… the writers' rate meanwhile", "tf.snapshot_busy.put_rate", U_RATE },
    { "catch-up of the missed changes (views' sync stream, 500 per chunk)", "tf.catchup.rate",
      U_RATE, NULL, NULL, NULL, "≥ 400k/s" },
    { "… service CPU during that catch-up", "tf.catchup.server_s", U_S },
    { "… bench CPU (decoding and applying) during it", "tf.catchup.client_s", U_S },
    { "catch-up, 5000 per chunk (the service's cap)", "tf.catchup5k.rate", U_RATE },
    { "server memory per connected subscriber (1,000 SUB)", "tf.rss_per_sub.kib", U_KIB, NULL, NULL,
      NULL, "≤ 64 KiB" },
    { "ingest ack p99 at 1k/s, no snapshot running", "tf.ack_idle.p99", U_US },
    { "… puts the service took over 1 ms to answer (receive → reply)", "tf.ack_idle.slow_1ms",
      U_COUNT },
    { "ingest ack p99 at 1k/s, while snapshots are served (their client at SCHED_IDLE)",
      "tf.ack_snap.p99", U_US },
    { "ack p99 while snapshots ÷ without", "tf.ack_snap.ratio", U_RATIO, NULL, NULL, NULL, "≤ 2×" },
    { "… snapshots served meanwhile", "tf.ack_snap.snapshots", U_COUNT },
    { "… puts the service took over 1 ms to answer", "tf.ack_snap.slow_1ms", U_COUNT },
    { "ingest ack p99 at 1k/s, while snapshots are served (their client at nice 0)",
      "tf.ack_snap0.p99", U_US },
    { "… ÷ without", "tf.ack_snap0.ratio", U_RATIO },
    { "… snapshots served meanwhile", "tf.ack_snap0.snapshots", U_COUNT },
    { "… puts the service took over 1 ms to answer", "tf.ack_snap0.slow_1ms", U_COUNT },
    SECTION ("Redis 7 Streams, appendfsync always"),
    { "serial XADD (1 in flight), rate", "redis.always.serial.rate", U_RATE },
    { "serial XADD, ack p50", "redis.always.serial.p50", U_US },
    { "serial XADD, ack p99", "redis.always.serial.p99", U_US },
    { "XADD from 50 clients (1 in flight each), rate", "redis.always.c50.rate", U_RATE },
    { "XADD from 50 clients, ack p99", "redis.always.c50.p99", U_US },
    { "XADD→XREAD BLOCK at 1k/s, p50", "redis.always.xread.p50", U_US },
    { "XADD→XREAD BLOCK at 1k/s, p99", "redis.always.xread.p99", U_US },
    { "XADD→XREAD BLOCK at 1k/s, p99.9", "redis.always.xread.p999", U_US },
    SECTION ("Redis 7 Streams, appendfsync everysec"),
    { "serial XADD (1 in flight), rate", "redis.everysec.serial.rate", U_RATE },
    { "serial XADD, ack p50", "redis.everysec.serial.p50", U_US },
    { "XADD from 50 clients (1 in flight each), rate", "redis.everysec.c50.rate", U_RATE },
    { "XADD from 50 clients, ack p99", "redis.everysec.c50.p99", U_US },
    { "XADD→XREAD BLOCK at 1k/s, p50", "redis.everysec.xread.p50", U_US },
    { "XADD→XREAD BLOCK at 1k/s, p99", "redis.everysec.xread.p99", U_US },
    SECTION ("NATS JetStream, file store (acks before fsync)"),
    { "serial publish with ack (1 in flight), rate", "nats.serial.rate", U_RATE },
    { "serial publish, ack p50", "nats.serial.p50", U_US },
    { "serial publish, ack p99", "nats.serial.p99", U_US },
    { "async publish, 8 connections × 64 pending, rate", "nats.c8x64.rate", U_RATE },
    { "async publish 8 × 64, ack p99", "nats.c8x64.p99", U_US },
    { "publish→push consumer at 1k/s, p50", "nats.consumer.p50", U_US },
    { "publish→push consumer at 1k/s, p99", "nats.consumer.p99", U_US },
    { "publish→push consumer at 1k/s, p99.9", "nats.consumer.p999", U_US },
};
#pragma GCC diagnostic pop
#define S_ROWS (sizeof s_rows / sizeof s_rows[0])

// ------------------------------------------------------------------ formatting

static void s_format (double v, s_unit_t unit, char *out, size_t size)
{
    if (isnan (v)) {
        snprintf (out, size, "—");
        return;
    }
    switch (unit) {
        case U_RATE:
            if (v >= 1e6)
                snprintf (out, size, "%.2fM/s", v / 1e6);
            else if (v >= 1e4)
                snprintf (out, size, "%.0fk/s", v / 1e3);
            else if (v >= 1e3)
                snprintf (out, size, "%.1fk/s", v / 1e3);
            else
                snprintf (out, size, "%.0f/s", v);
            break;
        case U_US:
            if (v >= 1e4)
                snprintf (out, size, "%.1f ms", v / 1e3);
            else if (v >= 1e3)
                snprintf (out, size, "%.2f ms", v / 1e3);
            else
                snprintf (out, size, "%.0f µs", v);
            break;
        case U_S: snprintf (out, size, "%.3f s", v); break;
        case U_KIB: snprintf (out, size, "%.1f KiB", v); break;
        case U_PCT: snprintf (out, size, "%.0f %%", v); break;
        case U_RATIO: snprintf (out, size, "%.2f×", v); break;
        case U_COUNT: snprintf (out, size, "%.0f", v); break;
    }
}

/*  Median of a key, or the sum of "a+b". */
static double s_value (const char *expr)
{
    if (!expr)
        return NAN;
    const char *plus = strchr (expr, '+');
    if (!plus)
        return bench_median (expr);
    char first[96];
    snprintf (first, sizeof first, "%.*s", (int) (plus - expr), expr);
    return bench_median (first) + bench_median (plus + 1);
}

static void s_ratio (double a, double b, char *out, size_t size)
{
    if (isnan (a) || isnan (b) || b == 0)
        snprintf (out, size, " ");
    else
        snprintf (out, size, "%.2f×", a / b);
}

/*  ✅ / ❌ for the rows that carry a bar; "" when it cannot be judged. */
static const char *s_verdict (const s_row_t *row)
{
    double v = bench_median (row->key);
    if (isnan (v))
        return "";
    bool ok;
    if (streq (row->key, "tf.serial.p50"))
        ok = v <= s_value (row->limit) + 150;
    else if (streq (row->key, "tf.concurrent.rate"))
        ok = v >= 150000 && v >= 0.6 * bench_median ("machine.sqlite.rate") &&
             !(v < 2.5 * bench_median ("redis.always.c50.rate"));
    else if (streq (row->key, "tf.view.1k.1.p50"))
        ok = !(v > 1.5 * bench_median ("redis.always.xread.p50"));
    else if (streq (row->key, "tf.view.1k.100.p99"))
        ok = v <= 10000;
    else if (streq (row->key, "tf.snapshot.s") || streq (row->key, "tf.catchup.rate")) {
        //  The bar is for 100k records; --quick uses fewer.
        if (bench_opts.records != BENCH_IDS_MAX)
            return " (not judged: fewer records)";
        ok = streq (row->key, "tf.snapshot.s") ? v <= 0.5 : v >= 400000;
    } else if (streq (row->key, "tf.rss_per_sub.kib"))
        ok = v <= 64;
    else if (streq (row->key, "tf.ack_snap.ratio"))
        ok = v <= 2;
    else
        return "";
    return ok ? " ✅" : " ❌";
}

// ------------------------------------------------------------------ machine

void bench_machine_describe (char *out, size_t size)
{
    char cpu[256] = "unknown CPU", fs[256] = "", line[512];
    FILE *file = fopen ("/proc/cpuinfo", "r");
    while (file && fgets (line, sizeof line, file))
        if (strncmp (line, "model name", 10) == 0) {
            char *colon = strchr (line, ':');
            snprintf (cpu, sizeof cpu, "%.250s", colon ? colon + 2 : line);
            cpu[strcspn (cpu, "\n")] = 0;
            break;
        }
    if (file)
        fclose (file);
    char command[700];
    snprintf (command, sizeof command,
              "df -T '%s' 2>/dev/null | awk 'NR==2 {print $2\" (\"$1\")\"}'", bench_opts.tmp);
    bench_command_line (command, fs, sizeof fs);
    struct utsname uts;
    uname (&uts);
    long memory_mib = sysconf (_SC_PHYS_PAGES) / 1024 * sysconf (_SC_PAGESIZE) / 1024;
    double load[3] = { 0, 0, 0 };
    getloadavg (load, 3);
    snprintf (out, size,
              "%ld × %s, %ld MiB RAM, Linux %s; temporary directory %s on %s; load average "
              "%.2f %.2f %.2f",
              sysconf (_SC_NPROCESSORS_ONLN), cpu, memory_mib, uts.release, bench_opts.tmp,
              fs[0] ? fs : "an unknown filesystem", load[0], load[1], load[2]);
}

static void s_versions (char *out, size_t size)
{
    char redis[200] = "", nats[200] = "", commit[64] = "", dirty[300] = "";
    bench_command_line ("git rev-parse --short HEAD 2>/dev/null", commit, sizeof commit);
    bench_command_line ("git status --porcelain -- services storage proto clients/lib 2>/dev/null",
                        dirty, sizeof dirty);
    bench_command_line ("redis-server --version 2>/dev/null | sed 's/ sha=.*//'", redis,
                        sizeof redis);
    bench_command_line ("nats-server --version 2>/dev/null", nats, sizeof nats);
    int major, minor, patch;
    zmq_version (&major, &minor, &patch);
    snprintf (out, size,
              "techfeed %s (commit %s%s), libzmq %d.%d.%d, SQLite %s, %s, %s, hiredis %d.%d.%d, "
              "libnats %s",
              TF_VERSION, commit[0] ? commit : "unknown",
              dirty[0] ? " with uncommitted changes to the service or library" : "", major, minor,
              patch, sqlite3_libversion (), redis[0] ? redis : "no Redis",
              nats[0] ? nats : "no nats-server", HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH,
              nats_GetVersion ());
}

// ------------------------------------------------------------------ plots

typedef struct {
    const char *key;
    const char *title;
} s_series_t;

static const s_series_t s_view_series[] = {
    { "tf.view.1k.1", "techfeed put→view, 1k/s, 1 view" },
    { "tf.view.1k.100", "techfeed put→view, 1k/s, 100 views" },
    { "tf.view.10k.1", "techfeed put→view, 10k/s, 1 view" },
    { "tf.view.10k.100", "techfeed put→view, 10k/s, 100 views" },
    { "redis.always.xread", "Redis always, XADD→XREAD, 1k/s" },
    { "redis.everysec.xread", "Redis everysec, XADD→XREAD, 1k/s" },
    { "nats.consumer", "NATS JetStream publish→consumer, 1k/s" },
};

static const s_series_t s_ack_series[] = {
    { "machine.fsync", "fdatasync 4 KiB" },
    { "machine.zmq_rtt", "ZeroMQ round trip 500 B" },
    { "tf.serial", "techfeed serial put" },
    { "tf.concurrent", "techfeed 8×64 put" },
    { "tf.ack_snap", "techfeed 1k/s put during snapshots" },
    { "redis.always.serial", "Redis always serial XADD" },
    { "redis.always.c50", "Redis always 50-client XADD" },
    { "nats.serial", "NATS serial publish" },
    { "nats.c8x64", "NATS 8×64 async publish" },
};

static const s_series_t s_rate_series[] = {
    { "machine.fsync.rate", "fdatasync" },
    { "machine.sqlite.rate", "SQLite FULL 100/txn" },
    { "tf.serial.rate", "techfeed serial" },
    { "tf.concurrent.rate", "techfeed 8×64" },
    { "tf.load.rate", "techfeed bulk 1000/req" },
    { "tf.catchup.rate", "techfeed catch-up" },
    { "redis.always.serial.rate", "Redis always serial" },
    { "redis.always.c50.rate", "Redis always 50 clients" },
    { "redis.everysec.c50.rate", "Redis everysec 50 clients" },
    { "nats.serial.rate", "NATS serial" },
    { "nats.c8x64.rate", "NATS 8×64" },
};

static void s_spectrum_plot (FILE *gp, const char *png, const char *title, const s_series_t *series,
                             size_t n)
{
    size_t present = 0;
    for (size_t i = 0; i < n; i++) {
        char path[1024];
        snprintf (path, sizeof path, "%s/data/%s.dat", bench_opts.out, series[i].key);
        present += access (path, R_OK) == 0;
    }
    if (!present)
        return;
    fprintf (gp, "set output '%s/%s'\n", bench_opts.out, png);
    fprintf (gp, "set title '%s'\n", title);
    fprintf (gp, "set logscale xy\nset grid\nset key outside right top\n");
    fprintf (gp, "set xlabel 'percentile'\nset ylabel 'latency (ms)'\n");
    fprintf (gp, "set xtics ('p50' 2, 'p90' 10, 'p99' 100, 'p99.9' 1000, 'p99.99' 10000, "
                 "'p99.999' 100000)\n");
    fprintf (gp, "set xrange [1:*]\n");
    fprintf (gp, "plot ");
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        char path[1024];
        snprintf (path, sizeof path, "%s/data/%s.dat", bench_opts.out, series[i].key);
        if (access (path, R_OK))
            continue;
        fprintf (gp, "%s'%s' using 2:3 with linespoints title '%s'", first ? "" : ", \\\n  ", path,
                 series[i].title);
        first = false;
    }
    fprintf (gp, "\n");
    fprintf (gp, "unset logscale\nunset xtics\nset xtics\nunset xrange\nset autoscale\n");
}

static void s_rate_plot (FILE *gp)
{
    fprintf (gp, "set output '%s/throughput.png'\n", bench_opts.out);
    fprintf (gp, "set title 'Throughput (median of the runs, bars = min–max)'\n");
    fprintf (gp, "unset xlabel\nset logscale y\nset grid ytics\nset ylabel 'records per second'\n");
    fprintf (gp, "set style fill solid 0.7\nset boxwidth 0.6\nset key off\n");
    fprintf (gp, "set xtics rotate by -30 left font ',9'\nset bmargin 8\n");
    fprintf (gp, "set xrange [-0.6:*]\nset offsets 0, 0.6, 0, 0\nset yrange [100:*]\n");
    //  Column 5 picks the colour: machine, techfeed, Redis, NATS.
    fprintf (gp, "human(v) = v >= 1e6 ? sprintf('%%.2fM', v/1e6) : v >= 1e4 ? sprintf('%%.0fk', "
                 "v/1e3) : v >= 1e3 ? sprintf('%%.1fk', v/1e3) : sprintf('%%.0f', v)\n");
    fprintf (gp,
             "colour(g) = g == 1 ? 0x999999 : g == 2 ? 0x1f77b4 : g == 3 ? 0xd62728 : 0x2ca02c\n");
    fprintf (gp,
             "plot '%s/data/throughput.dat' using 0:2:(0.6):(colour($5)):xtic(1) with boxes lc rgb "
             "variable, \\\n"
             "  '' using 0:2:3:4 with yerrorbars lc rgb 'black' pt 0, \\\n"
             "  '' using 0:($2*1.3):(human($2)) with labels font ',8'\n",
             bench_opts.out);
}

static void s_plots (void)
{
    char path[1024];
    snprintf (path, sizeof path, "%s/data/throughput.dat", bench_opts.out);
    FILE *data = fopen (path, "w");
    if (!data)
        return;
    fprintf (data, "# label median min max (per second)\n");
    int rows = 0;
    for (size_t i = 0; i < sizeof s_rate_series / sizeof s_rate_series[0]; i++) {
        const char *key = s_rate_series[i].key;
        if (bench_count (key))
            rows += fprintf (data, "\"%s\" %g %g %g %d\n", s_rate_series[i].title,
                             bench_median (key), bench_min (key), bench_max (key),
                             !strncmp (key, "machine", 7) ? 1
                             : !strncmp (key, "tf.", 3)   ? 2
                             : !strncmp (key, "redis", 5) ? 3
                                                          : 4) > 0;
    }
    fclose (data);
    snprintf (path, sizeof path, "%s/data/plots.gp", bench_opts.out);
    FILE *gp = fopen (path, "w");
    if (!gp)
        return;
    fprintf (gp, "set terminal pngcairo size 1400,700 font 'sans,10'\n");
    s_spectrum_plot (gp, "latency-view.png",
                     "Ingest to subscriber latency (open loop, from the scheduled send)",
                     s_view_series, sizeof s_view_series / sizeof s_view_series[0]);
    s_spectrum_plot (gp, "latency-ack.png", "Durable acknowledgement latency", s_ack_series,
                     sizeof s_ack_series / sizeof s_ack_series[0]);
    if (rows)
        s_rate_plot (gp);
    fclose (gp);
    char command[2400];
    snprintf (command, sizeof command, "gnuplot '%s' 2>'%s/data/gnuplot.log'", path,
              bench_opts.out);
    if (system (command) != 0)
        bench_note ("gnuplot failed (see %s/data/gnuplot.log): no PNGs", bench_opts.out);
}

// ------------------------------------------------------------------ the table

static void s_table (FILE *out)
{
    fprintf (out, "| measurement | median | spread (min–max) | ÷ limit | ÷ Redis always | ÷ NATS | "
                  "the bar |\n");
    fprintf (out, "|---|---:|---:|---:|---:|---:|---|\n");
    for (size_t i = 0; i < S_ROWS; i++) {
        const s_row_t *row = &s_rows[i];
        if (!row->label) {
            fprintf (out, "| **%s** | | | | | | |\n", row->key);
            continue;
        }
        double median = bench_median (row->key);
        char value[64], low[64], high[64], limit[32], redis[32], nats[32];
        s_format (median, row->unit, value, sizeof value);
        s_format (bench_min (row->key), row->unit, low, sizeof low);
        s_format (bench_max (row->key), row->unit, high, sizeof high);
        s_ratio (median, s_value (row->limit), limit, sizeof limit);
        s_ratio (median, s_value (row->redis), redis, sizeof redis);
        s_ratio (median, s_value (row->nats), nats, sizeof nats);
        fprintf (out, "| %s | %s | %s – %s | %s | %s | %s | %s%s |\n", row->label, value, low, high,
                 limit, redis, nats, row->bar ? row->bar : "", s_verdict (row));
    }
    //  Worst run: fewest matches against the most views checked.
    int ok = bench_count ("tf.digest.ok") ? (int) bench_min ("tf.digest.ok") : 0;
    int total = bench_count ("tf.digest.total") ? (int) bench_max ("tf.digest.total") : 0;
    fprintf (out,
             "| view digests equal to the service's (SYNC_STATUS), worst run | %d of %d | | | | | "
             "every view%s |\n",
             ok, total, total && ok == total ? " ✅" : " ❌");
}

static void s_header (FILE *out, const char *started, const char *machine, double elapsed_s)
{
    char versions[512];
    s_versions (versions, sizeof versions);
    double load[3] = { 0, 0, 0 };
    getloadavg (load, 3);
    fprintf (out, "- date: %s; %d runs%s, %.0f s in all\n", started, bench_opts.runs,
             bench_opts.quick ? " (--quick: short windows, smoke only)" : "", elapsed_s);
    fprintf (out, "- command: `%s`\n", bench_opts.command);
    fprintf (out,
             "- machine: %s at the start, %.2f %.2f %.2f at the end (other work on the "
             "machine shows here)\n",
             machine, load[0], load[1], load[2]);
    fprintf (out, "- software: %s\n", versions);
    fprintf (out,
             "- payload: the %s demo milestones cycled into %d distinct ids, %zu bytes packed on "
             "average; every process on 127.0.0.1\n",
             "clients/demo/milestones.ndjson", BENCH_IDS_MAX, bench_record_size ());
    fprintf (out, "- each figure is the median of the runs; spread = min–max over the runs; "
                  "latencies use CLOCK_MONOTONIC after a warm-up\n\n");
}

static void s_footer (FILE *out)
{
    fprintf (out, "\nNotes:\n\n");
    fprintf (out, "- Ratios divide techfeed's median by the other median: for rates above 1× is "
                  "better, for latencies below 1× is better. \"÷ limit\" is the machine limit "
                  "named in the row's group (fdatasync rate, fdatasync p50 + ZeroMQ RTT p50, "
                  "SQLite's batched rate).\n");
    fprintf (out, "- NATS JetStream (nats-server 2.9) acknowledges a publish before the message "
                  "is synced to disk (the file store syncs on a timer): its acks are not durable "
                  "the way techfeed's (synchronous=FULL) and Redis-always's are.\n");
    fprintf (out, "- Redis 50 clients: 50 connections, one XADD in flight on each, not "
                  "pipelined, driven from one thread. techfeed 8 × 64: 8 DEALER sockets with 64 "
                  "requests of one put each in flight, driven from one thread; NATS 8 × 64: 8 "
                  "connections with js_PublishAsync (MaxPending 64) from one thread.\n");
    fprintf (out,
             "- Ingest→view: open loop, latency from each put's scheduled send time to the "
             "moment a libtechfeed view has decoded and applied the event (callback); "
             "Redis and NATS readers decode each body and keep it in a table by id. "
             "Views share %d threads on this machine, each waiting on its views' ZMQ_FD "
             "descriptors with one poll(). The paced writers (techfeed, "
             "Redis, NATS) sleep with a timer slack of 1 µs, not Linux's default 50 µs, "
             "which they would have added to every latency.\n",
             2);
    fprintf (out, "- Catch-up: SYNC_CATCHUP/SYNC_NEXT from sequence 0 through libtechfeed's "
                  "sync stream, as views read it (each reply decoded into an arena, the next "
                  "chunk asked for before this one is applied); every change applied to an "
                  "id → revision table whose digest must equal the service's.\n");
    fprintf (out, "- Ack p99 while snapshots are served: paced puts at 1k/s while another "
                  "process loads 100k-record snapshots into new views, one after another. At "
                  "SCHED_IDLE that client stands in for one on another machine (it yields a "
                  "core at once to any other thread that wants it, which a nice-19 one did "
                  "not); at nice 0 its decoding competes with the paced writer and the "
                  "service for this machine's cores (both rows shown, the bar is read on the "
                  "first). Under each p99, the puts of that phase (warm-up included, about "
                  "3,300 in a full run) that the service itself took over 1 ms to answer, "
                  "from its /metrics histogram: the p99 is the 1 %% slowest, so when these "
                  "are fewer, the rest of the slow acks' time is spent outside the service's "
                  "receive → reply.\n");
    static const int rates[] = { 1, 10 }, subs[] = { 1, 10, 100 };
    for (int r = 0; r < 2; r++)
        for (int v = 0; v < 3; v++) {
            char key[64];
            snprintf (key, sizeof key, "tf.view.%dk.%d.saturated", rates[r], subs[v]);
            int runs = bench_count (key);
            int saturated = (int) bench_sum (key);
            if (!saturated)
                continue;
            snprintf (key, sizeof key, "tf.view.%dk.%d.achieved", rates[r], subs[v]);
            fprintf (
                out,
                "- ingest→view %dk/s × %d view(s): saturated in %d of %d run(s): the service fell "
                "a second of puts behind the schedule, which was then cut short; acks "
                "came at %.0f/s (median). Its latencies are those of a backlog.\n",
                rates[r], subs[v], saturated, runs, bench_median (key));
        }
    const char **notes;
    size_t n = bench_notes (&notes);
    for (size_t i = 0; i < n; i++)
        fprintf (out, "- %s\n", notes[i]);
    fprintf (out,
             "\nPlots: latency-view.png, latency-ack.png, throughput.png (latency spectra from "
             "the last run).\n");
}

void bench_report (const char *started, const char *machine, double elapsed_s)
{
    mkdir (bench_opts.out, 0755);
    s_plots ();
    char path[1024];
    snprintf (path, sizeof path, "%s/RESULTS.md", bench_opts.out);
    FILE *file = fopen (path, "w");
    FILE *outs[2] = { stdout, file };
    for (int i = 0; i < 2; i++) {
        if (!outs[i])
            continue;
        fprintf (outs[i], "# techfeed benchmark\n\n");
        s_header (outs[i], started, machine, elapsed_s);
        s_table (outs[i]);
        s_footer (outs[i]);
    }
    if (file) {
        fclose (file);
        fprintf (stderr, "bench: wrote %s and the PNGs beside it\n", path);
    }
}
