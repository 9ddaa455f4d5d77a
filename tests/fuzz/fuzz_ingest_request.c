/*  libFuzzer entry: IngestRequest bytes, as the ingest socket receives them.
    The target's body is fuzz_ingest_request_one in fuzz_targets.c. */
#include "fuzz_targets.h"

FUZZ_ENTRY (fuzz_ingest_request_one)
