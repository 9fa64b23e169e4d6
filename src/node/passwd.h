/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The image's accounts: /etc/passwd, /etc/group, /etc/shells and the password field of
 * /etc/shadow, parsed from the image's own files. Files a user will own (authorized_keys,
 * ~/.ssh) take their uid and gid from here — never from the host and never assumed.
 *
 * Input is bounded (PF_PASSWD_MAX_BYTES, PF_PASSWD_MAX_LINES). A malformed line — wrong
 * number of fields, an empty name, a uid or gid that is not a decimal number below 2^32-1,
 * a NUL byte — is skipped and counted (n_skipped, first_skipped_line), as glibc's
 * getpwnam() skips it; NIS compat lines ("+", "-") and comments are skipped without being
 * counted. The first of two entries with the same name wins, as with getpwnam().
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "fs/tree.h"
#include "util/macros.h"

#define PF_PASSWD_MAX_BYTES (1024u * 1024u)
#define PF_PASSWD_MAX_LINES 10000u

/* Debian's range for accounts made by adduser (/etc/adduser.conf FIRST_UID..LAST_UID). */
#define PF_UID_REGULAR_MIN 1000u
#define PF_UID_REGULAR_MAX 59999u

typedef struct PfPasswdEntry {
	char *name;
	uid_t uid;
	gid_t gid;
	char *gecos;
	char *home;
	char *shell; /* as written; "" means /bin/sh (passwd(5)) */
} PfPasswdEntry;

typedef struct PfPasswd {
	PfPasswdEntry *entries;
	size_t n;
	size_t n_skipped;	     /* malformed lines */
	unsigned first_skipped_line; /* 1-based; 0 when none */
} PfPasswd;

typedef struct PfGroupEntry {
	char *name;
	gid_t gid;
	char **members;
	size_t n_members;
} PfGroupEntry;

typedef struct PfGroup {
	PfGroupEntry *entries;
	size_t n;
	size_t n_skipped;
	unsigned first_skipped_line;
} PfGroup;

/*
 * Parses passwd text (len bytes, need not be NUL-terminated). Returns 0, -EFBIG past
 * PF_PASSWD_MAX_BYTES or -E2BIG past PF_PASSWD_MAX_LINES (with a detail), -ENOMEM.
 */
int pf_passwd_parse(const char *text, size_t len, PfPasswd **ret);
/* Reads and parses /etc/passwd of the booted system's view of the image (links followed).
 * -ENOENT with a detail when the image has none. */
int pf_passwd_load(PfTree *tree, PfPasswd **ret);
PfPasswd *pf_passwd_free(PfPasswd *pw);
DEFINE_TRIVIAL_CLEANUP_FUNC(PfPasswd *, pf_passwd_free);

/* The entry of name / of uid (the first such line), or NULL. pw may be NULL. */
const PfPasswdEntry *pf_passwd_find(const PfPasswd *pw, const char *name);
const PfPasswdEntry *pf_passwd_find_uid(const PfPasswd *pw, uid_t uid);

/* Deep copy of one entry; frees of arrays of copies. */
int pf_passwd_entry_copy(const PfPasswdEntry *e, PfPasswdEntry *ret);
void pf_passwd_entry_done(PfPasswdEntry *e);
void pf_passwd_entries_free(PfPasswdEntry *e, size_t n);

/* /etc/group: same rules and limits as passwd. */
int pf_group_parse(const char *text, size_t len, PfGroup **ret);
int pf_group_load(PfTree *tree, PfGroup **ret);
PfGroup *pf_group_free(PfGroup *g);
DEFINE_TRIVIAL_CLEANUP_FUNC(PfGroup *, pf_group_free);
const PfGroupEntry *pf_group_find(const PfGroup *g, const char *name);
/* The gid of group name: 0 or -ENOENT. */
int pf_group_gid(const PfGroup *g, const char *name, gid_t *ret);

/*
 * /etc/shells: the absolute paths listed, comments and blanks skipped. Returns the number
 * of shells (>= 0) in *ret (a NULL-terminated strv) or -errno.
 */
int pf_shells_parse(const char *text, size_t len, char ***ret);
void pf_strv_free(char **v);
static inline void pf_strv_freep(char ***v)
{
	pf_strv_free(*v);
}

/*
 * Whether shell is one a person logs in with. With shells (the image's /etc/shells, a
 * NULL-terminated list) it must be listed there, /bin/X and /usr/bin/X counting as one
 * (usrmerge). Without (NULL) anything but an empty-ish "nologin", "false", "sync" or
 * "halt"/"shutdown" counts. An empty shell means /bin/sh (passwd(5)), a login shell.
 */
bool pf_shell_is_login(const char *shell, char *const *shells);

/* A regular user: uid in PF_UID_REGULAR_MIN..PF_UID_REGULAR_MAX with a login shell. */
bool pf_passwd_is_regular(const PfPasswdEntry *e, char *const *shells);

/* Copies of the regular users of pw, in file order. */
int pf_passwd_regular(const PfPasswd *pw, char *const *shells, PfPasswdEntry **ret, size_t *ret_n);

typedef enum PfPasswordState {
	PF_PASSWORD_SET,      /* a hash: password logins work */
	PF_PASSWORD_EMPTY,    /* empty field: no password needed (!) */
	PF_PASSWORD_DISABLED, /* "*", "!", "!*", "x"...: no password login */
	PF_PASSWORD_LOCKED,   /* "!" before a hash (passwd -l) */
} PfPasswordState;

/* The password state of name in /etc/shadow text: 0, or -ENOENT if name has no line. */
int pf_shadow_state(const char *text, size_t len, const char *name, PfPasswordState *ret);
const char *pf_password_state_name(PfPasswordState s);
