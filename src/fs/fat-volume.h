/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * What the files of the FAT driver share, and nothing outside src/fs/fat*.c includes: the
 * on-disk constants, the in-memory volume (PfFat) with its cached FAT and journal, a
 * directory read whole (FatDir), and the functions each file offers the others.
 *
 *   fat.c        the driver glue: open (FAT cache, FSInfo), stat, list, used blocks
 *   fat-boot.c   the boot sector: validation, geometry, the dirty state
 *   fat-name.c   names (UTF-8 and UTF-16, 8.3 names, aliases) and time stamps
 *   fat-table.c  the FAT: entries, the journal, allocation, chain walks, cluster I/O
 *   fat-dir.c    directories: reading, long names, new entries, path lookup
 *   fat-check.c  the cross-link scan before the first write
 *   fat-file.c   the operations that read and change files: read, write, mkdir, remove
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fs/fat.h"
#include "fs/fs.h"
#include "util/error.h"

#define FAT_SLOT_BYTES 32u
/* The FAT is cached whole; a 2 TiB FAT32 with 32 KiB clusters has a 256 MiB FAT, boot
 * partitions have at most a few MiB. */
#define FAT_MAX_FAT_BYTES (64u * 1024u * 1024u)
/* Windows and Linux stop a directory at 65536 slots (2 MiB). */
#define FAT_MAX_DIR_SLOTS 65536u
#define FAT_MAX_CLUSTER_BYTES (64u * 1024u)
#define FAT_LFN_UNITS 13u	/* UTF-16 units per long entry */
#define FAT_NAME_UNITS 255u	/* UTF-16 units per long name */
#define FAT_LFN_MAX_ENTRIES 20u /* DIV_ROUND_UP(255, 13) */
#define FAT_NAME_UTF8_MAX (FAT_NAME_UNITS * 3u)

#define ATTR_READ_ONLY 0x01
#define ATTR_HIDDEN 0x02
#define ATTR_SYSTEM 0x04
#define ATTR_VOLUME 0x08
#define ATTR_DIR 0x10
#define ATTR_ARCHIVE 0x20
#define ATTR_LFN 0x0F
#define ATTR_LFN_MASK 0x3F

#define CASE_LOWER_BASE 0x08
#define CASE_LOWER_EXT 0x10

#define SLOT_FREE_END 0x00
#define SLOT_DELETED 0xE5
#define SLOT_KANJI_E5 0x05 /* a name starting with byte 0xE5 stores 0x05 */
#define LFN_LAST 0x40

/* FAT12/16 entry 1 and FAT32 entry 1 flags: set means clean / no error. */
#define FAT16_CLEAN 0x8000u
#define FAT16_NO_ERROR 0x4000u
#define FAT32_CLEAN 0x08000000u
#define FAT32_NO_ERROR 0x04000000u
#define BOOT_STATE_DIRTY 0x01 /* Linux's FAT_STATE_DIRTY in the boot sector */

#define FSINFO_LEAD 0x41615252u
#define FSINFO_STRUCT 0x61417272u
#define FSINFO_TRAIL 0xAA550000u

#define CORRUPT(fmt, ...) pf_error_set(-EUCLEAN, "FAT: " fmt, ##__VA_ARGS__)

typedef struct FatUndo {
	uint32_t cluster;
	uint32_t old;
} FatUndo;

typedef struct PfFat {
	PfVolume vol;
	PfFatGeometry g;
	uint8_t *fat; /* the FAT in use, whole */
	size_t fat_bytes;
	uint8_t *dirty_sectors; /* one bit per FAT sector changed and not yet written */
	uint8_t *indeg;		/* per cluster: FAT entries pointing at it, saturating at 255 */
	uint8_t *visited;	/* one bit per cluster, all clear between walks */
	uint32_t free_count;
	uint32_t next_free;   /* where the next allocation starts looking */
	uint32_t last_alloc;  /* last cluster allocated, FSInfo's hint; 0 if none yet */
	bool fsinfo_ok;	      /* FAT32 with a valid FSInfo sector */
	uint32_t fsinfo_free; /* FSInfo counters as on disk */
	uint32_t fsinfo_next;
	bool dirty; /* marked dirty: reads only */
	char dirty_reason[96];
	/* The cross-link scan before the first write: 0 not run yet, 1 clean, <0 the error
	 * (with its detail kept in links_error for later writes). */
	int links_state;
	char links_error[768];
	/* Entries changed by the running operation, for rollback. */
	FatUndo *undo;
	size_t n_undo, undo_alloc;
	bool journaling;
} PfFat;

/* A directory read whole into memory. */
typedef struct FatDir {
	bool is_root;
	uint32_t first;	    /* first cluster; 0 for the fixed root of FAT12/16 */
	uint32_t *clusters; /* the chain; NULL for the fixed root */
	size_t n_clusters;
	uint8_t *buf;
	size_t n_slots;
	size_t dirty_lo, dirty_hi; /* slots changed in buf and not yet written: [lo, hi) */
} FatDir;

/* A directory entry as found: the short entry and the long name before it, if any. */
typedef struct FatEntry {
	size_t first_slot; /* first long entry, or the short entry when there is none */
	size_t slot;	   /* the short entry */
	uint8_t sde[FAT_SLOT_BYTES];
	bool has_lfn;
	char name[FAT_NAME_UTF8_MAX + 1];
	char short_name[40]; /* 8.3 name as displayed, case byte applied */
} FatEntry;

/* The result of looking up a path: the directory holding its last component. */
typedef struct FatPath {
	bool is_root;
	bool found;
	FatDir parent;
	FatEntry entry;
	char name[PF_NAME_MAX + 1];
} FatPath;

/* A name to create: its 8.3 form and, when needed, its long entries. */
typedef struct FatNewName {
	uint8_t short_name[11];
	uint8_t ncase;
	uint16_t units[FAT_NAME_UNITS];
	size_t n_units;
	size_t n_lfn; /* long entries; 0 when the 8.3 name says it all */
} FatNewName;

static inline uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline bool is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

static inline char ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static inline char ascii_upper(char c)
{
	return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

static inline int oom(void)
{
	return pf_error_set(-ENOMEM, "FAT: out of memory");
}

static inline bool cluster_ok(const PfFat *f, uint32_t c)
{
	return c >= 2 && c <= f->g.cluster_count + 1;
}

static inline uint64_t cluster_offset(const PfFat *f, uint32_t c)
{
	return f->g.data_offset_bytes + (uint64_t)(c - 2) * f->g.cluster_bytes;
}

/* fat-boot.c: why a volume counts as dirty, or NULL. fat_head holds at least FAT entries 0
 * and 1. */
const char *fat_dirty_reason(const PfFatGeometry *g, const uint8_t *fat_head);

/* fat-name.c */
int fat_name_to_utf16(const char *name, uint16_t units[FAT_NAME_UNITS], size_t *ret_n);
void fat_utf16_to_utf8(const uint16_t *u, size_t n, char *out);
void fat_short_display(const uint8_t *sde, char *out);
bool fat_name_eq(const char *a, const char *b);

/* fat-table.c */
uint32_t fat_get(const PfFat *f, uint32_t c);
bool fat_is_eoc(const PfFat *f, uint32_t v);
bool fat_is_bad(const PfFat *f, uint32_t v);
void fat_set(PfFat *f, uint32_t c, uint32_t v);
int fat_tx_begin(PfFat *f, size_t max_changes);
void fat_tx_abort(PfFat *f);
int fat_tx_commit(PfFat *f);
int fat_flush(PfFat *f);
int fat_alloc(PfFat *f, uint32_t n, uint32_t *out);
void fat_free_chain(PfFat *f, const uint32_t *chain, size_t n);
int fat_walk(PfFat *f, uint32_t first, const char *path, size_t max_n, uint32_t **ret,
	     size_t *ret_n);
int fat_clusters_io(PfFat *f, const uint32_t *cl, size_t n, uint8_t *buf, size_t len, bool write);

/* fat-dir.c */
void fat_dir_done(FatDir *d);
uint32_t fat_sde_cluster(const PfFat *f, const uint8_t *sde);
int fat_dir_load(PfFat *f, uint32_t first, const char *path, FatDir *ret);
void fat_dir_touch(FatDir *d, size_t lo, size_t hi);
int fat_dir_flush(PfFat *f, FatDir *d);
int fat_dir_commit(PfFat *f, FatDir *d);
bool fat_dir_next(const FatDir *d, size_t *pos, FatEntry *e);
int fat_dir_plan(PfFat *f, FatDir *d, const char *path, size_t k, size_t *ret_slot,
		 uint32_t *ret_grow);
int fat_dir_reserve(PfFat *f, FatDir *d, uint32_t grow);
int fat_dir_grow(PfFat *f, FatDir *d, uint32_t grow);
void fat_sde_set_times(uint8_t *p, int64_t mtime);
void fat_sde_set_cluster(const PfFat *f, uint8_t *p, uint32_t cluster);
void fat_sde_fill(const PfFat *f, uint8_t *p, const uint8_t name[11], uint8_t attr, uint8_t ncase,
		  uint32_t cluster, uint32_t size, int64_t mtime);
void fat_dir_put_entry(const PfFat *f, FatDir *d, size_t slot, const FatNewName *nn, uint8_t attr,
		       uint32_t cluster, uint32_t size, int64_t mtime);
int fat_new_name_prepare(const FatDir *d, const char *name, FatNewName *nn);
void fat_path_done(FatPath *p);
int fat_resolve(PfFat *f, const char *path, FatPath *ret);
void fat_entry_stat(const FatEntry *e, PfStat *st);

/* fat-check.c: -EUCLEAN with a detail when the volume must not be written (marked dirty,
 * or cross-linked: scanned once, before the first write). */
int fat_check_writable(PfFat *f);

/* fat-file.c: the operations of pf_fat_ops that read and change files. */
int fat_read_file(void *priv, const char *path, size_t max_bytes, uint8_t **ret_data,
		  size_t *ret_size);
int fat_write_file(void *priv, const char *path, const void *data, size_t size, const PfAttr *attr);
int fat_mkdir(void *priv, const char *path, const PfAttr *attr);
int fat_remove(void *priv, const char *path);
