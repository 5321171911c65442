/* common/xalloc.h: allocation that aborts with the size on failure. Safe only because
 * no size chosen by a peer or a file reaches these unchecked. */
#ifndef VG_COMMON_XALLOC_H
#define VG_COMMON_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
