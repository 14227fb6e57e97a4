// LD_PRELOAD shim for the tests: counts every heap allocation function (malloc, calloc,
// realloc, reallocarray, posix_memalign, aligned_alloc, memalign, valloc, pvalloc) and
// prints "allocations: total N (malloc ... )" at exit. Tests/integration/cli_test.sh compiles it with
// cc to prove that training steps allocate nothing (two runs differing only in step count).
// Swift's aligned allocations (alignment > 16) go through posix_memalign, not malloc.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

enum { MALLOC, CALLOC, REALLOC, REALLOCARRAY, POSIX_MEMALIGN, ALIGNED_ALLOC, MEMALIGN, VALLOC, PVALLOC, KINDS };
static const char *names[KINDS] = {"malloc", "calloc", "realloc", "reallocarray", "posix_memalign",
                                   "aligned_alloc", "memalign", "valloc", "pvalloc"};
static unsigned long counts[KINDS];
#define COUNT(kind) __atomic_add_fetch(&counts[kind], 1, __ATOMIC_RELAXED)
#define REAL(name) static __typeof__(&name) real_##name; if (!real_##name) real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name)

// dlsym itself may call calloc before the real one is known: serve those from a static pool.
static char bootstrap[65536];
static size_t boot_used;
static void *(*real_malloc)(size_t);

void *malloc(size_t n) {
  if (!real_malloc) real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
  COUNT(MALLOC);
  return real_malloc(n);
}
void *calloc(size_t a, size_t b) {
  if (!real_malloc) { size_t n = (a * b + 15) & ~15UL; void *p = bootstrap + boot_used; boot_used += n; return p; }
  COUNT(CALLOC);
  void *p = real_malloc(a * b);
  if (p) __builtin_memset(p, 0, a * b);
  return p;
}
void *realloc(void *p, size_t n) { REAL(realloc); COUNT(REALLOC); return real_realloc(p, n); }
void *reallocarray(void *p, size_t a, size_t b) {
  REAL(reallocarray); COUNT(REALLOCARRAY); return real_reallocarray(p, a, b);
}
int posix_memalign(void **p, size_t a, size_t n) {
  REAL(posix_memalign); COUNT(POSIX_MEMALIGN); return real_posix_memalign(p, a, n);
}
void *aligned_alloc(size_t a, size_t n) { REAL(aligned_alloc); COUNT(ALIGNED_ALLOC); return real_aligned_alloc(a, n); }
void *memalign(size_t a, size_t n) { REAL(memalign); COUNT(MEMALIGN); return real_memalign(a, n); }
void *valloc(size_t n) { REAL(valloc); COUNT(VALLOC); return real_valloc(n); }
void *pvalloc(size_t n) { REAL(pvalloc); COUNT(PVALLOC); return real_pvalloc(n); }
void free(void *p) {
  static void (*real_free)(void *);
  if ((char *)p >= bootstrap && (char *)p < bootstrap + sizeof bootstrap) return;
  if (!real_free) real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
  real_free(p);
}

__attribute__((destructor)) static void report(void) {
  char b[512];
  unsigned long total = 0;
  for (int k = 0; k < KINDS; k++) total += counts[k];
  int n = snprintf(b, sizeof b, "allocations: total %lu (", total);
  for (int k = 0; k < KINDS; k++) n += snprintf(b + n, sizeof b - n, "%s%s %lu", k ? ", " : "", names[k], counts[k]);
  n += snprintf(b + n, sizeof b - n, ")\n");
  write(2, b, n);
}
