/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "node/config.h"
#include "util/error.h"
#include "util/strutil.h"

/* ---- IPv4 ----------------------------------------------------------------------------------- */

/* A ':' is in no IPv4 address and in every IPv6 one: say so rather than that a number is
 * above 255 ("2001:db8::13") or that the dots are missing. */
static int ipv6_refused(const char *s)
{
	return pf_error_set(-EINVAL,
			    "'%.64s' is an IPv6 address: piflash sets IPv4 addresses only (IPv6 "
			    "is not supported here)",
			    s);
}

int pf_ipv4_parse(const char *s, uint32_t *ret_addr)
{
	uint32_t a = 0;
	const char *p = s;

	if (!s || !*s)
		return pf_error_set(-EINVAL, "empty IPv4 address");
	if (strchr(s, ':'))
		return ipv6_refused(s);
	for (int part = 0; part < 4; part++) {
		unsigned v = 0;
		const char *start = p;

		if (!pf_is_digit(*p))
			return pf_error_set(-EINVAL,
					    "'%.64s' is not an IPv4 address (four numbers 0-255 "
					    "separated by dots)",
					    s);
		while (pf_is_digit(*p)) {
			v = v * 10 + (unsigned)(*p - '0');
			if (v > 255)
				return pf_error_set(-EINVAL,
						    "'%.64s' is not an IPv4 address: a number is "
						    "above 255",
						    s);
			p++;
		}
		if (p - start > 1 && start[0] == '0')
			return pf_error_set(-EINVAL,
					    "'%.64s' has a number with a leading zero (ambiguous: "
					    "octal to some tools); write it without",
					    s);
		a = (a << 8) | v;
		if (part < 3) {
			if (*p != '.')
				return pf_error_set(-EINVAL,
						    "'%.64s' is not an IPv4 address (four numbers "
						    "0-255 separated by dots)",
						    s);
			p++;
		}
	}
	if (*p)
		return pf_error_set(-EINVAL,
				    "'%.64s' is not an IPv4 address (four numbers 0-255 separated "
				    "by dots)",
				    s);
	*ret_addr = a;
	return 0;
}

uint32_t pf_ipv4_netmask(unsigned prefix)
{
	if (prefix == 0)
		return 0;
	if (prefix >= 32)
		return UINT32_MAX;
	return UINT32_MAX << (32 - prefix);
}

bool pf_ipv4_in_subnet(uint32_t a, uint32_t net, unsigned prefix)
{
	uint32_t m = pf_ipv4_netmask(prefix);

	return (a & m) == (net & m);
}

void pf_ipv4_format(uint32_t a, char buf[static 16])
{
	snprintf(buf, 16, "%u.%u.%u.%u", (a >> 24) & 0xff, (a >> 16) & 0xff, (a >> 8) & 0xff,
		 a & 0xff);
}

/* A host may use a: not 0/8, loopback, multicast or reserved. */
int pf_ipv4_host_check(uint32_t a, const char *s)
{
	if ((a >> 24) == 0)
		return pf_error_set(-EINVAL, "'%s' is in 0.0.0.0/8, which no host can use", s);
	if ((a >> 24) == 127)
		return pf_error_set(-EINVAL, "'%s' is a loopback address", s);
	if (a >= 0xe0000000u)
		return pf_error_set(-EINVAL, "'%s' is a multicast or reserved address", s);
	return 0;
}

int pf_ipv4_parse_cidr(const char *s, uint32_t *ret_addr, unsigned *ret_prefix)
{
	char addr[16];
	const char *slash;
	uint32_t a, m;
	uint64_t prefix;
	char net[16];
	int r;

	if (!s || !*s)
		return pf_error_set(-EINVAL, "empty address");
	if (strchr(s, ':'))
		return ipv6_refused(s);
	slash = strchr(s, '/');
	if (!slash)
		return pf_error_set(-EINVAL,
				    "'%.64s' has no prefix length: write the address with its "
				    "subnet, like '10.0.0.13/24'",
				    s);
	if ((size_t)(slash - s) >= sizeof(addr))
		return pf_error_set(-EINVAL, "'%.64s' is not an IPv4 address", s);
	memcpy(addr, s, (size_t)(slash - s));
	addr[slash - s] = 0;
	r = pf_ipv4_parse(addr, &a);
	if (r < 0)
		return r;
	if (!pf_is_digit(slash[1]) || (slash[1] == '0' && slash[2]) ||
	    pf_parse_u64(slash + 1, &prefix) < 0 || prefix < 1 || prefix > 32)
		return pf_error_set(-EINVAL, "'%.64s': the prefix length must be 1 to 32", s);
	r = pf_ipv4_host_check(a, addr);
	if (r < 0)
		return r;
	m = pf_ipv4_netmask((unsigned)prefix);
	pf_ipv4_format(a & m, net);
	if (prefix <= 30 && (a & ~m) == 0)
		return pf_error_set(-EINVAL,
				    "'%s' is the network address of %s/%u, not a host address", s,
				    net, (unsigned)prefix);
	if (prefix <= 30 && (a & ~m) == ~m)
		return pf_error_set(-EINVAL,
				    "'%s' is the broadcast address of %s/%u, not a host address", s,
				    net, (unsigned)prefix);
	*ret_addr = a;
	*ret_prefix = (unsigned)prefix;
	return 0;
}
