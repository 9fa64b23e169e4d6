/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Ctrl-C during a long run. SIGINT and SIGTERM set a flag, and the core, given the flag as its
 * cancel pointer, stops between chunks, cleanly: a card is never left half-written without
 * a word. SIGPIPE is ignored: a reader of our progress going away must not kill a
 * half-written card, and a closed standard output is an EPIPE write error, reported like any
 * other. Like util/log.h, only the command line sets this up.
 */

#include <signal.h>
#include <stdbool.h>

/* Installs the handlers; nested calls are counted, the outermost restores. */
void pf_signals_catch(void);
void pf_signals_restore(void);

/* True after SIGINT/SIGTERM since the outermost pf_signals_catch(). */
bool pf_interrupted(void);
/* The flag itself, for the core's cancel pointers (non-zero after SIGINT/SIGTERM). */
const volatile sig_atomic_t *pf_interrupt_flag(void);
