/*  fuzz_targets — the bodies of the libFuzzer harnesses, shared by the
    fuzzers (tests/fuzz/fuzz_*.c, built by `make fuzz` with clang) and by the
    regression replay (tests/unit/test_fuzz_regressions.c, part of `make
    test`), so a kept input is replayed through exactly the code that found
    it.

    Each target feeds one input to a decoder of untrusted bytes the way the
    service or the CLI does, then checks properties that must hold whatever
    the input (see fuzz_targets.c). Memory errors and undefined behaviour are
    left to the sanitizers. The targets share one scratch database (a temp
    file, made on first use, removed at exit).
*/
#ifndef FUZZ_TARGETS_H_INCLUDED
#define FUZZ_TARGETS_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

/*  0 when every property holds for the input (accepted or refused, as long
    as it was refused properly); -1 when one is broken, with
    fuzz_last_error() saying which. */
typedef int (fuzz_target_fn) (const uint8_t *data, size_t size);

int fuzz_ingest_request_one (const uint8_t *data, size_t size);
int fuzz_sync_request_one (const uint8_t *data, size_t size);
int fuzz_json_record_one (const uint8_t *data, size_t size);
int fuzz_ndjson_one (const uint8_t *data, size_t size);

/*  The broken property of the last failing call. Static buffer. */
const char *fuzz_last_error (void);

typedef struct {
    const char *name; /* directory name under tests/fuzz/corpus/ */
    fuzz_target_fn *run;
} fuzz_target_t;

/*  Every target, ended by { NULL, NULL }. */
extern const fuzz_target_t fuzz_targets[];

/*  The libFuzzer entry point's body: runs `target`, and on a broken
    property prints it and aborts, which libFuzzer reports as a crash and
    saves the input. */
int fuzz_main_one (fuzz_target_fn *target, const uint8_t *data, size_t size);

/*  Defines the libFuzzer entry point of a fuzzer binary (one per
    tests/fuzz/fuzz_<name>.c) as `target`. */
#define FUZZ_ENTRY(target)                                                                         \
    int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);                                 \
    int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)                                  \
    {                                                                                              \
        return fuzz_main_one (target, data, size);                                                 \
    }

#endif
