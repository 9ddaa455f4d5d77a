/*  libFuzzer entry: SyncRequest bytes, as the sync socket receives them.
    The target's body is fuzz_sync_request_one in fuzz_targets.c. */
#include "fuzz_targets.h"

FUZZ_ENTRY (fuzz_sync_request_one)
