/*  libFuzzer entry: an import file (object, array or NDJSON) through tf_reader.
    The target's body is fuzz_ndjson_one in fuzz_targets.c. */
#include "fuzz_targets.h"

FUZZ_ENTRY (fuzz_ndjson_one)
