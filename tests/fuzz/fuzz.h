/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The libFuzzer entry points each target defines (tests/fuzz/fuzz-*.c). With -Dfuzz=true the
 * targets link libFuzzer (-fsanitize=fuzzer); otherwise replay.c provides main() and runs
 * each corpus file through LLVMFuzzerTestOneInput() once, so `meson test --suite fuzz` replays
 * the committed corpora in every build.
 */

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);
/* Provided by libFuzzer (and by a stub in replay.c). */
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
