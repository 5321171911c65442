/* common/ip.c: see ip.h. No state; any thread. */
#include "common/ip.h"

#include <arpa/inet.h>
#include <string.h>

bool ip_parse16(struct span s, uint8_t out[16], bool *v4)
{
    char tmp[INET6_ADDRSTRLEN + 1];

    if (s.n == 0 || s.n >= sizeof(tmp)) {
        return false;
    }
    memcpy(tmp, s.p, s.n);
    tmp[s.n] = 0;
    if (inet_pton(AF_INET, tmp, out + 12) == 1) {
        memset(out, 0, 10);
        out[10] = 0xff;
        out[11] = 0xff;
        if (v4) {
            *v4 = true;
        }
        return true;
    }
    if (inet_pton(AF_INET6, tmp, out) == 1) {
        if (v4) {
            *v4 = false;
        }
        return true;
    }
    return false;
}

bool ip_in_net(const uint8_t ip[16], const uint8_t net[16], int bits)
{
    int full = bits / 8;
    int rest = bits % 8;

    if (memcmp(ip, net, (size_t)full) != 0) {
        return false;
    }
    if (rest == 0) {
        return true;
    }
    /* Both sides masked: a network written with host bits set (10.17.0.0/12) is the
     * network they belong to, whoever compiled it. */
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (ip[full] & mask) == (net[full] & mask);
}
