/*  libFuzzer entry: one JSON record, as `techfeed put` reads it.
    The target's body is fuzz_json_record_one in fuzz_targets.c. */
#include "fuzz_targets.h"

FUZZ_ENTRY (fuzz_json_record_one)
