/*  techfeed-bench — make bench. Starts everything it measures itself on
    127.0.0.1 (techfeed-ingestd from the bench build, redis-server,
    nats-server), each with a temporary directory, stops each by PID, and
    prints one markdown table (see bench.h for the modules).

    Runs are interleaved (machine, techfeed, Redis, NATS; then again), so
    a slow minute on the machine touches every system alike.
*/
#include "bench.h"

#include <getopt.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "tf_testkit.h"

static const char *s_usage =
    "techfeed-bench — techfeed against the machine's limits and its peers.\n"
    "\n"
    "Examples:\n"
    "  make bench                              # full run, about 5 minutes\n"
    "  make bench BENCH_ARGS=--quick           # smoke run, about 1 minute\n"
    "  build/bench/techfeed-bench --runs 5 --only techfeed\n"
    "\n"
    "Options:\n"
    "  --runs N        measured runs, each figure is their median (default 3, at least 3\n"
    "                  for a spread worth reading)\n"
    "  --quick         one run (unless --runs), short windows, 10k records instead of\n"
    "                  100k: a smoke run, not figures to quote\n"
    "  --only LIST     comma-separated suites (machine,techfeed,redis,nats) or\n"
    "                  scenarios (techfeed.serial, .concurrent, .views, .sync, .rss),\n"
    "                  one views case (techfeed.views.1k.100: rate, subscribers)\n"
    "  --build DIR     where techfeed-ingestd is (default build/bench)\n"
    "  --out DIR       where RESULTS.md and the PNGs go (default build/bench)\n"
    "  --tmpdir DIR    where data directories go (default $TMPDIR or /tmp); its\n"
    "                  filesystem is the one fdatasync is measured on\n"
    "  --payloads FILE demo records (default clients/demo/milestones.ndjson)\n"
    "\n"
    "The bench runs itself as `techfeed-bench --snapshot-loop PRIORITY EVENTS SYNC`\n"
    "(PRIORITY: idle for SCHED_IDLE, or a nice value) for the snapshot client of the\n"
    "ack-during-snapshots rows.\n";

static char s_base[512]; /* our temporary directory, removed at exit */

static void s_on_signal (int signal)
{
    bench_children_kill ();
    _exit (128 + signal);
}

static void s_raise_fd_limit (void)
{
    struct rlimit limit;
    if (getrlimit (RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit (RLIMIT_NOFILE, &limit);
    }
    getrlimit (RLIMIT_NOFILE, &limit);
    if (limit.rlim_cur < 4096)
        bench_note ("open-file limit is %lu: the 1,000-subscriber figure may fall short",
                    (unsigned long) limit.rlim_cur);
}

static bool s_program (const char *name)
{
    char command[300], out[256];
    snprintf (command, sizeof command, "command -v %s", name);
    bench_command_line (command, out, sizeof out);
    return out[0] != 0;
}

int main (int argc, char *argv[])
{
    if (argc == 5 && streq (argv[1], "--snapshot-loop"))
        return bench_snapshot_loop (argv[2], argv[3], argv[4]);
    bench_opts.runs = 3;
    bench_opts.scale = 1.0;
    bench_opts.records = BENCH_IDS_MAX;
    bench_opts.rss_subscribers = 1000;
    snprintf (bench_opts.build, sizeof bench_opts.build, "build/bench");
    snprintf (bench_opts.out, sizeof bench_opts.out, "build/bench");
    snprintf (bench_opts.payloads, sizeof bench_opts.payloads, "clients/demo/milestones.ndjson");
    const char *tmp = getenv ("TMPDIR");
    snprintf (bench_opts.tmp, sizeof bench_opts.tmp, "%s", tmp && *tmp ? tmp : "/tmp");
    snprintf (bench_opts.only, sizeof bench_opts.only, "machine,techfeed,redis,nats");

    static const struct option options[] = {
        { "runs", required_argument, NULL, 'r' },
        { "quick", no_argument, NULL, 'q' },
        { "only", required_argument, NULL, 'o' },
        { "build", required_argument, NULL, 'b' },
        { "out", required_argument, NULL, 'O' },
        { "tmpdir", required_argument, NULL, 't' },
        { "payloads", required_argument, NULL, 'p' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    bool runs_given = false;
    while ((c = getopt_long (argc, argv, "h", options, NULL)) != -1) {
        switch (c) {
            case 'r':
                bench_opts.runs = atoi (optarg);
                runs_given = true;
                break;
            case 'q': bench_opts.quick = true; break;
            case 'o': snprintf (bench_opts.only, sizeof bench_opts.only, "%s", optarg); break;
            case 'b': snprintf (bench_opts.build, sizeof bench_opts.build, "%s", optarg); break;
            case 'O': snprintf (bench_opts.out, sizeof bench_opts.out, "%s", optarg); break;
            case 't': snprintf (bench_opts.tmp, sizeof bench_opts.tmp, "%s", optarg); break;
            case 'p':
                snprintf (bench_opts.payloads, sizeof bench_opts.payloads, "%s", optarg);
                break;
            case 'h': fputs (s_usage, stdout); return EX_OK;
            default: fputs (s_usage, stderr); return EX_USAGE;
        }
    }
    if (optind < argc || bench_opts.runs < 1 || bench_opts.runs > BENCH_RUNS_MAX) {
        fprintf (stderr, "techfeed-bench: --runs takes 1..%d and there are no arguments\n",
                 BENCH_RUNS_MAX);
        return EX_USAGE;
    }
    if (bench_opts.quick) {
        bench_opts.scale = 0.15;
        bench_opts.records = 10000;
        if (!runs_given)
            bench_opts.runs = 1;
    }
    if (bench_opts.runs < 3)
        bench_note ("only %d run(s): medians of fewer than 3 runs say little about spread",
                    bench_opts.runs);
    size_t used = 0;
    for (int i = 0; i < argc && used < sizeof bench_opts.command; i++)
        used += (size_t) snprintf (bench_opts.command + used, sizeof bench_opts.command - used,
                                   "%s%s", i ? " " : "", argv[i]);
    const char *shown = getenv ("BENCH_COMMAND");
    if (shown && *shown)
        snprintf (bench_opts.command, sizeof bench_opts.command, "%s", shown);

    //  Sockets: 1,000 SUBs and 100 views need more than CZMQ's default 1023.
    zsys_set_max_sockets (8192);
    zsys_handler_set (s_on_signal);
    zsys_init ();
    signal (SIGPIPE, SIG_IGN);
    s_raise_fd_limit ();

    //  Our own directory under the chosen one; the service's test kit puts
    //  its data directories under $TMPDIR and finds it in $TF_BUILD_DIR.
    snprintf (s_base, sizeof s_base, "%.480s/techfeed-bench-XXXXXX", bench_opts.tmp);
    if (!mkdtemp (s_base)) {
        fprintf (stderr, "techfeed-bench: cannot make a directory in %s\n", bench_opts.tmp);
        return EX_CANTCREAT;
    }
    char machine[1024], chosen[512];
    bench_machine_describe (machine, sizeof machine); /* names the chosen directory */
    snprintf (chosen, sizeof chosen, "%s", bench_opts.tmp);
    snprintf (bench_opts.tmp, sizeof bench_opts.tmp, "%s", s_base);
    setenv ("TMPDIR", s_base, 1);
    setenv ("TF_BUILD_DIR", bench_opts.build, 1);
    mkdir (bench_opts.out, 0755);

    char ingestd[700];
    snprintf (ingestd, sizeof ingestd, "%s/techfeed-ingestd", bench_opts.build);
    bool machine_on = bench_enabled ("machine");
    bool techfeed_on = bench_enabled ("techfeed");
    bench_opts.redis = bench_enabled ("redis");
    bench_opts.nats = bench_enabled ("nats");
    if (techfeed_on && access (ingestd, X_OK)) {
        fprintf (stderr, "techfeed-bench: %s is missing (make O=%s)\n", ingestd, bench_opts.build);
        return EX_UNAVAILABLE;
    }
    if (bench_opts.redis && !s_program ("redis-server")) {
        bench_note ("redis-server is not installed: no Redis rows (make bench-deps)");
        bench_opts.redis = false;
    }
    if (bench_opts.nats && !s_program ("nats-server")) {
        bench_note ("nats-server is not installed: no NATS rows (make bench-deps)");
        bench_opts.nats = false;
    }
    if (bench_payloads_load (bench_opts.payloads))
        return EX_DATAERR;

    time_t wall = time (NULL);
    char started[64];
    strftime (started, sizeof started, "%Y-%m-%d %H:%M UTC", gmtime (&wall));
    fprintf (stderr, "techfeed-bench: %s\n", machine);
    int64_t t0 = bench_now_ns ();
    for (int run = 0; run < bench_opts.runs; run++) {
        if (machine_on) {
            fprintf (stderr, "run %d/%d: machine limits\n", run + 1, bench_opts.runs);
            bench_machine_run (run);
        }
        if (techfeed_on) {
            fprintf (stderr, "run %d/%d: techfeed\n", run + 1, bench_opts.runs);
            bench_techfeed_run (run);
        }
        if (bench_opts.redis) {
            fprintf (stderr, "run %d/%d: Redis Streams\n", run + 1, bench_opts.runs);
            bench_redis_run (run);
        }
        if (bench_opts.nats) {
            fprintf (stderr, "run %d/%d: NATS JetStream\n", run + 1, bench_opts.runs);
            bench_nats_run (run);
        }
    }
    double elapsed = (double) (bench_now_ns () - t0) / 1e9;
    //  The report describes the directory the user chose, not ours.
    snprintf (bench_opts.tmp, sizeof bench_opts.tmp, "%s", chosen);
    bench_report (started, machine, elapsed);
    bench_children_kill ();
    tf_test_rmtree (s_base);
    bench_payloads_free ();
    return EX_OK;
}
