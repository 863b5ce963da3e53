// SPDX-License-Identifier: GPL-2.0-only
/*
 * roundtrip: drive the real kernel through one anonymous-THP swap round trip
 * and time each phase with CLOCK_MONOTONIC.
 *
 *   roundtrip SIZE_BYTES [--pause]
 *
 * Phases, in order:
 *   fault    write every 4 KiB page with one plain 64-bit store of a non-zero,
 *            page-distinct value (the first store into each 2 MiB extent
 *            takes the THP fault; the other 511 hit the mapped THP)
 *   pageout  madvise(MADV_PAGEOUT) over the whole range
 *   touch    one volatile 64-bit load from the start of every 4 KiB page,
 *            compared with the value stored at fault time
 *   munmap   munmap of the range
 *
 * Memory: mmap(SIZE + 2 MiB) anonymous private, start aligned up to 2 MiB,
 * madvise(MADV_HUGEPAGE) on the aligned SIZE bytes.  The unaligned head and
 * tail of the reservation are unmapped before the fault phase so that the
 * munmap phase only covers the measured range.
 *
 * Output: one JSON object on stdout (the last line), e.g.
 *   {"size":..., "fault_s":..., "pageout_s":..., "touch_s":..., "munmap_s":...,
 *    "total_s":..., "mismatches":..., ...}
 *
 * With --pause, before each phase the program prints
 *   {"event":"ready","phase":"<name>"}
 * and waits for one line on stdin; after each phase it prints
 *   {"event":"done","phase":"<name>","seconds":...}
 * so that a driver can snapshot /proc/vmstat and the mTHP stats between
 * phases without those reads being timed.  Every line is flushed.
 *
 * Errors go to stderr as one line and the exit status is 1.  A failing
 * MADV_PAGEOUT is not fatal: it is reported in "pageout_error" and the
 * remaining phases still run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_HUGEPAGE
#define MADV_HUGEPAGE 14
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

#define PAGE_SZ 4096UL
#define HPAGE_SZ (2UL << 20)

static int pause_mode;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "roundtrip: %s: %s\n", what, strerror(err));
	exit(1);
}

/* In --pause mode: announce the phase and wait for the driver's go-ahead. */
static void phase_begin(const char *phase)
{
	char line[64];

	if (!pause_mode)
		return;
	printf("{\"event\":\"ready\",\"phase\":\"%s\"}\n", phase);
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin)) {
		fprintf(stderr, "roundtrip: stdin closed before phase %s\n", phase);
		exit(1);
	}
}

static void phase_end(const char *phase, double seconds)
{
	if (!pause_mode)
		return;
	printf("{\"event\":\"done\",\"phase\":\"%s\",\"seconds\":%.9f}\n",
	       phase, seconds);
	fflush(stdout);
}

/* Non-zero and distinct for every page index. */
static inline uint64_t page_value(size_t i)
{
	return 0xA5C3000000000000ULL | ((uint64_t)i + 1);
}

int main(int argc, char **argv)
{
	unsigned long long size_arg;
	size_t size, npages, i, resident = 0, mismatches = 0;
	char *raw, *buf, *end;
	size_t raw_len;
	uintptr_t aligned;
	double t0, fault_s, pageout_s, touch_s, munmap_s;
	int pageout_errno = 0;
	unsigned char *vec;

	if (argc < 2 || argc > 3 ||
	    (argc == 3 && strcmp(argv[2], "--pause") != 0)) {
		fprintf(stderr, "usage: %s SIZE_BYTES [--pause]\n", argv[0]);
		return 2;
	}
	pause_mode = argc == 3;
	errno = 0;
	size_arg = strtoull(argv[1], &end, 0);
	if (errno || *end || size_arg == 0 || size_arg % PAGE_SZ) {
		fprintf(stderr, "roundtrip: SIZE_BYTES must be a positive multiple of %lu\n",
			PAGE_SZ);
		return 2;
	}
	size = (size_t)size_arg;
	npages = size / PAGE_SZ;

	raw_len = size + HPAGE_SZ;
	raw = mmap(NULL, raw_len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED)
		die("mmap", errno);
	aligned = ((uintptr_t)raw + HPAGE_SZ - 1) & ~(HPAGE_SZ - 1);
	buf = (char *)aligned;
	/* Trim the unaligned head and tail so only [buf, buf+size) remains. */
	if (buf > raw && munmap(raw, (size_t)(buf - raw)))
		die("munmap head", errno);
	if (raw + raw_len > buf + size &&
	    munmap(buf + size, (size_t)(raw + raw_len - (buf + size))))
		die("munmap tail", errno);
	if (madvise(buf, size, MADV_HUGEPAGE))
		die("madvise(MADV_HUGEPAGE)", errno);

	vec = malloc((size + PAGE_SZ - 1) / PAGE_SZ);
	if (!vec)
		die("malloc", ENOMEM);

	/* fault: one plain store per 4 KiB page. */
	phase_begin("fault");
	t0 = now_s();
	for (i = 0; i < npages; i++)
		*(volatile uint64_t *)(buf + i * PAGE_SZ) = page_value(i);
	fault_s = now_s() - t0;
	phase_end("fault", fault_s);

	/* pageout */
	phase_begin("pageout");
	t0 = now_s();
	if (madvise(buf, size, MADV_PAGEOUT))
		pageout_errno = errno;
	pageout_s = now_s() - t0;
	phase_end("pageout", pageout_s);

	/* Untimed: how many pages are still resident (or in the swap cache). */
	if (mincore(buf, size, vec) == 0) {
		for (i = 0; i < npages; i++)
			resident += vec[i] & 1;
	} else {
		resident = (size_t)-1;
	}

	/* touch: one volatile load per 4 KiB page, verified. */
	phase_begin("touch");
	t0 = now_s();
	for (i = 0; i < npages; i++) {
		uint64_t v = *(volatile uint64_t *)(buf + i * PAGE_SZ);

		mismatches += v != page_value(i);
	}
	touch_s = now_s() - t0;
	phase_end("touch", touch_s);

	/* munmap */
	phase_begin("munmap");
	t0 = now_s();
	if (munmap(buf, size))
		die("munmap", errno);
	munmap_s = now_s() - t0;
	phase_end("munmap", munmap_s);

	free(vec);
	printf("{\"size\":%zu,\"fault_s\":%.9f,\"pageout_s\":%.9f,"
	       "\"touch_s\":%.9f,\"munmap_s\":%.9f,\"total_s\":%.9f,"
	       "\"mismatches\":%zu,\"resident_after_pageout\":%lld,"
	       "\"pageout_error\":",
	       size, fault_s, pageout_s, touch_s, munmap_s,
	       fault_s + pageout_s + touch_s + munmap_s, mismatches,
	       resident == (size_t)-1 ? -1LL : (long long)resident);
	if (pageout_errno)
		printf("\"%s\"", pageout_errno == EINVAL ? "EINVAL" : strerror(pageout_errno));
	else
		printf("null");
	printf("}\n");
	fflush(stdout);
	return 0;
}
