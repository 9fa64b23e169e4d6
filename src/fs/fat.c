/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The FAT driver: FAT12, FAT16 and FAT32 with VFAT long names, read and written in
 * userspace through the overlay, never mounted.
 *
 * The boot partition of a Pi image is FAT; piflash adds and replaces a handful of small
 * files there (user-data, network-config, ssh, config.txt). On open the boot sector is
 * validated against the partition and the whole FAT in use is cached in memory (at most
 * 64 MiB). Every chain walked is checked (inside the data area, no free or bad cluster, no
 * loop, no cross-link, long enough for the file), so a corrupt image is an error naming
 * the file, never a hang or a write somewhere wild. Before the first write every directory
 * is read once more, because two entries starting at the same cluster are a cross-link the
 * FAT alone does not show; a volume with one is not written at all (it can still be read).
 *
 * An operation plans before it writes: it finds the directory slots and counts the
 * clusters it needs for the data and for any directory growth, and fails with -ENOSPC
 * before a single byte changed. Then it writes the data clusters, the directory clusters
 * and, last, the FAT sectors it changed (to every FAT copy) and the FSInfo counters
 * (FAT32). FAT changes are journalled in memory, so an I/O error half way rolls the cache
 * back instead of leaving it out of step with the disk.
 *
 * Type rule (Linux and mtools): BPB_FATSz16 == 0 is FAT32 whatever the cluster count;
 * otherwise fewer than 4085 clusters is FAT12, else FAT16.
 * Names are UTF-8 on the API side and UTF-16 in long entries. A valid 8.3 name whose base
 * and extension are each in one case gets no long entry: lower case is recorded in the NT
 * case byte (0x08 base, 0x10 extension) as Windows NT, Linux and mtools read it. Any other
 * name gets long entries and a unique upper-case alias with a ~N tail. Lookup compares
 * ASCII letters regardless of case and everything else exactly, and matches the long name
 * or the 8.3 alias, as Linux vfat does.
 * FAT keeps no owner and no mode: stat reports uid 0, gid 0, 0755 (0555 with the read-only
 * attribute), the default of Linux vfat with umask 022, and size 0 for directories.
 * A volume marked dirty opens for reading; writes fail with -EUCLEAN (see fat.h).
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fs/fat.h"
#include "fs/fs-driver.h"
#include "util/error.h"
#include "util/strutil.h"

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

/* Where the long entry keeps its 13 UTF-16 units. */
static const uint8_t lfn_unit_off[FAT_LFN_UNITS] = {
	1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30
};

/* Code page 437, bytes 0x80..0xFF, for short names written by DOS (Linux and mtools
 * default to it). */
static const uint16_t cp437_high[128] = {
	0x00C7, 0x00FC, 0x00E9, 0x00E2, 0x00E4, 0x00E0, 0x00E5, 0x00E7, 0x00EA, 0x00EB, 0x00E8,
	0x00EF, 0x00EE, 0x00EC, 0x00C4, 0x00C5, 0x00C9, 0x00E6, 0x00C6, 0x00F4, 0x00F6, 0x00F2,
	0x00FB, 0x00F9, 0x00FF, 0x00D6, 0x00DC, 0x00A2, 0x00A3, 0x00A5, 0x20A7, 0x0192, 0x00E1,
	0x00ED, 0x00F3, 0x00FA, 0x00F1, 0x00D1, 0x00AA, 0x00BA, 0x00BF, 0x2310, 0x00AC, 0x00BD,
	0x00BC, 0x00A1, 0x00AB, 0x00BB, 0x2591, 0x2592, 0x2593, 0x2502, 0x2524, 0x2561, 0x2562,
	0x2556, 0x2555, 0x2563, 0x2551, 0x2557, 0x255D, 0x255C, 0x255B, 0x2510, 0x2514, 0x2534,
	0x252C, 0x251C, 0x2500, 0x253C, 0x255E, 0x255F, 0x255A, 0x2554, 0x2569, 0x2566, 0x2560,
	0x2550, 0x256C, 0x2567, 0x2568, 0x2564, 0x2565, 0x2559, 0x2558, 0x2552, 0x2553, 0x256B,
	0x256A, 0x2518, 0x250C, 0x2588, 0x2584, 0x258C, 0x2590, 0x2580, 0x03B1, 0x00DF, 0x0393,
	0x03C0, 0x03A3, 0x03C3, 0x00B5, 0x03C4, 0x03A6, 0x0398, 0x03A9, 0x03B4, 0x221E, 0x03C6,
	0x03B5, 0x2229, 0x2261, 0x00B1, 0x2265, 0x2264, 0x2320, 0x2321, 0x00F7, 0x2248, 0x00B0,
	0x2219, 0x00B7, 0x221A, 0x207F, 0x00B2, 0x25A0, 0x00A0,
};

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

static int oom(void)
{
	return pf_error_set(-ENOMEM, "FAT: out of memory");
}

/* ---- boot sector ---- */

int pf_fat_parse_boot(const uint8_t *b, size_t len, uint64_t partition_bytes, PfFatGeometry *ret)
{
	PfFatGeometry g = { 0 };
	uint32_t fatsz16, root_sectors;
	uint64_t meta_sectors, total16, total32, entries, need_fat_bytes;

	if (len < 512)
		return CORRUPT("boot sector is shorter than 512 bytes");

	g.bytes_per_sector = get16(b + 11);
	if (g.bytes_per_sector < 512 || g.bytes_per_sector > 4096 || !is_pow2(g.bytes_per_sector))
		return CORRUPT("%u bytes per sector (boot sector offset 11) is not a power of two "
			       "from 512 to 4096",
			       g.bytes_per_sector);
	g.sectors_per_cluster = b[13];
	if (!is_pow2(g.sectors_per_cluster))
		return CORRUPT("%u sectors per cluster (offset 13) is not a power of two from 1 "
			       "to 128",
			       g.sectors_per_cluster);
	g.cluster_bytes = g.bytes_per_sector * g.sectors_per_cluster;
	if (g.cluster_bytes > FAT_MAX_CLUSTER_BYTES)
		return CORRUPT("clusters of %u bytes are larger than 64 KiB", g.cluster_bytes);
	g.reserved_sectors = get16(b + 14);
	if (g.reserved_sectors == 0)
		return CORRUPT("no reserved sector (offset 14)");
	g.fat_count = b[16];
	if (g.fat_count < 1 || g.fat_count > 2)
		return CORRUPT("%u FATs (offset 16); 1 or 2 expected", g.fat_count);
	g.root_entries = get16(b + 17);
	total16 = get16(b + 19);
	fatsz16 = get16(b + 22);
	total32 = get32(b + 32);
	g.total_sectors = total16 ? total16 : total32;
	if (g.total_sectors == 0)
		return CORRUPT("volume of 0 sectors (offsets 19 and 32)");

	if (fatsz16 == 0) {
		/* FAT32, as Linux and mtools decide, whatever the cluster count. */
		uint16_t ext_flags = get16(b + 40);

		g.fat_bits = 32;
		g.fat_sectors = get32(b + 36);
		g.root_cluster = get32(b + 44);
		g.fsinfo_sector = get16(b + 48);
		if (g.root_entries != 0)
			return CORRUPT("FAT32 volume with %u fixed root directory entries "
				       "(offset 17)",
				       g.root_entries);
		if (g.fat_sectors == 0)
			return CORRUPT("FAT of 0 sectors (offsets 22 and 36)");
		if (ext_flags & 0x80) {
			g.active_fat = ext_flags & 0x0F;
			if (g.active_fat >= g.fat_count)
				return CORRUPT("active FAT %u of %u (offset 40)", g.active_fat,
					       g.fat_count);
		}
		if (g.fsinfo_sector == 0xFFFF || g.fsinfo_sector >= g.reserved_sectors)
			g.fsinfo_sector = 0;
		g.boot_dirty = b[65] & BOOT_STATE_DIRTY;
	} else {
		g.fat_sectors = fatsz16;
		if (g.root_entries == 0)
			return CORRUPT(
				"FAT12/16 volume without root directory entries (offset 17)");
		g.boot_dirty = b[37] & BOOT_STATE_DIRTY;
	}

	root_sectors = DIV_ROUND_UP(g.root_entries * FAT_SLOT_BYTES, g.bytes_per_sector);
	meta_sectors =
		(uint64_t)g.reserved_sectors + (uint64_t)g.fat_count * g.fat_sectors + root_sectors;
	if (meta_sectors >= g.total_sectors)
		return CORRUPT("reserved sectors, FATs and root directory (%" PRIu64
			       " sectors) do not fit in the volume (%" PRIu64 " sectors)",
			       meta_sectors, g.total_sectors);
	g.volume_bytes = g.total_sectors * g.bytes_per_sector;
	if (g.volume_bytes > partition_bytes)
		return CORRUPT("the volume (%" PRIu64
			       " bytes) is larger than its partition (%" PRIu64
			       " bytes): the image is truncated or the partition table is wrong",
			       g.volume_bytes, partition_bytes);
	if ((g.total_sectors - meta_sectors) / g.sectors_per_cluster > 0x0FFFFFF5u)
		return CORRUPT("too many clusters for FAT32");
	g.cluster_count = (uint32_t)((g.total_sectors - meta_sectors) / g.sectors_per_cluster);
	if (g.cluster_count == 0)
		return CORRUPT("no data cluster");

	if (g.fat_bits != 32) {
		if (g.cluster_count < 4085)
			g.fat_bits = 12;
		else if (g.cluster_count <= 65524)
			g.fat_bits = 16;
		else
			return CORRUPT("%u clusters are too many for FAT16", g.cluster_count);
	}

	/* Entries 0..cluster_count+1 must fit in one FAT. */
	entries = (uint64_t)g.cluster_count + 2;
	need_fat_bytes =
		g.fat_bits == 12 ? DIV_ROUND_UP(entries * 3, 2) : entries * (g.fat_bits / 8);
	if (need_fat_bytes > (uint64_t)g.fat_sectors * g.bytes_per_sector)
		return CORRUPT("FAT of %u sectors is too small for %u clusters", g.fat_sectors,
			       g.cluster_count);

	if (g.fat_bits == 32 && (g.root_cluster < 2 || g.root_cluster > g.cluster_count + 1))
		return CORRUPT("root directory cluster %u is outside the data area (2..%u)",
			       g.root_cluster, g.cluster_count + 1);

	g.fat_offset_bytes = (uint64_t)g.reserved_sectors * g.bytes_per_sector;
	g.root_offset_bytes =
		g.fat_offset_bytes + (uint64_t)g.fat_count * g.fat_sectors * g.bytes_per_sector;
	g.data_offset_bytes = g.root_offset_bytes + (uint64_t)root_sectors * g.bytes_per_sector;
	*ret = g;
	return 0;
}

/* ---- names ---- */

uint8_t pf_fat_lfn_checksum(const uint8_t short_name[11])
{
	uint8_t sum = 0;

	for (unsigned i = 0; i < 11; i++)
		sum = (uint8_t)(((sum & 1) << 7) + (sum >> 1) + short_name[i]);
	return sum;
}

/* Characters an 8.3 name may hold besides letters and digits. */
static bool short_char_ok(unsigned char c)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("$%'-_@~`!(){}^#&", c);
}

/* Decodes UTF-8 into UTF-16 units, rejecting what FAT cannot hold. */
static int name_to_utf16(const char *name, uint16_t units[FAT_NAME_UNITS], size_t *ret_n)
{
	const uint8_t *s = (const uint8_t *)name;
	size_t n = 0, len;

	if (!*s)
		return pf_error_set(-EINVAL, "FAT: empty name");
	if (streq(name, ".") || streq(name, ".."))
		return pf_error_set(-EINVAL, "FAT: '%s' cannot be created", name);

	while (*s) {
		uint32_t cp, min;
		size_t k;

		if (s[0] < 0x80) {
			cp = s[0];
			len = 1;
			min = 0;
		} else if ((s[0] & 0xE0) == 0xC0) {
			cp = s[0] & 0x1F;
			len = 2;
			min = 0x80;
		} else if ((s[0] & 0xF0) == 0xE0) {
			cp = s[0] & 0x0F;
			len = 3;
			min = 0x800;
		} else if ((s[0] & 0xF8) == 0xF0) {
			cp = s[0] & 0x07;
			len = 4;
			min = 0x10000;
		} else
			return pf_error_set(-EINVAL, "FAT: name '%s' is not valid UTF-8", name);
		/* A NUL ends the loop here too: it is no continuation byte. */
		for (k = 1; k < len; k++) {
			if ((s[k] & 0xC0) != 0x80)
				return pf_error_set(-EINVAL, "FAT: name '%s' is not valid UTF-8",
						    name);
			cp = cp << 6 | (s[k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return pf_error_set(-EINVAL, "FAT: name '%s' is not valid UTF-8", name);
		if (cp < 0x20 || (cp < 0x80 && strchr("*?<>|:\"\\/", (int)cp)))
			return pf_error_set(-EINVAL,
					    "FAT: name '%s' contains a character FAT does not "
					    "allow (control characters and * ? < > | : \" \\)",
					    name);
		if (n + (cp >= 0x10000 ? 2 : 1) > FAT_NAME_UNITS)
			return pf_error_set(-ENAMETOOLONG,
					    "FAT: name '%s' is longer than 255 UTF-16 units", name);
		if (cp >= 0x10000) {
			cp -= 0x10000;
			units[n++] = (uint16_t)(0xD800 + (cp >> 10));
			units[n++] = (uint16_t)(0xDC00 + (cp & 0x3FF));
		} else
			units[n++] = (uint16_t)cp;
		s += len;
	}
	if (s[-1] == '.' || s[-1] == ' ')
		return pf_error_set(-EINVAL, "FAT: name '%s' ends in '.' or ' ', which FAT drops",
				    name);
	*ret_n = n;
	return 0;
}

int pf_fat_check_name(const char *name)
{
	uint16_t units[FAT_NAME_UNITS];
	size_t n;

	return name_to_utf16(name, units, &n);
}

int pf_fat_short_name(const char *name, uint8_t ret_name[11], uint8_t *ret_case)
{
	size_t len = strlen(name), base_len, ext_len;
	const char *dot = strrchr(name, '.');
	bool lower[2] = { false, false }, upper[2] = { false, false };
	uint8_t out[11];

	if (len == 0 || len > 12)
		return 0;
	base_len = dot ? (size_t)(dot - name) : len;
	ext_len = dot ? len - base_len - 1 : 0;
	if (base_len == 0 || base_len > 8 || ext_len > 3 || (dot && ext_len == 0))
		return 0;

	memset(out, ' ', sizeof(out));
	for (size_t i = 0; i < len; i++) {
		unsigned part = i > base_len;
		char c = name[i];

		if (i == base_len)
			continue; /* the dot */
		if (!short_char_ok((unsigned char)c))
			return 0;
		if (c >= 'a' && c <= 'z')
			lower[part] = true;
		else if (c >= 'A' && c <= 'Z')
			upper[part] = true;
		out[part ? 8 + (i - base_len - 1) : i] = (uint8_t)ascii_upper(c);
	}
	if ((lower[0] && upper[0]) || (lower[1] && upper[1]))
		return 0;

	memcpy(ret_name, out, sizeof(out));
	*ret_case = (uint8_t)((lower[0] ? CASE_LOWER_BASE : 0) | (lower[1] ? CASE_LOWER_EXT : 0));
	return 1;
}

static int cmp11(const void *a, const void *b)
{
	return memcmp(a, b, 11);
}

/* Appends the 8.3 form of s[0..n) to out (at most max), returns whether anything was lost
 * other than case. */
static bool alias_part(const char *s, size_t n, char *out, size_t max, size_t *ret_len)
{
	bool lossy = false;
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char ch;

		if (c == ' ' || c == '.') {
			lossy = true;
			continue;
		}
		if (c >= 0x80) {
			/* One '_' per code point: continuation bytes add nothing. */
			if ((c & 0xC0) == 0x80)
				continue;
			ch = '_';
			lossy = true;
		} else if (short_char_ok(c))
			ch = ascii_upper((char)c);
		else {
			ch = '_';
			lossy = true;
		}
		if (o < max)
			out[o++] = ch;
		else
			lossy = true;
	}
	*ret_len = o;
	return lossy;
}

int pf_fat_make_alias(const char *name, const uint8_t (*taken)[11], size_t n_taken,
		      uint8_t ret_name[11])
{
	_cleanup_(freep) uint8_t(*sorted)[11] = NULL;
	const char *s = name, *dot;
	char base[8], ext[3];
	size_t base_len, ext_len;
	uint8_t cand[11];
	bool lossy = false;

	/* Leading dots and spaces are dropped, the extension is what follows the last dot. */
	while (*s == '.' || *s == ' ') {
		s++;
		lossy = true;
	}
	dot = strrchr(s, '.');
	if (alias_part(s, dot ? (size_t)(dot - s) : strlen(s), base, sizeof(base), &base_len))
		lossy = true;
	ext_len = 0;
	if (dot && alias_part(dot + 1, strlen(dot + 1), ext, sizeof(ext), &ext_len))
		lossy = true;
	if (base_len == 0) {
		base[0] = '_';
		base_len = 1;
		lossy = true;
	}

	if (n_taken > 0) {
		sorted = malloc(n_taken * 11);
		if (!sorted)
			return oom();
		memcpy(sorted, taken, n_taken * 11);
		qsort(sorted, n_taken, 11, cmp11);
	}

	memset(cand, ' ', sizeof(cand));
	memcpy(cand + 8, ext, ext_len);
	if (!lossy) {
		memcpy(cand, base, base_len);
		if (!n_taken || !bsearch(cand, sorted, n_taken, 11, cmp11))
			goto found;
	}
	for (unsigned n = 1; n <= 999999; n++) {
		char tail[9];
		int tl = snprintf(tail, sizeof(tail), "~%u", n);
		size_t keep = MIN(base_len, 8 - (size_t)tl);

		memset(cand, ' ', 8);
		memcpy(cand, base, keep);
		memcpy(cand + keep, tail, (size_t)tl);
		if (!n_taken || !bsearch(cand, sorted, n_taken, 11, cmp11))
			goto found;
	}
	return pf_error_set(-EEXIST, "FAT: no free 8.3 alias for '%s'", name);
found:
	memcpy(ret_name, cand, sizeof(cand));
	return 0;
}

static char *utf8_put(char *o, uint32_t cp)
{
	if (cp < 0x80)
		*o++ = (char)cp;
	else if (cp < 0x800) {
		*o++ = (char)(0xC0 | cp >> 6);
		*o++ = (char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		*o++ = (char)(0xE0 | cp >> 12);
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
		*o++ = (char)(0x80 | (cp & 0x3F));
	} else {
		*o++ = (char)(0xF0 | cp >> 18);
		*o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
		*o++ = (char)(0x80 | (cp & 0x3F));
	}
	return o;
}

/* UTF-16 to UTF-8; an unpaired surrogate becomes U+FFFD. out holds 3 bytes per unit + 1. */
static void utf16_to_utf8(const uint16_t *u, size_t n, char *out)
{
	char *o = out;

	for (size_t i = 0; i < n; i++) {
		uint32_t cp = u[i];

		if (cp >= 0xD800 && cp < 0xDC00 && i + 1 < n && u[i + 1] >= 0xDC00 &&
		    u[i + 1] < 0xE000) {
			cp = 0x10000 + ((cp - 0xD800) << 10) + (u[i + 1] - 0xDC00u);
			i++;
		} else if (cp >= 0xD800 && cp < 0xE000)
			cp = 0xFFFD;
		o = utf8_put(o, cp);
	}
	*o = 0;
}

/* The 8.3 name of a short entry as Linux and mtools show it (case byte applied). */
static void short_display(const uint8_t *sde, char *out)
{
	size_t base_len = 8, ext_len = 3;
	char *o = out;

	while (base_len > 0 && sde[base_len - 1] == ' ')
		base_len--;
	while (ext_len > 0 && sde[8 + ext_len - 1] == ' ')
		ext_len--;
	for (size_t i = 0; i < base_len + ext_len; i++) {
		bool in_ext = i >= base_len;
		uint8_t c = in_ext ? sde[8 + i - base_len] : sde[i];

		if (i == 0 && c == SLOT_KANJI_E5)
			c = SLOT_DELETED;
		if (in_ext && i == base_len)
			*o++ = '.';
		if (sde[12] & (in_ext ? CASE_LOWER_EXT : CASE_LOWER_BASE))
			c = (uint8_t)ascii_lower((char)c);
		o = utf8_put(o, c < 0x80 ? c : cp437_high[c - 0x80]);
	}
	*o = 0;
}

/* Compares a stored name with a looked-up one: ASCII letters without case, all else
 * exactly (Linux vfat with utf8 does no more). */
static bool name_eq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
		if (ascii_lower(*a) != ascii_lower(*b))
			return false;
	return *a == *b;
}

/* ---- time ---- */

void pf_fat_time_encode(int64_t seconds, uint16_t *ret_date, uint16_t *ret_time, uint8_t *ret_tenth)
{
	/* 1980-01-01 00:00:00 and 2107-12-31 23:59:59 UTC. */
	const int64_t lo = 315532800, hi = 4354819199;
	struct tm tm;
	time_t t;

	seconds = seconds < lo ? lo : seconds > hi ? hi : seconds;
	t = (time_t)seconds;
	gmtime_r(&t, &tm);
	*ret_date = (uint16_t)((tm.tm_year - 80) << 9 | (tm.tm_mon + 1) << 5 | tm.tm_mday);
	*ret_time = (uint16_t)(tm.tm_hour << 11 | tm.tm_min << 5 | tm.tm_sec / 2);
	*ret_tenth = (uint8_t)((tm.tm_sec % 2) * 100);
}

int64_t pf_fat_time_decode(uint16_t date, uint16_t time)
{
	struct tm tm = { 0 };
	int mon = (date >> 5) & 0x0F, day = date & 0x1F;

	/* Out-of-range fields (a zeroed entry has month 0) are clamped, as Linux does. */
	tm.tm_year = 80 + (date >> 9);
	tm.tm_mon = (mon < 1 ? 1 : mon > 12 ? 12 : mon) - 1;
	tm.tm_mday = day < 1 ? 1 : day;
	tm.tm_hour = MIN(time >> 11, 23);
	tm.tm_min = MIN((time >> 5) & 0x3F, 59);
	tm.tm_sec = MIN((time & 0x1F) * 2, 59);
	return (int64_t)timegm(&tm);
}

/* ---- the FAT ---- */

static inline bool cluster_ok(const PfFat *f, uint32_t c)
{
	return c >= 2 && c <= f->g.cluster_count + 1;
}

static inline uint64_t cluster_offset(const PfFat *f, uint32_t c)
{
	return f->g.data_offset_bytes + (uint64_t)(c - 2) * f->g.cluster_bytes;
}

static uint32_t fat_get(const PfFat *f, uint32_t c)
{
	switch (f->g.fat_bits) {
	case 12: {
		size_t o = (size_t)c + c / 2;
		uint16_t v = get16(f->fat + o);

		return c & 1 ? v >> 4 : v & 0x0FFFu;
	}
	case 16:
		return get16(f->fat + 2 * (size_t)c);
	default:
		return get32(f->fat + 4 * (size_t)c) & 0x0FFFFFFFu;
	}
}

static uint32_t fat_eoc(const PfFat *f)
{
	return f->g.fat_bits == 12 ? 0xFFFu : f->g.fat_bits == 16 ? 0xFFFFu : 0x0FFFFFFFu;
}

static bool fat_is_eoc(const PfFat *f, uint32_t v)
{
	return v >= (f->g.fat_bits == 12 ? 0xFF8u : f->g.fat_bits == 16 ? 0xFFF8u : 0x0FFFFFF8u);
}

static bool fat_is_bad(const PfFat *f, uint32_t v)
{
	return v == (f->g.fat_bits == 12 ? 0xFF7u : f->g.fat_bits == 16 ? 0xFFF7u : 0x0FFFFFF7u);
}

/* Stores an entry in the cache and marks the FAT sectors it touches. */
static void fat_put(PfFat *f, uint32_t c, uint32_t v)
{
	size_t o, len;

	switch (f->g.fat_bits) {
	case 12: {
		uint16_t w;

		o = (size_t)c + c / 2;
		w = get16(f->fat + o);
		w = c & 1 ? (uint16_t)((w & 0x000F) | (v << 4))
			  : (uint16_t)((w & 0xF000) | (v & 0x0FFF));
		put16(f->fat + o, w);
		len = 2;
		break;
	}
	case 16:
		o = 2 * (size_t)c;
		put16(f->fat + o, (uint16_t)v);
		len = 2;
		break;
	default:
		/* The top 4 bits are reserved and kept. */
		o = 4 * (size_t)c;
		put32(f->fat + o, (get32(f->fat + o) & 0xF0000000u) | (v & 0x0FFFFFFFu));
		len = 4;
		break;
	}
	for (size_t s = o / f->g.bytes_per_sector; s <= (o + len - 1) / f->g.bytes_per_sector; s++)
		f->dirty_sectors[s / 8] |= (uint8_t)(1u << (s % 8));
}

/* Changes an entry, keeping the free count and the in-degrees right. */
static void fat_set_raw(PfFat *f, uint32_t c, uint32_t v)
{
	uint32_t old = fat_get(f, c);

	if (cluster_ok(f, old) && f->indeg[old] > 0 && f->indeg[old] < 255)
		f->indeg[old]--;
	if (cluster_ok(f, v) && f->indeg[v] < 255)
		f->indeg[v]++;
	if (old == 0 && v != 0)
		f->free_count--;
	else if (old != 0 && v == 0)
		f->free_count++;
	fat_put(f, c, v);
}

/* Changes an entry within an operation; room in the journal was reserved by tx_begin(). */
static void fat_set(PfFat *f, uint32_t c, uint32_t v)
{
	if (f->journaling && f->n_undo < f->undo_alloc)
		f->undo[f->n_undo++] = (FatUndo){ c, fat_get(f, c) };
	fat_set_raw(f, c, v);
}

/* Starts an operation that changes at most max_changes FAT entries. */
static int tx_begin(PfFat *f, size_t max_changes)
{
	if (max_changes > f->undo_alloc) {
		FatUndo *u = reallocarray(f->undo, max_changes, sizeof(FatUndo));

		if (!u)
			return oom();
		f->undo = u;
		f->undo_alloc = max_changes;
	}
	f->n_undo = 0;
	f->journaling = true;
	return 0;
}

/* Undoes the FAT changes of the running operation in the cache. The sectors stay marked:
 * writing them again writes the old values back. */
static void tx_abort(PfFat *f)
{
	while (f->n_undo > 0) {
		f->n_undo--;
		fat_set_raw(f, f->undo[f->n_undo].cluster, f->undo[f->n_undo].old);
	}
	f->journaling = false;
}

/* Writes the changed FAT sectors to every FAT copy, then the FSInfo counters. */
static int fat_flush(PfFat *f)
{
	const uint32_t bps = f->g.bytes_per_sector;
	const size_t n_sectors = f->g.fat_sectors;
	int r;

	for (size_t s = 0; s < n_sectors;) {
		size_t e;

		if (!(f->dirty_sectors[s / 8] & (1u << (s % 8)))) {
			s++;
			continue;
		}
		for (e = s + 1; e < n_sectors && (f->dirty_sectors[e / 8] & (1u << (e % 8))); e++)
			;
		for (uint32_t i = 0; i < f->g.fat_count; i++) {
			uint64_t off =
				f->g.fat_offset_bytes + ((uint64_t)i * f->g.fat_sectors + s) * bps;

			r = pf_volume_write(&f->vol, off, f->fat + s * bps, (e - s) * bps);
			if (r < 0)
				return pf_error_prefix(r, "FAT: writing the FAT");
		}
		s = e;
	}
	memset(f->dirty_sectors, 0, DIV_ROUND_UP(n_sectors, 8));

	if (f->fsinfo_ok) {
		uint32_t next = f->last_alloc ? f->last_alloc : f->fsinfo_next;

		if (f->fsinfo_free != f->free_count || f->fsinfo_next != next) {
			uint8_t buf[8];

			put32(buf, f->free_count);
			put32(buf + 4, next);
			r = pf_volume_write(&f->vol, (uint64_t)f->g.fsinfo_sector * bps + 488, buf,
					    sizeof(buf));
			if (r < 0)
				return pf_error_prefix(r, "FAT: writing FSInfo");
			f->fsinfo_free = f->free_count;
			f->fsinfo_next = next;
		}
	}
	return 0;
}

static int tx_commit(PfFat *f)
{
	int r = fat_flush(f);

	if (r < 0) {
		tx_abort(f);
		return r;
	}
	f->n_undo = 0;
	f->journaling = false;
	return 0;
}

/*
 * Takes n free clusters (the caller checked free_count), links them into a chain ending
 * in end-of-chain and returns them in out. Allocation continues where the last one
 * stopped, so files written one after another lie contiguous. Returns 0, or -EUCLEAN if
 * fewer than n are free after all (the count is kept exact, so this is a bug guard).
 */
static int fat_alloc(PfFat *f, uint32_t n, uint32_t *out)
{
	const uint32_t max = f->g.cluster_count + 1;
	uint32_t c = cluster_ok(f, f->next_free) ? f->next_free : 2;
	uint32_t found = 0;

	/* free_count is exact, so one pass over the clusters finds n. */
	for (uint32_t scanned = 0; found < n && scanned < f->g.cluster_count; scanned++) {
		if (fat_get(f, c) == 0)
			out[found++] = c;
		c = c == max ? 2 : c + 1;
	}
	for (uint32_t i = 0; i < found; i++)
		fat_set(f, out[i], i + 1 < found ? out[i + 1] : fat_eoc(f));
	if (found > 0) {
		f->last_alloc = out[found - 1];
		f->next_free = c;
	}
	if (found < n)
		return CORRUPT("found %u free clusters where %u were counted", found, n);
	return 0;
}

static void fat_free_chain(PfFat *f, const uint32_t *chain, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fat_set(f, chain[i], 0);
}

/*
 * Walks the chain starting at first, of the file or directory at path (named in errors).
 * The chain must stay in the data area, meet no free or bad cluster, visit no cluster
 * twice (a loop), share no cluster with another chain (a cross-link: a cluster two
 * entries point at, or a first cluster something points at), and end within max_n
 * clusters. Terminates in at most cluster_count steps whatever the FAT holds, as no
 * cluster is visited twice.
 * Returns 0 and the clusters (malloc'd) in *ret, *ret_n, or -EUCLEAN with a detail.
 */
static int fat_walk(PfFat *f, uint32_t first, const char *path, size_t max_n, uint32_t **ret,
		    size_t *ret_n)
{
	uint32_t *list = NULL, c = first, merge = 0;
	size_t n = 0, alloc = 0;
	int r = 0;

	if (!cluster_ok(f, first))
		return CORRUPT("'%s' starts at cluster %u, outside the data area (2..%u)", path,
			       first, f->g.cluster_count + 1);
	/* A cluster two entries point at (or a first cluster one points at) is either a loop
	 * back into this chain or a cross-link with another one: walking on tells which. */
	if (f->indeg[first] != 0)
		merge = first;
	for (;;) {
		uint32_t next;

		if (n == max_n) {
			r = CORRUPT("cluster chain of '%s' is longer than %zu clusters", path,
				    max_n);
			break;
		}
		if (n == alloc) {
			size_t na = alloc ? alloc * 2 : 16;
			uint32_t *p = reallocarray(list, na, sizeof(uint32_t));

			if (!p) {
				r = oom();
				break;
			}
			list = p;
			alloc = na;
		}
		list[n++] = c;
		f->visited[c / 8] |= (uint8_t)(1u << (c % 8));

		next = fat_get(f, c);
		if (fat_is_eoc(f, next))
			break;
		if (next == 0) {
			r = CORRUPT("cluster chain of '%s' contains cluster %u, which is marked "
				    "free",
				    path, c);
			break;
		}
		if (fat_is_bad(f, next)) {
			r = CORRUPT("cluster chain of '%s' contains cluster %u, which is marked "
				    "bad",
				    path, c);
			break;
		}
		if (!cluster_ok(f, next)) {
			r = CORRUPT("cluster chain of '%s' leaves the data area at cluster %u "
				    "(next %u, last valid %u)",
				    path, c, next, f->g.cluster_count + 1);
			break;
		}
		if (f->visited[next / 8] & (1u << (next % 8))) {
			r = CORRUPT("cluster chain of '%s' loops at cluster %u", path, next);
			break;
		}
		if (f->indeg[next] > 1 && merge == 0)
			merge = next;
		c = next;
	}
	if (r == 0 && merge != 0)
		r = CORRUPT("cluster chain of '%s' is cross-linked with another chain at "
			    "cluster %u",
			    path, merge);
	for (size_t i = 0; i < n; i++)
		f->visited[list[i] / 8] &= (uint8_t) ~(1u << (list[i] % 8));
	if (r < 0) {
		free(list);
		return r;
	}
	*ret = list;
	*ret_n = n;
	return 0;
}

/* Reads or writes whole clusters, one call per contiguous run. */
static int clusters_io(PfFat *f, const uint32_t *cl, size_t n, uint8_t *buf, size_t len, bool write)
{
	const size_t cb = f->g.cluster_bytes;
	size_t done = 0;

	for (size_t i = 0; i < n && done < len;) {
		size_t j = i + 1, chunk;
		int r;

		while (j < n && cl[j] == cl[j - 1] + 1)
			j++;
		chunk = MIN((j - i) * cb, len - done);
		r = write ? pf_volume_write(&f->vol, cluster_offset(f, cl[i]), buf + done, chunk)
			  : pf_volume_read(&f->vol, cluster_offset(f, cl[i]), buf + done, chunk);
		if (r < 0)
			return r;
		done += chunk;
		i = j;
	}
	return 0;
}

/* ---- directories ---- */

static void dir_done(FatDir *d)
{
	free(d->clusters);
	free(d->buf);
	*d = (FatDir){ 0 };
}

static uint32_t sde_cluster(const PfFat *f, const uint8_t *sde)
{
	return get16(sde + 26) | (f->g.fat_bits == 32 ? (uint32_t)get16(sde + 20) << 16 : 0);
}

/* Reads the directory starting at first (0: the root) whole. */
static int dir_load(PfFat *f, uint32_t first, const char *path, FatDir *ret)
{
	FatDir d = { 0 };
	int r;

	if (first == 0) {
		d.is_root = true;
		if (f->g.fat_bits == 32)
			first = f->g.root_cluster;
	}
	d.first = first;
	if (first == 0) {
		d.n_slots = f->g.root_entries;
		d.buf = malloc(d.n_slots * FAT_SLOT_BYTES);
		if (!d.buf)
			return oom();
		r = pf_volume_read(&f->vol, f->g.root_offset_bytes, d.buf,
				   d.n_slots * FAT_SLOT_BYTES);
	} else {
		size_t max = MAX(FAT_MAX_DIR_SLOTS * FAT_SLOT_BYTES / f->g.cluster_bytes, 1u);

		r = fat_walk(f, first, path, max, &d.clusters, &d.n_clusters);
		if (r < 0)
			return r;
		d.n_slots = d.n_clusters * f->g.cluster_bytes / FAT_SLOT_BYTES;
		d.buf = malloc(d.n_clusters * f->g.cluster_bytes);
		if (!d.buf) {
			dir_done(&d);
			return oom();
		}
		r = clusters_io(f, d.clusters, d.n_clusters, d.buf,
				d.n_clusters * f->g.cluster_bytes, false);
	}
	if (r < 0) {
		dir_done(&d);
		return r;
	}
	*ret = d;
	return 0;
}

static void dir_touch(FatDir *d, size_t lo, size_t hi)
{
	if (d->dirty_lo >= d->dirty_hi) {
		d->dirty_lo = lo;
		d->dirty_hi = hi;
	} else {
		d->dirty_lo = MIN(d->dirty_lo, lo);
		d->dirty_hi = MAX(d->dirty_hi, hi);
	}
}

/* Writes the changed slots of d. */
static int dir_flush(PfFat *f, FatDir *d)
{
	const size_t cb = f->g.cluster_bytes;
	size_t off = d->dirty_lo * FAT_SLOT_BYTES, end = d->dirty_hi * FAT_SLOT_BYTES;
	int r;

	if (d->dirty_lo >= d->dirty_hi)
		return 0;
	if (!d->clusters) {
		r = pf_volume_write(&f->vol, f->g.root_offset_bytes + off, d->buf + off, end - off);
		if (r < 0)
			return r;
	} else
		while (off < end) {
			size_t in = off % cb, len = MIN(cb - in, end - off);

			r = pf_volume_write(&f->vol, cluster_offset(f, d->clusters[off / cb]) + in,
					    d->buf + off, len);
			if (r < 0)
				return r;
			off += len;
		}
	d->dirty_lo = d->dirty_hi = 0;
	return 0;
}

/*
 * Returns the next entry at or after *pos, skipping free slots, the volume label and the
 * "." and ".." entries; a long name is used only when its entries are complete, in order
 * and carry the checksum of the short entry that follows (else the 8.3 name is, as Linux
 * and Windows do). Returns false at the end of the directory.
 */
static bool dir_next(const FatDir *d, size_t *pos, FatEntry *e)
{
	uint16_t units[FAT_LFN_MAX_ENTRIES * FAT_LFN_UNITS];
	unsigned lfn_n = 0, lfn_next = 0;
	bool lfn_ok = false;
	uint8_t lfn_sum = 0;
	size_t lfn_start = 0;

	for (; *pos < d->n_slots; (*pos)++) {
		const uint8_t *p = d->buf + *pos * FAT_SLOT_BYTES;
		uint8_t attr = p[11];

		if (p[0] == SLOT_FREE_END)
			return false;
		if (p[0] == SLOT_DELETED) {
			lfn_ok = false;
			continue;
		}
		if ((attr & ATTR_LFN_MASK) == ATTR_LFN) {
			unsigned ord = p[0] & 0x3F;

			if (p[0] & LFN_LAST) {
				lfn_ok = ord >= 1 && ord <= FAT_LFN_MAX_ENTRIES;
				lfn_n = ord;
				lfn_sum = p[13];
				lfn_start = *pos;
			} else if (!lfn_ok || ord != lfn_next || ord == 0 || p[13] != lfn_sum)
				lfn_ok = false;
			if (lfn_ok) {
				for (unsigned j = 0; j < FAT_LFN_UNITS; j++)
					units[(ord - 1) * FAT_LFN_UNITS + j] =
						get16(p + lfn_unit_off[j]);
				lfn_next = ord - 1;
			}
			continue;
		}
		if ((attr & ATTR_VOLUME) || p[0] == '.') {
			lfn_ok = false;
			continue;
		}

		memcpy(e->sde, p, FAT_SLOT_BYTES);
		e->slot = *pos;
		e->first_slot = *pos;
		e->has_lfn = false;
		short_display(p, e->short_name);
		if (lfn_ok && lfn_next == 0 && pf_fat_lfn_checksum(p) == lfn_sum) {
			size_t len = 0;

			while (len < lfn_n * FAT_LFN_UNITS && units[len] != 0)
				len++;
			if (len > 0 && len <= FAT_NAME_UNITS) {
				utf16_to_utf8(units, len, e->name);
				e->has_lfn = true;
				e->first_slot = lfn_start;
			}
		}
		if (!e->has_lfn)
			memcpy(e->name, e->short_name, sizeof(e->short_name));
		(*pos)++;
		return true;
	}
	return false;
}

static bool dir_find(const FatDir *d, const char *name, FatEntry *ret)
{
	size_t pos = 0;

	while (dir_next(d, &pos, ret))
		if (name_eq(ret->name, name) || (ret->has_lfn && name_eq(ret->short_name, name)))
			return true;
	return false;
}

/* The 8.3 names a new alias must differ from: every short entry, and the 8.3 form of
 * every long name (so looking either up stays unambiguous). */
static int dir_taken(const FatDir *d, uint8_t (**ret)[11], size_t *ret_n)
{
	uint8_t(*t)[11] = NULL;
	size_t n = 0, alloc = 0, pos = 0;
	FatEntry *e;

	e = malloc(sizeof(*e));
	if (!e)
		return oom();
	/* Each slot yields at most one name, the long names at most one more each. */
	alloc = 2 * d->n_slots + 1;
	t = malloc(alloc * 11);
	if (!t) {
		free(e);
		return oom();
	}
	for (size_t i = 0; i < d->n_slots; i++) {
		const uint8_t *p = d->buf + i * FAT_SLOT_BYTES;

		if (p[0] == SLOT_FREE_END)
			break;
		if (p[0] == SLOT_DELETED || (p[11] & ATTR_LFN_MASK) == ATTR_LFN)
			continue;
		memcpy(t[n++], p, 11);
	}
	while (dir_next(d, &pos, e)) {
		uint8_t ncase;

		if (e->has_lfn && pf_fat_short_name(e->name, t[n], &ncase) == 1)
			n++;
	}
	free(e);
	*ret = t;
	*ret_n = n;
	return 0;
}

/*
 * Finds k consecutive free slots: deleted ones, or any from the end marker on. Returns
 * the first; when there are none, returns where the trailing free run starts (or n_slots)
 * and the number of slots missing in *ret_missing.
 */
static size_t dir_find_slots(const FatDir *d, size_t k, size_t *ret_missing)
{
	size_t run = 0, start = 0;
	bool end = false;

	for (size_t i = 0; i < d->n_slots; i++) {
		const uint8_t *p = d->buf + i * FAT_SLOT_BYTES;

		if (p[0] == SLOT_FREE_END)
			end = true;
		if (end || p[0] == SLOT_DELETED) {
			if (run == 0)
				start = i;
			if (++run == k) {
				*ret_missing = 0;
				return start;
			}
		} else
			run = 0;
	}
	*ret_missing = k - run;
	return run ? start : d->n_slots;
}

/* Plans room for k slots in d: the slot to use and the clusters to add. A full fixed root
 * or a directory at its 65536-slot limit is -ENOSPC. */
static int dir_plan(PfFat *f, FatDir *d, const char *path, size_t k, size_t *ret_slot,
		    uint32_t *ret_grow)
{
	size_t missing, slot = dir_find_slots(d, k, &missing);
	size_t per_cluster = f->g.cluster_bytes / FAT_SLOT_BYTES, grow;

	*ret_slot = slot;
	*ret_grow = 0;
	if (missing == 0)
		return 0;
	if (!d->clusters)
		return pf_error_set(-ENOSPC,
				    "FAT: no room for '%s': the root directory is full (%zu "
				    "entries; a long name takes more than one)",
				    path, d->n_slots);
	grow = DIV_ROUND_UP(missing, per_cluster);
	if (d->n_slots + grow * per_cluster > FAT_MAX_DIR_SLOTS)
		return pf_error_set(-ENOSPC,
				    "FAT: no room for '%s': its directory is full (%u entries)",
				    path, FAT_MAX_DIR_SLOTS);
	*ret_grow = (uint32_t)grow;
	return 0;
}

/* Makes room in memory for grow more clusters, before anything is changed. */
static int dir_reserve(PfFat *f, FatDir *d, uint32_t grow)
{
	size_t n = d->n_clusters + grow;
	uint32_t *c;
	uint8_t *b;

	if (grow == 0)
		return 0;
	c = reallocarray(d->clusters, n, sizeof(uint32_t));
	if (!c)
		return oom();
	d->clusters = c;
	b = realloc(d->buf, n * f->g.cluster_bytes);
	if (!b)
		return oom();
	d->buf = b;
	return 0;
}

/* Appends grow zeroed clusters (room reserved, free clusters counted) to d's chain. */
static int dir_grow(PfFat *f, FatDir *d, uint32_t grow)
{
	size_t old_slots = d->n_slots;
	int r;

	if (grow == 0)
		return 0;
	r = fat_alloc(f, grow, d->clusters + d->n_clusters);
	if (r < 0)
		return r;
	fat_set(f, d->clusters[d->n_clusters - 1], d->clusters[d->n_clusters]);
	d->n_clusters += grow;
	d->n_slots = d->n_clusters * f->g.cluster_bytes / FAT_SLOT_BYTES;
	memset(d->buf + old_slots * FAT_SLOT_BYTES, 0, (d->n_slots - old_slots) * FAT_SLOT_BYTES);
	dir_touch(d, old_slots, d->n_slots);
	return 0;
}

static void sde_set_times(uint8_t *p, int64_t mtime)
{
	uint16_t date, time;
	uint8_t tenth;

	pf_fat_time_encode(mtime, &date, &time, &tenth);
	p[13] = tenth;
	put16(p + 14, time);
	put16(p + 16, date);
	put16(p + 18, date);
	put16(p + 22, time);
	put16(p + 24, date);
}

static void sde_set_cluster(const PfFat *f, uint8_t *p, uint32_t cluster)
{
	put16(p + 20, f->g.fat_bits == 32 ? (uint16_t)(cluster >> 16) : 0);
	put16(p + 26, (uint16_t)cluster);
}

static void sde_fill(const PfFat *f, uint8_t *p, const uint8_t name[11], uint8_t attr,
		     uint8_t ncase, uint32_t cluster, uint32_t size, int64_t mtime)
{
	memset(p, 0, FAT_SLOT_BYTES);
	memcpy(p, name, 11);
	if (p[0] == SLOT_DELETED)
		p[0] = SLOT_KANJI_E5;
	p[11] = attr;
	p[12] = ncase;
	sde_set_times(p, mtime);
	sde_set_cluster(f, p, cluster);
	put32(p + 28, size);
}

/* Writes the long entries and the short entry of a new name at slot. */
static void dir_put_entry(const PfFat *f, FatDir *d, size_t slot, const FatNewName *nn,
			  uint8_t attr, uint32_t cluster, uint32_t size, int64_t mtime)
{
	uint8_t sum = pf_fat_lfn_checksum(nn->short_name);
	size_t k = nn->n_lfn + 1, end_slot = d->n_slots;

	/* Where the end marker was: slots from it on may hold leftovers that the marker
	 * hid; the slot after the new entry must keep hiding them. */
	for (size_t i = 0; i < d->n_slots; i++)
		if (d->buf[i * FAT_SLOT_BYTES] == SLOT_FREE_END) {
			end_slot = i;
			break;
		}

	for (size_t i = 0; i < nn->n_lfn; i++) {
		uint8_t *p = d->buf + (slot + i) * FAT_SLOT_BYTES;
		size_t ord = nn->n_lfn - i;

		memset(p, 0, FAT_SLOT_BYTES);
		p[0] = (uint8_t)(ord | (i == 0 ? LFN_LAST : 0));
		p[11] = ATTR_LFN;
		p[13] = sum;
		for (size_t j = 0; j < FAT_LFN_UNITS; j++) {
			size_t u = (ord - 1) * FAT_LFN_UNITS + j;
			uint16_t v = u < nn->n_units ? nn->units[u] : u == nn->n_units ? 0 : 0xFFFF;

			put16(p + lfn_unit_off[j], v);
		}
	}
	sde_fill(f, d->buf + (slot + nn->n_lfn) * FAT_SLOT_BYTES, nn->short_name, attr, nn->ncase,
		 cluster, size, mtime);
	dir_touch(d, slot, slot + k);

	if (slot + k > end_slot && slot + k < d->n_slots &&
	    d->buf[(slot + k) * FAT_SLOT_BYTES] != SLOT_FREE_END) {
		memset(d->buf + (slot + k) * FAT_SLOT_BYTES, 0, FAT_SLOT_BYTES);
		dir_touch(d, slot + k, slot + k + 1);
	}
}

/* Works out how a new name is stored in d. */
static int new_name_prepare(const FatDir *d, const char *name, FatNewName *nn)
{
	uint8_t(*taken)[11] = NULL;
	size_t n_taken = 0;
	int r;

	r = name_to_utf16(name, nn->units, &nn->n_units);
	if (r < 0)
		return r;
	if (pf_fat_short_name(name, nn->short_name, &nn->ncase) == 1) {
		nn->n_lfn = 0;
		return 0;
	}
	r = dir_taken(d, &taken, &n_taken);
	if (r < 0)
		return r;
	r = pf_fat_make_alias(name, (const uint8_t(*)[11])taken, n_taken, nn->short_name);
	free(taken);
	if (r < 0)
		return r;
	nn->ncase = 0;
	nn->n_lfn = DIV_ROUND_UP(nn->n_units, FAT_LFN_UNITS);
	return 0;
}

/* ---- paths ---- */

static void fat_path_done(FatPath *p)
{
	dir_done(&p->parent);
}

/*
 * Looks up path: loads the directory holding its last component into ret->parent and,
 * when that component exists, its entry into ret->entry. A missing or non-directory
 * intermediate component is -ENOENT or -ENOTDIR.
 */
static int fat_resolve(PfFat *f, const char *path, FatPath *ret)
{
	const char *p = path;
	FatDir d = { 0 };
	int r;

	ret->is_root = false;
	ret->found = false;
	r = dir_load(f, 0, "/", &d);
	if (r < 0)
		return r;

	p += strspn(p, "/");
	if (!*p) {
		ret->is_root = true;
		ret->parent = d;
		return 0;
	}
	for (;;) {
		size_t len = strcspn(p, "/");
		char prefix[PF_PATH_MAX + 1];
		bool last;
		uint32_t cl;

		if (len > PF_NAME_MAX) {
			dir_done(&d);
			return pf_error_set(-ENAMETOOLONG, "a name in '%s' is too long", path);
		}
		memcpy(ret->name, p, len);
		ret->name[len] = 0;
		snprintf(prefix, sizeof(prefix), "%.*s", (int)(p + len - path), path);
		p += len;
		p += strspn(p, "/");
		last = !*p;

		ret->found = dir_find(&d, ret->name, &ret->entry);
		if (last) {
			ret->parent = d;
			return 0;
		}
		if (!ret->found) {
			dir_done(&d);
			return pf_error_set(-ENOENT, "'%s' does not exist", prefix);
		}
		if (!(ret->entry.sde[11] & ATTR_DIR)) {
			dir_done(&d);
			return pf_error_set(-ENOTDIR, "'%s' is not a directory", prefix);
		}
		cl = sde_cluster(f, ret->entry.sde);
		dir_done(&d);
		if (cl == 0)
			return CORRUPT("directory '%s' has no cluster", prefix);
		r = dir_load(f, cl, prefix, &d);
		if (r < 0)
			return r;
	}
}

static void entry_stat(const FatEntry *e, PfStat *st)
{
	bool dir = e->sde[11] & ATTR_DIR;
	mode_t perm = e->sde[11] & ATTR_READ_ONLY ? 0555 : 0755;

	*st = (PfStat){
		.mode = (dir ? S_IFDIR : S_IFREG) | perm,
		.size_bytes = dir ? 0 : get32(e->sde + 28),
		.mtime = pf_fat_time_decode(get16(e->sde + 24), get16(e->sde + 22)),
		.nlink = dir ? 2 : 1,
	};
}

/* A directory entry with a first cluster, as found by the cross-link scan. */
typedef struct LinkOwner {
	uint32_t cluster;
	char *path;
	bool is_dir;
} LinkOwner;

typedef struct LinkScan {
	LinkOwner *owners; /* every entry with a cluster: the directories are scanned in turn */
	size_t n, allocated;
	uint32_t *owner_of; /* per cluster: 1 + the index of the entry whose chain holds it */
} LinkScan;

static void link_scan_done(LinkScan *ls)
{
	for (size_t i = 0; i < ls->n; i++)
		free(ls->owners[i].path);
	free(ls->owners);
	free(ls->owner_of);
}

/* The error for a cluster found in the chains of two entries. */
static int link_scan_crossed(const LinkScan *ls, uint32_t c, const char *path)
{
	const LinkOwner *o = &ls->owners[ls->owner_of[c] - 1];

	if (o->cluster == c)
		return CORRUPT("'%s' and '%s' are cross-linked: both start at cluster %u", o->path,
			       path, c);
	return CORRUPT("'%s' and '%s' are cross-linked at cluster %u", o->path, path, c);
}

/*
 * Adds an entry (taking path) and marks the clusters of its chain as its own; a cluster
 * already another entry's is a cross-link. Anything else wrong with the chain (a loop, a
 * free or bad cluster, a link out of the data area) just ends the walk here: it is an
 * error naming the file when the chain is used.
 */
static int link_scan_add(PfFat *f, LinkScan *ls, uint32_t first, char *path, bool is_dir)
{
	uint32_t c = first, mine;

	if (ls->n == ls->allocated) {
		size_t na = ls->allocated ? ls->allocated * 2 : 64;
		LinkOwner *p = reallocarray(ls->owners, na, sizeof(*p));

		if (!p) {
			free(path);
			return oom();
		}
		ls->owners = p;
		ls->allocated = na;
	}
	ls->owners[ls->n++] = (LinkOwner){ .cluster = first, .path = path, .is_dir = is_dir };
	mine = (uint32_t)ls->n;
	for (uint32_t steps = 0; steps <= f->g.cluster_count; steps++) {
		uint32_t next;

		if (ls->owner_of[c] == mine)
			break;
		if (ls->owner_of[c] != 0)
			return link_scan_crossed(ls, c, path);
		ls->owner_of[c] = mine;
		next = fat_get(f, c);
		if (fat_is_eoc(f, next) || next == 0 || fat_is_bad(f, next) || !cluster_ok(f, next))
			break;
		c = next;
	}
	return 0;
}

/* Checks the entries of the directory starting at first (0: the root), adding each to ls. */
static int link_scan_dir(PfFat *f, LinkScan *ls, uint32_t first, const char *dir_path)
{
	FatDir d;
	FatEntry *e;
	size_t pos = 0;
	int r;

	e = malloc(sizeof(*e));
	if (!e)
		return oom();
	r = dir_load(f, first, dir_path, &d);
	if (r < 0) {
		free(e);
		return r;
	}
	while (r == 0 && dir_next(&d, &pos, e)) {
		uint32_t c = sde_cluster(f, e->sde);
		char *path;

		/* An empty file has no cluster; a cluster outside the data area is an error
		 * of its own when that entry is used, and shares nothing. */
		if (c == 0 || !cluster_ok(f, c))
			continue;
		if (asprintf(&path, "%s/%s", streq(dir_path, "/") ? "" : dir_path, e->name) < 0) {
			r = oom();
			break;
		}
		if (strlen(path) > PF_PATH_MAX) {
			r = pf_error_set(
				-ENAMETOOLONG,
				"FAT: '%.64s...' is longer than %u bytes: cannot check the "
				"volume for cross-links before writing",
				path, PF_PATH_MAX);
			free(path);
			break;
		}
		if (ls->owner_of[c] != 0) {
			r = link_scan_crossed(ls, c, path);
			free(path);
			break;
		}
		if (f->indeg[c] != 0) {
			uint32_t from = 0;

			for (uint32_t k = 2; k <= f->g.cluster_count + 1 && !from; k++)
				if (fat_get(f, k) == c)
					from = k;
			r = CORRUPT("'%s' is cross-linked: its first cluster %u is also the next "
				    "cluster of %u in another chain",
				    path, c, from);
			free(path);
			break;
		}
		r = link_scan_add(f, ls, c, path, e->sde[11] & ATTR_DIR);
	}
	dir_done(&d);
	free(e);
	return r;
}

/*
 * The FAT links counted at open (indeg) catch chains that merge or run into a first
 * cluster, whenever such a chain is walked. They cannot see two directory entries that
 * start at the same cluster: writing one of them would free the clusters and reuse them,
 * emptying the other, perhaps a directory. So before the first write every directory is
 * read once: each cluster that begins a chain must be named by exactly one entry (the
 * FAT32 root's by none) and be the next cluster of no FAT entry, and no cluster may be in
 * the chains of two entries. Each directory is entered once, through the only entry
 * allowed to name it, and each chain walk ends within cluster_count steps, so the scan
 * ends whatever the image holds. Chains no entry names (lost clusters) are never freed or
 * reused by piflash; one running into a file's chain is caught when that chain is walked.
 */
static int fat_check_links(PfFat *f)
{
	LinkScan ls = { 0 };
	int r;

	ls.owner_of = calloc((size_t)f->g.cluster_count + 2, sizeof(uint32_t));
	if (!ls.owner_of)
		return oom();
	if (f->g.fat_bits == 32 && cluster_ok(f, f->g.root_cluster)) {
		char *root = strdup("/");

		r = root ? link_scan_add(f, &ls, f->g.root_cluster, root, false) : oom();
		if (r < 0)
			goto out;
		if (f->indeg[f->g.root_cluster] != 0) {
			r = CORRUPT("the root directory is cross-linked: its first cluster %u is "
				    "the next cluster of another chain",
				    f->g.root_cluster);
			goto out;
		}
	}
	r = link_scan_dir(f, &ls, 0, "/");
	/* Owners grow while directories are scanned: each directory added is scanned once. */
	for (size_t i = 0; r == 0 && i < ls.n; i++)
		if (ls.owners[i].is_dir)
			r = link_scan_dir(f, &ls, ls.owners[i].cluster, ls.owners[i].path);
out:
	link_scan_done(&ls);
	return r;
}

static int check_writable(PfFat *f)
{
	int r;

	if (f->dirty)
		return pf_error_set(-EUCLEAN,
				    "FAT: the volume is marked dirty (%s); run fsck.fat on it "
				    "before piflash changes it",
				    f->dirty_reason);
	if (f->links_state < 0)
		return pf_error_set(f->links_state, "%s", f->links_error);
	if (f->links_state > 0)
		return 0;
	r = fat_check_links(f);
	if (r == -ENOMEM)
		return r; /* not a property of the volume: try again next time */
	if (r < 0) {
		snprintf(f->links_error, sizeof(f->links_error),
			 "%s; run fsck.fat on the volume "
			 "before piflash changes it",
			 pf_error_message(r));
		f->links_state = r;
		return pf_error_set(r, "%s", f->links_error);
	}
	f->links_state = 1;
	return 0;
}

static int64_t attr_mtime(const PfAttr *attr)
{
	int64_t t = 0;

	if (attr)
		return attr->mtime;
	if (pf_timestamp(&t) < 0)
		t = 0;
	return t;
}

/* ---- the operations ---- */

static bool fat_handles(const char *blkid_type)
{
	return streq(blkid_type, "vfat") || streq(blkid_type, "msdos") ||
	       streq(blkid_type, "fat") || streq(blkid_type, "fat12") ||
	       streq(blkid_type, "fat16") || streq(blkid_type, "fat32");
}

static void fat_close(void *priv)
{
	PfFat *f = priv;

	if (!f)
		return;
	free(f->fat);
	free(f->dirty_sectors);
	free(f->indeg);
	free(f->visited);
	free(f->undo);
	free(f);
}

/* Why a volume counts as dirty, or NULL. fat_head holds at least FAT entries 0 and 1. */
static const char *dirty_reason(const PfFatGeometry *g, const uint8_t *fat_head)
{
	if (g->fat_bits == 16) {
		uint16_t e1 = get16(fat_head + 2);

		if (!(e1 & FAT16_CLEAN))
			return "FAT entry 1: not cleanly unmounted";
		if (!(e1 & FAT16_NO_ERROR))
			return "FAT entry 1: disk errors were seen";
	} else if (g->fat_bits == 32) {
		uint32_t e1 = get32(fat_head + 4);

		if (!(e1 & FAT32_CLEAN))
			return "FAT entry 1: not cleanly unmounted";
		if (!(e1 & FAT32_NO_ERROR))
			return "FAT entry 1: disk errors were seen";
	}
	if (g->boot_dirty)
		return "boot sector state: not cleanly unmounted";
	return NULL;
}

int pf_fat_probe_dirty(const PfVolume *vol)
{
	uint8_t boot[512], head[8];
	PfFatGeometry g;
	const char *why;
	int r;

	r = pf_volume_read(vol, 0, boot, sizeof(boot));
	if (r < 0)
		return r;
	r = pf_fat_parse_boot(boot, sizeof(boot), vol->size_bytes, &g);
	if (r < 0)
		return r;
	r = pf_volume_read(vol,
			   g.fat_offset_bytes +
				   (uint64_t)g.active_fat * g.fat_sectors * g.bytes_per_sector,
			   head, sizeof(head));
	if (r < 0)
		return r;
	why = dirty_reason(&g, head);
	if (!why)
		return 0;
	pf_error_set(-EUCLEAN, "FAT: the volume is marked dirty (%s)", why);
	return 1;
}

static int fat_open(const PfVolume *vol, void **ret_priv)
{
	uint8_t boot[512];
	PfFat *f;
	const char *why;
	uint64_t fat_bytes;
	int r;

	r = pf_volume_read(vol, 0, boot, sizeof(boot));
	if (r < 0)
		return pf_error_prefix(r, "FAT: reading the boot sector");
	f = calloc(1, sizeof(*f));
	if (!f)
		return oom();
	f->vol = *vol;
	r = pf_fat_parse_boot(boot, sizeof(boot), vol->size_bytes, &f->g);
	if (r < 0)
		goto fail;

	fat_bytes = (uint64_t)f->g.fat_sectors * f->g.bytes_per_sector;
	if (fat_bytes > FAT_MAX_FAT_BYTES) {
		r = pf_error_set(-EFBIG,
				 "FAT: a FAT of %" PRIu64 " bytes is more than the %u "
				 "piflash handles",
				 fat_bytes, FAT_MAX_FAT_BYTES);
		goto fail;
	}
	f->fat_bytes = (size_t)fat_bytes;
	f->fat = malloc(f->fat_bytes);
	f->dirty_sectors = calloc(DIV_ROUND_UP(f->g.fat_sectors, 8), 1);
	f->indeg = calloc((size_t)f->g.cluster_count + 2, 1);
	f->visited = calloc(DIV_ROUND_UP((size_t)f->g.cluster_count + 2, 8), 1);
	if (!f->fat || !f->dirty_sectors || !f->indeg || !f->visited) {
		r = oom();
		goto fail;
	}
	r = pf_volume_read(vol, f->g.fat_offset_bytes + (uint64_t)f->g.active_fat * fat_bytes,
			   f->fat, f->fat_bytes);
	if (r < 0) {
		pf_error_prefix(r, "FAT: reading the FAT");
		goto fail;
	}

	for (uint32_t c = 2; c <= f->g.cluster_count + 1; c++) {
		uint32_t v = fat_get(f, c);

		if (v == 0)
			f->free_count++;
		else if (cluster_ok(f, v) && f->indeg[v] < 255)
			f->indeg[v]++;
	}

	why = dirty_reason(&f->g, f->fat);
	if (why) {
		f->dirty = true;
		snprintf(f->dirty_reason, sizeof(f->dirty_reason), "%s", why);
	}

	if (f->g.fat_bits == 32 && f->g.fsinfo_sector) {
		uint8_t fsi[512];

		r = pf_volume_read(vol, (uint64_t)f->g.fsinfo_sector * f->g.bytes_per_sector, fsi,
				   sizeof(fsi));
		if (r < 0) {
			pf_error_prefix(r, "FAT: reading FSInfo");
			goto fail;
		}
		if (get32(fsi) == FSINFO_LEAD && get32(fsi + 484) == FSINFO_STRUCT &&
		    get32(fsi + 508) == FSINFO_TRAIL) {
			f->fsinfo_ok = true;
			f->fsinfo_free = get32(fsi + 488);
			f->fsinfo_next = get32(fsi + 492);
			if (cluster_ok(f, f->fsinfo_next))
				f->next_free = f->fsinfo_next + 1;
		}
	}
	if (!cluster_ok(f, f->next_free))
		f->next_free = 2;

	*ret_priv = f;
	return 0;
fail:
	fat_close(f);
	return r;
}

static int fat_sync(void *priv)
{
	PfFat *f = priv;

	if (f->dirty)
		return 0;
	return fat_flush(f);
}

static int fat_stat(void *priv, const char *path, PfStat *ret)
{
	PfFat *f = priv;
	FatPath fp;
	int r;

	r = fat_resolve(f, path, &fp);
	if (r < 0)
		return r;
	if (fp.is_root)
		*ret = (PfStat){ .mode = S_IFDIR | 0755, .nlink = 2 };
	else if (fp.found)
		entry_stat(&fp.entry, ret);
	else
		r = pf_error_set(-ENOENT, "'%s' does not exist", path);
	fat_path_done(&fp);
	return r;
}

static int fat_read_file(void *priv, const char *path, size_t max_bytes, uint8_t **ret_data,
			 size_t *ret_size)
{
	PfFat *f = priv;
	_cleanup_(freep) uint32_t *chain = NULL;
	_cleanup_(freep) uint8_t *data = NULL;
	size_t n = 0, need;
	uint32_t size, cl;
	FatPath fp;
	int r;

	if (max_bytes == 0)
		max_bytes = PF_FS_READ_MAX_BYTES;
	r = fat_resolve(f, path, &fp);
	if (r < 0)
		return r;
	if (fp.is_root || (fp.found && (fp.entry.sde[11] & ATTR_DIR)))
		r = pf_error_set(-EISDIR, "'%s' is a directory", path);
	else if (!fp.found)
		r = pf_error_set(-ENOENT, "'%s' does not exist", path);
	if (r < 0)
		goto out;

	size = get32(fp.entry.sde + 28);
	cl = sde_cluster(f, fp.entry.sde);
	if (size > max_bytes) {
		r = pf_error_set(-EFBIG, "'%s' is %u bytes, more than the %zu read at most", path,
				 size, max_bytes);
		goto out;
	}
	data = malloc(size ? size : 1);
	if (!data) {
		r = oom();
		goto out;
	}
	need = DIV_ROUND_UP((size_t)size, f->g.cluster_bytes);
	if (need > 0) {
		if (cl == 0) {
			r = CORRUPT("'%s' has %u bytes but no cluster", path, size);
			goto out;
		}
		r = fat_walk(f, cl, path, SIZE_MAX, &chain, &n);
		if (r < 0)
			goto out;
		if (n < need) {
			r = CORRUPT(
				"cluster chain of '%s' is shorter than its size: %zu clusters of "
				"%u bytes for %u bytes",
				path, n, f->g.cluster_bytes, size);
			goto out;
		}
		r = clusters_io(f, chain, need, data, size, false);
		if (r < 0)
			goto out;
	}
	*ret_data = TAKE_PTR(data);
	*ret_size = size;
out:
	fat_path_done(&fp);
	return r;
}

/* Writes size bytes of data over the clusters cl[0..n), zeroing the rest of the last one so
 * no old bytes linger behind the file's end. */
static int write_data(PfFat *f, const uint32_t *cl, size_t n, const void *data, size_t size)
{
	size_t slack = n * f->g.cluster_bytes - size;
	_cleanup_(freep) uint8_t *zero = NULL;
	int r;

	r = clusters_io(f, cl, n, (uint8_t *)(uintptr_t)data, size, true);
	if (r < 0 || slack == 0)
		return r;
	zero = calloc(1, slack);
	if (!zero)
		return oom();
	return pf_volume_write(&f->vol, cluster_offset(f, cl[n - 1]) + f->g.cluster_bytes - slack,
			       zero, slack);
}

static int fat_write_file(void *priv, const char *path, const void *data, size_t size,
			  const PfAttr *attr)
{
	PfFat *f = priv;
	_cleanup_(freep) uint32_t *old = NULL;
	_cleanup_(freep) uint32_t *chain = NULL;
	_cleanup_(freep) FatNewName *nn = NULL;
	size_t n_old = 0, need, slot = 0;
	uint32_t grow = 0;
	uint8_t fattr;
	int64_t mtime = attr_mtime(attr);
	FatPath fp;
	int r;

	r = check_writable(f);
	if (r < 0)
		return r;
	if (size > UINT32_MAX)
		return pf_error_set(-EFBIG, "FAT: '%s' has %zu bytes; FAT files end at 4 GiB - 1",
				    path, size);
	r = fat_resolve(f, path, &fp);
	if (r < 0)
		return r;
	if (fp.is_root) {
		r = pf_error_set(-EISDIR, "'%s' is a directory", path);
		goto out;
	}

	if (fp.found) {
		uint32_t cl = sde_cluster(f, fp.entry.sde);

		if (fp.entry.sde[11] & ATTR_DIR) {
			r = pf_error_set(-EISDIR, "'%s' is a directory", path);
			goto out;
		}
		if (cl != 0) {
			r = fat_walk(f, cl, path, SIZE_MAX, &old, &n_old);
			if (r < 0)
				goto out;
		}
	} else {
		nn = malloc(sizeof(*nn));
		if (!nn) {
			r = oom();
			goto out;
		}
		r = new_name_prepare(&fp.parent, fp.name, nn);
		if (r < 0)
			goto out;
		r = dir_plan(f, &fp.parent, path, nn->n_lfn + 1, &slot, &grow);
		if (r < 0)
			goto out;
	}

	need = DIV_ROUND_UP(size, f->g.cluster_bytes);
	if ((uint64_t)need + grow > (uint64_t)f->free_count + n_old) {
		r = pf_error_set(
			-ENOSPC,
			"FAT: no room for '%s': it needs %zu clusters of %u bytes, %" PRIu64
			" are free",
			path, need + grow, f->g.cluster_bytes, (uint64_t)f->free_count + n_old);
		goto out;
	}
	chain = malloc(MAX(need, 1u) * sizeof(uint32_t));
	if (!chain) {
		r = oom();
		goto out;
	}
	r = dir_reserve(f, &fp.parent, grow);
	if (r < 0)
		goto out;
	r = tx_begin(f, n_old + need + grow + 1);
	if (r < 0)
		goto out;

	/* From here on only I/O can fail, and the FAT cache is rolled back if it does. */
	fat_free_chain(f, old, n_old);
	r = fat_alloc(f, (uint32_t)need, chain);
	if (r >= 0)
		r = dir_grow(f, &fp.parent, grow);
	if (r >= 0)
		r = write_data(f, chain, need, data, size);
	if (r < 0)
		goto abort;

	fattr = attr && !(attr->mode & 0222) ? ATTR_READ_ONLY : ATTR_ARCHIVE;
	if (fp.found) {
		uint8_t *p = fp.parent.buf + fp.entry.slot * FAT_SLOT_BYTES;

		/* Hidden and system stay as they were; the name stays as it is stored. */
		p[11] = (uint8_t)(fattr | (p[11] & (ATTR_HIDDEN | ATTR_SYSTEM)));
		sde_set_times(p, mtime);
		sde_set_cluster(f, p, need ? chain[0] : 0);
		put32(p + 28, (uint32_t)size);
		dir_touch(&fp.parent, fp.entry.slot, fp.entry.slot + 1);
	} else
		dir_put_entry(f, &fp.parent, slot, nn, fattr, need ? chain[0] : 0, (uint32_t)size,
			      mtime);
	r = dir_flush(f, &fp.parent);
	if (r < 0)
		goto abort;
	r = tx_commit(f);
	goto out;
abort:
	tx_abort(f);
out:
	fat_path_done(&fp);
	return r;
}

static int fat_mkdir(void *priv, const char *path, const PfAttr *attr)
{
	PfFat *f = priv;
	_cleanup_(freep) FatNewName *nn = NULL;
	_cleanup_(freep) uint8_t *cbuf = NULL;
	uint8_t dot[11], dotdot[11];
	int64_t mtime = attr_mtime(attr);
	size_t slot;
	uint32_t grow, cl;
	FatPath fp;
	int r;

	r = check_writable(f);
	if (r < 0)
		return r;
	r = fat_resolve(f, path, &fp);
	if (r < 0)
		return r;
	if (fp.is_root || fp.found) {
		r = pf_error_set(-EEXIST, "'%s' exists", path);
		goto out;
	}
	nn = malloc(sizeof(*nn));
	cbuf = calloc(1, f->g.cluster_bytes);
	if (!nn || !cbuf) {
		r = oom();
		goto out;
	}
	r = new_name_prepare(&fp.parent, fp.name, nn);
	if (r < 0)
		goto out;
	r = dir_plan(f, &fp.parent, path, nn->n_lfn + 1, &slot, &grow);
	if (r < 0)
		goto out;
	if ((uint64_t)grow + 1 > f->free_count) {
		r = pf_error_set(-ENOSPC,
				 "FAT: no room for directory '%s': it needs %u clusters, %u are "
				 "free",
				 path, grow + 1, f->free_count);
		goto out;
	}
	r = dir_reserve(f, &fp.parent, grow);
	if (r < 0)
		goto out;
	r = tx_begin(f, grow + 2);
	if (r < 0)
		goto out;

	r = fat_alloc(f, 1, &cl);
	if (r >= 0)
		r = dir_grow(f, &fp.parent, grow);
	if (r < 0)
		goto abort;
	/* ".." of a directory in the root points at cluster 0, also on FAT32. */
	memset(dot, ' ', sizeof(dot));
	memset(dotdot, ' ', sizeof(dotdot));
	dot[0] = dotdot[0] = dotdot[1] = '.';
	sde_fill(f, cbuf, dot, ATTR_DIR, 0, cl, 0, mtime);
	sde_fill(f, cbuf + FAT_SLOT_BYTES, dotdot, ATTR_DIR, 0,
		 fp.parent.is_root ? 0 : fp.parent.first, 0, mtime);
	r = pf_volume_write(&f->vol, cluster_offset(f, cl), cbuf, f->g.cluster_bytes);
	if (r < 0)
		goto abort;
	dir_put_entry(f, &fp.parent, slot, nn, ATTR_DIR, cl, 0, mtime);
	r = dir_flush(f, &fp.parent);
	if (r < 0)
		goto abort;
	r = tx_commit(f);
	goto out;
abort:
	tx_abort(f);
out:
	fat_path_done(&fp);
	return r;
}

static int fat_symlink(void *priv, const char *path, const char *target, const PfAttr *attr)
{
	return pf_error_set(-EPERM, "FAT has no symbolic links: cannot create '%s'", path);
}

static int fat_readlink(void *priv, const char *path, char **ret_target)
{
	PfStat st;
	int r;

	r = fat_stat(priv, path, &st);
	if (r < 0)
		return r;
	return pf_error_set(-EINVAL, "'%s' is not a symbolic link (FAT has none)", path);
}

static int fat_remove(void *priv, const char *path)
{
	PfFat *f = priv;
	_cleanup_(freep) uint32_t *chain = NULL;
	_cleanup_(freep) FatEntry *e = NULL;
	size_t n = 0;
	uint32_t cl;
	FatPath fp;
	int r;

	r = check_writable(f);
	if (r < 0)
		return r;
	r = fat_resolve(f, path, &fp);
	if (r < 0)
		return r;
	if (fp.is_root) {
		r = pf_error_set(-EBUSY, "cannot remove the root directory");
		goto out;
	}
	if (!fp.found) {
		r = pf_error_set(-ENOENT, "'%s' does not exist", path);
		goto out;
	}
	cl = sde_cluster(f, fp.entry.sde);
	if (fp.entry.sde[11] & ATTR_DIR) {
		FatDir sub;
		size_t pos = 0;
		bool empty;

		if (cl == 0) {
			r = CORRUPT("directory '%s' has no cluster", path);
			goto out;
		}
		e = malloc(sizeof(*e));
		if (!e) {
			r = oom();
			goto out;
		}
		r = dir_load(f, cl, path, &sub);
		if (r < 0)
			goto out;
		empty = !dir_next(&sub, &pos, e);
		chain = TAKE_PTR(sub.clusters);
		n = sub.n_clusters;
		dir_done(&sub);
		if (!empty) {
			r = pf_error_set(-ENOTEMPTY, "directory '%s' is not empty", path);
			goto out;
		}
	} else if (cl != 0) {
		r = fat_walk(f, cl, path, SIZE_MAX, &chain, &n);
		if (r < 0)
			goto out;
	}

	r = tx_begin(f, n);
	if (r < 0)
		goto out;
	for (size_t s = fp.entry.first_slot; s <= fp.entry.slot; s++)
		fp.parent.buf[s * FAT_SLOT_BYTES] = SLOT_DELETED;
	dir_touch(&fp.parent, fp.entry.first_slot, fp.entry.slot + 1);
	fat_free_chain(f, chain, n);
	r = dir_flush(f, &fp.parent);
	if (r < 0) {
		tx_abort(f);
		goto out;
	}
	r = tx_commit(f);
out:
	fat_path_done(&fp);
	return r;
}

static int fat_list(void *priv, const char *path, PfDirent **ret, size_t *ret_n)
{
	PfFat *f = priv;
	_cleanup_(freep) FatEntry *e = NULL;
	PfDirent *list = NULL;
	size_t n = 0, alloc = 0, pos = 0;
	FatDir sub = { 0 }, *d;
	FatPath fp;
	int r;

	e = malloc(sizeof(*e));
	if (!e)
		return oom();
	r = fat_resolve(f, path, &fp);
	if (r < 0)
		return r;
	if (fp.is_root)
		d = &fp.parent;
	else if (!fp.found) {
		r = pf_error_set(-ENOENT, "'%s' does not exist", path);
		goto out;
	} else if (!(fp.entry.sde[11] & ATTR_DIR)) {
		r = pf_error_set(-ENOTDIR, "'%s' is not a directory", path);
		goto out;
	} else {
		uint32_t cl = sde_cluster(f, fp.entry.sde);

		if (cl == 0) {
			r = CORRUPT("directory '%s' has no cluster", path);
			goto out;
		}
		r = dir_load(f, cl, path, &sub);
		if (r < 0)
			goto out;
		d = &sub;
	}

	while (dir_next(d, &pos, e)) {
		if (n == alloc) {
			size_t na = alloc ? alloc * 2 : 16;
			PfDirent *p = reallocarray(list, na, sizeof(PfDirent));

			if (!p) {
				r = oom();
				goto out;
			}
			list = p;
			alloc = na;
		}
		list[n].name = strdup(e->name);
		if (!list[n].name) {
			r = oom();
			goto out;
		}
		entry_stat(e, &list[n].st);
		n++;
	}
	*ret = TAKE_PTR(list);
	*ret_n = n;
	r = 0;
out:
	pf_dirents_free(list, n);
	dir_done(&sub);
	fat_path_done(&fp);
	return r;
}

static int fat_used(void *priv, PfExtents *ret)
{
	PfFat *f = priv;
	const uint32_t max = f->g.cluster_count + 1;
	int r;

	/* Reserved sectors, every FAT and the fixed root lie before cluster 2. */
	r = pf_extents_add(ret, 0, f->g.data_offset_bytes);
	if (r < 0)
		return r;
	for (uint32_t c = 2; c <= max;) {
		uint32_t e;

		if (fat_get(f, c) == 0) {
			c++;
			continue;
		}
		for (e = c + 1; e <= max && fat_get(f, e) != 0; e++)
			;
		r = pf_extents_add(ret, cluster_offset(f, c),
				   (uint64_t)(e - c) * f->g.cluster_bytes);
		if (r < 0)
			return r;
		c = e;
	}
	return 0;
}

const PfFsOps pf_fat_ops = {
	.name = "fat",
	.handles = fat_handles,
	.open = fat_open,
	.sync = fat_sync,
	.close = fat_close,
	.stat = fat_stat,
	.read_file = fat_read_file,
	.write_file = fat_write_file,
	.mkdir = fat_mkdir,
	.symlink = fat_symlink,
	.readlink = fat_readlink,
	.remove = fat_remove,
	.list = fat_list,
	.used = fat_used,
};
