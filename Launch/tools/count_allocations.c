// LD_PRELOAD shim for the tests: counts malloc/calloc/realloc/posix_memalign calls and
// prints "allocations: ..." at exit. Launch/cli_test.sh compiles it with cc to prove
// that training steps allocate nothing (two runs differing only in step count).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static unsigned long n_malloc, n_calloc, n_realloc, n_memalign;
static void *(*real_malloc)(size_t);
static void *(*real_realloc)(void *, size_t);
static int (*real_posix_memalign)(void **, size_t, size_t);
static char bootstrap[65536]; static size_t boot_used;
void *malloc(size_t n) { if (!real_malloc) real_malloc = dlsym(RTLD_NEXT, "malloc"); __atomic_add_fetch(&n_malloc, 1, __ATOMIC_RELAXED); return real_malloc(n); }
void *calloc(size_t a, size_t b) {
  if (!real_malloc) { size_t n = (a * b + 15) & ~15UL; void *p = bootstrap + boot_used; boot_used += n; return p; }
  __atomic_add_fetch(&n_calloc, 1, __ATOMIC_RELAXED); void *p = real_malloc(a * b); if (p) __builtin_memset(p, 0, a * b); return p; }
void *realloc(void *p, size_t n) { if (!real_realloc) real_realloc = dlsym(RTLD_NEXT, "realloc"); __atomic_add_fetch(&n_realloc, 1, __ATOMIC_RELAXED); return real_realloc(p, n); }
int posix_memalign(void **p, size_t a, size_t n) { if (!real_posix_memalign) real_posix_memalign = dlsym(RTLD_NEXT, "posix_memalign"); __atomic_add_fetch(&n_memalign, 1, __ATOMIC_RELAXED); return real_posix_memalign(p, a, n); }
void free(void *p) { static void (*real_free)(void *); if ((char *)p >= bootstrap && (char *)p < bootstrap + sizeof bootstrap) return; if (!real_free) real_free = dlsym(RTLD_NEXT, "free"); real_free(p); }
__attribute__((destructor)) static void report(void) { char b[200]; int k = snprintf(b, sizeof b, "allocations: malloc %lu calloc %lu realloc %lu posix_memalign %lu\n", n_malloc, n_calloc, n_realloc, n_memalign); write(2, b, k); }
