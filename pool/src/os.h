/*
 * os.h - the operating-system layer: the only module that calls mmap,
 * munmap, mprotect, madvise or reads /proc and /sys.
 *
 * Contract: addresses and lengths passed in are aligned to the OS page (and
 * to 2 MiB where a function says so); every function returns 0 on success and
 * -1 on failure, and none of them changes errno as seen by its caller.
 * Failures can be injected by tests (os_inject_failure) to exercise every
 * degraded path.
 */
#ifndef SEGPOOL_OS_H
#define SEGPOOL_OS_H

#include <stddef.h>
#include <stdint.h>

typedef enum os_op_e {
    OS_RESERVE,      /* os_reserve */
    OS_COMMIT,       /* os_commit (mprotect) */
    OS_HUGETLB,      /* os_commit_hugetlb (MAP_HUGETLB) */
    OS_ADVISE_HUGE,  /* madvise(MADV_HUGEPAGE) */
    OS_PURGE,        /* os_purge (decommit) */
    OS_META,         /* os_alloc_meta */
    OS_OP_COUNT
} os_op_t;

/* Reserve size bytes of address space aligned to align (a power of two),
 * inaccessible and uncharged.  NULL on failure. */
void *os_reserve(size_t size, size_t align);
/* Unmap [addr, addr+size): 0, or -1 (the kernel refused: near
 * vm.max_map_count, splitting a mapping needs one more). */
int os_release(void *addr, size_t size);

/* Make [addr, addr+size) readable and writable. */
int os_commit(void *addr, size_t size);

/* Map [addr, addr+size) (2 MiB aligned) from reserved hugetlbfs pages, in
 * place.  On failure the range is left reserved (PROT_NONE) as before. */
int os_commit_hugetlb(void *addr, size_t size);

/* Ask for transparent huge pages (huge != 0) or forbid them. */
int os_advise_huge(void *addr, size_t size, int huge);

/* Give the pages back to the OS: the range is reserved again (PROT_NONE,
 * uncharged), as after os_reserve, and needs a commit before reuse. */
int os_purge(void *addr, size_t size);

/* Write to every page so it is resident now. */
void os_touch(void *addr, size_t size);

/* Zeroed, writable, uncharged memory for metadata, page aligned, with an
 * inaccessible guard page on each side; NULL on failure. */
void *os_alloc_meta(size_t size);
/* Zeroed metadata mapped read-only, so that RLIMIT_DATA does not count it
 * until os_commit_meta makes a part of it writable, guarded the same way;
 * NULL on failure. */
void *os_reserve_meta(size_t size);
/* Unmap metadata from os_alloc_meta(size), its guards with it. */
void os_free_meta(void *addr, size_t size);
/* Make the pages holding [addr, addr + size) of such metadata writable: 0,
 * or -1 (RLIMIT_DATA reached).  Pages already writable stay as they are. */
int os_commit_meta(void *addr, size_t size);
/* Unmap the whole pages of such metadata within [addr, addr + size), which
 * must end where the metadata does (the guard page after it stays). */
void os_release_meta(void *addr, size_t size);

/* Facts about the machine. */
size_t os_page_size(void);
uint64_t os_physical_memory(void);
int os_thp_available(void);              /* THP not "never" and madvise supported */
long os_hugetlb_free_pages(void);        /* HugePages_Free of 2 MiB pages, -1 unknown */
uint64_t os_now_ms(void);                /* monotonic, coarse */
int os_is_secure(void);                  /* AT_SECURE: set-uid or similar */
uint64_t os_random(void);
size_t os_peak_rss(void);                /* bytes, VmHWM of /proc/self/status; 0 unknown */
unsigned os_cpu_count(void);             /* CPUs of the affinity mask at the call, at least 1 */
unsigned os_cpu_ids(void);               /* configured CPUs: CPU numbers are below it */
unsigned os_cpu_current(void);           /* the CPU the caller runs on (sched_getcpu), 0 unknown */

/* Resident bytes of [addr, addr+size) from /proc/self/smaps: rss counts 4 KiB,
 * THP and hugetlb pages; huge counts AnonHugePages and hugetlb pages.
 * Returns 0, or -1 when smaps could not be read. */
int os_smaps_range(const void *addr, size_t size, size_t *rss, size_t *huge);

/* Tests: let the next `count` calls of op fail, after `skip` more succeed. */
void os_inject_failure(os_op_t op, int skip, int count);
void os_inject_reset(void);

/* Limits (RLIMIT_AS, cgroups).  Map [addr, addr+size) inaccessible and
 * uncharged at exactly addr, never over an existing mapping: 0, -1 when the
 * address space or a limit has no room, -2 when the range is taken (or the
 * kernel cannot place a mapping exactly without replacing). */
int os_reserve_at(void *addr, size_t size);
uint64_t os_as_limit(void);              /* RLIMIT_AS soft limit in bytes, UINT64_MAX if none */
uint64_t os_data_limit(void);            /* RLIMIT_DATA soft limit in bytes, UINT64_MAX if none */
uint64_t os_vm_size(void);               /* address space mapped now (VmSize) in bytes, 0 unknown */
/* Memory that can be had without pressure: MemAvailable, lowered to the room
 * (limit - usage) of a limited memory cgroup; 0 unknown. */
uint64_t os_available_memory(void);

#endif /* SEGPOOL_OS_H */
