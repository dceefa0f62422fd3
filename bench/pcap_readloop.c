/* SPDX-License-Identifier: MIT */
/*
 * pcap_readloop - the anchor of the capture benchmark: read every packet
 * of a capture with pcap_next_ex() and touch its bytes, nothing else.
 * Prints "packets bytes seconds MB/s".
 */
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

int main(int argc, char **argv)
{
	char eb[PCAP_ERRBUF_SIZE];
	if (argc != 2) {
		fprintf(stderr, "usage: pcap_readloop FILE\n");
		return 2;
	}
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	pcap_t *p = pcap_open_offline(argv[1], eb);
	if (!p) {
		fprintf(stderr, "%s\n", eb);
		return 1;
	}
	struct pcap_pkthdr *h;
	const u_char *d;
	uint64_t n = 0, bytes = 0, sum = 0;
	while (pcap_next_ex(p, &h, &d) == 1) {
		n++;
		bytes += h->caplen;
		sum += d[0] + d[h->caplen - 1];
	}
	pcap_close(p);
	clock_gettime(CLOCK_MONOTONIC, &b);
	double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	FILE *f = fopen(argv[1], "rb");
	long size = 0;
	if (f && fseek(f, 0, SEEK_END) == 0)
		size = ftell(f);
	if (f)
		fclose(f);
	printf("%llu %llu %.3f %.1f %llu\n", (unsigned long long)n, (unsigned long long)bytes, s,
	       (double)size / 1e6 / s, (unsigned long long)(sum & 1));
	return 0;
}
