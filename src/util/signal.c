/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "util/signal.h"

static volatile sig_atomic_t interrupted;
static struct sigaction old_int, old_term, old_pipe;
static unsigned depth;

static void on_signal(int sig)
{
	interrupted = sig;
}

void pf_signals_catch(void)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct sigaction ign = { .sa_handler = SIG_IGN };

	if (depth++ > 0)
		return;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&ign.sa_mask);
	interrupted = 0;
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGPIPE, &ign, &old_pipe);
}

void pf_signals_restore(void)
{
	if (depth == 0 || --depth > 0)
		return;
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGPIPE, &old_pipe, NULL);
}

bool pf_interrupted(void)
{
	return interrupted != 0;
}

const volatile sig_atomic_t *pf_interrupt_flag(void)
{
	return &interrupted;
}
