/* common/ip.h: textual IP addresses as the filter, the rules and the block index compare
 * them: 16 bytes, IPv4 as ::ffff:a.b.c.d, so that every spelling of one address is the
 * same key. */
#ifndef VG_COMMON_IP_H
#define VG_COMMON_IP_H

#include <stdbool.h>
#include <stdint.h>

#include "common/span.h"

/* Parses s (not NUL-terminated) as IPv4 first, then IPv6 (inet_pton) into out. Sets *v4
 * (may be NULL) when it was written as IPv4. Returns false, out unspecified, otherwise. */
bool ip_parse16(struct span s, uint8_t out[16], bool *v4);

/* Whether ip lies in net/bits (0..128; both in the form of ip_parse16). Host bits set
 * in net are ignored. */
bool ip_in_net(const uint8_t ip[16], const uint8_t net[16], int bits);

#endif
