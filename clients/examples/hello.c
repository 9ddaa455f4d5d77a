/*  hello — the smallest program on libtechfeed: prints the library's
    version and, given the service's sync endpoint, the service's status.
    Built against an installed libtechfeed with pkg-config only:

        cc hello.c $(pkg-config --cflags --libs techfeed) -o hello
        ./hello                            libtechfeed 0.1.0 (header 0.1.0)
        ./hello tcp://127.0.0.1:5562       ... and the service's epoch,
                                           head sequence and record count

    Exit status: 0; 64 for a bad endpoint; 69 when the service did not
    answer. tests/integration/test_install.c builds and runs it. */
#include <techfeed/techfeed.h>

#include <inttypes.h>
#include <stdio.h>

int main (int argc, char *argv[])
{
    printf ("libtechfeed %s (header %d.%d.%d)\n", techfeed_version (), TECHFEED_VERSION_MAJOR,
            TECHFEED_VERSION_MINOR, TECHFEED_VERSION_PATCH);
    if (argc < 2)
        return 0;

    tf_query_t *query = tf_query_new (argv[1]);
    if (!query) {
        fprintf (stderr, "hello: '%s' is not an endpoint\n", argv[1]);
        return 64;
    }
    tf_query_set_timeout (query, 2000);
    tf_status_t status;
    int rc = 0;
    if (tf_query_status (query, &status) == 0)
        printf ("techfeed-ingestd %s: epoch %s, head %" PRIu64 ", records %" PRIu64 "\n",
                status.version, status.epoch, status.head_sequence, status.record_count);
    else {
        fprintf (stderr, "hello: %s: %s\n", argv[1], tf_query_errstr (query));
        rc = 69;
    }
    tf_query_destroy (&query);
    return rc;
}
