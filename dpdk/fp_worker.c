/* SPDX-License-Identifier: MIT */
/*
 * fp_worker.c - worker lcores: drain the rings the RX lcores fill with the
 * packets of colored flows (zero-copy: the RX lcore's mbuf, refcounted when
 * it is also mirrored), and record them.
 *
 * With `-w FILE.dyt` each worker runs its own capture pipeline
 * (capture/pipeline.h: decode -> flows -> reassembly -> HTTP -> sessions ->
 * color rules) into its own store writer, exactly what `dyetap record` runs
 * on a capture. With `-w FILE.pcap` it writes the packets instead
 * (pcap_dump). With `--lane` the pipeline runs too (besides a pcap, if
 * any), and its on_request hook hands colored requests to the shadow
 * sender (fp_shadow.c). A flow always lands on the same worker (by flow hash), in
 * arrival order, which is what reassembly needs. The pipeline's counters
 * are published about every millisecond (fp_record_publish()).
 *
 * Packet time: the port's RX timestamp when the PMD gives one in a known
 * unit (net_pcap: the capture's own time, in microseconds), else the wall
 * clock (a NIC's timestamp counts device clock ticks, which would need
 * rte_eth_read_clock() calibration).
 *
 * References: DPDK lib/ring (SP/SC bursts), libpcap pcap_dump(3PCAP),
 * capture/pipeline.h, store/store.h.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <pcap/pcap.h>
#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_ring.h>

#include "capture/pipeline.h"
#include "capture/recorder.h"
#include "dpdk/fp_private.h"
#include "store/store.h"

static void record(struct fp_worker *w, struct rte_mbuf *m)
{
	static __thread uint8_t buf[65536];
	struct pcap_pkthdr ph;
	uint32_t len = rte_pktmbuf_pkt_len(m);
	uint32_t cap = RTE_MIN(len, (uint32_t)sizeof(buf));
	const uint8_t *d = rte_pktmbuf_read(m, 0, cap, buf);
	int64_t ns;

	if (!d)
		return;
	if (fp_app.ts_off >= 0 && (m->ol_flags & fp_app.ts_flag) && fp_app.ts_mul[m->port]) {
		ns = (int64_t)*RTE_MBUF_DYNFIELD(m, fp_app.ts_off, rte_mbuf_timestamp_t *) *
		     fp_app.ts_mul[m->port];
	} else {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	}
	if (w->rec) {
		pipe_packet(recorder_pipe(w->rec), ns, DLT_EN10MB, d, cap, len);
		/* The pcap holds colored flows only (per-request coloring sends more). */
		if (!w->dumper ||
		    (fp_app.tag_off >= 0 && !*RTE_MBUF_DYNFIELD(m, fp_app.tag_off, uint8_t *))) {
			FP_INC(w->st.worker_written);
			return;
		}
	}
	ph.ts.tv_sec = ns / 1000000000;
	ph.ts.tv_usec = (ns % 1000000000) / 1000;
	ph.caplen = cap;
	ph.len = len;
	pcap_dump(w->dumper, &ph, d);
	FP_INC(w->st.worker_written);
}

int fp_worker_main(void *arg)
{
	struct fp_worker *w = arg;
	struct rte_mbuf *pkts[FP_BURST];
	uint64_t every = rte_get_tsc_hz() / 1000;

	FP_HANDOFF_ACQUIRE(w); /* what main set up before the launch */
	fp_record_publish(w);
	for (;;) {
		unsigned got = 0;
		/* Read the stop flag before draining: what was enqueued before it is seen. */
		int stop = __atomic_load_n(&fp_app.workers_stop, __ATOMIC_ACQUIRE);
		/* A reload: the pipeline colors what it emits from now on with the new rules. */
		uint32_t gen = __atomic_load_n(&fp_app.rules_gen, __ATOMIC_ACQUIRE);
		if (gen != w->rules_seen) {
			w->rules_seen = gen;
			if (w->rec)
				pipe_set_rules(recorder_pipe(w->rec), fp_rules_cur()->all);
		}
		for (unsigned r = 0; r < w->nrings; r++) {
			unsigned n =
			    rte_ring_sc_dequeue_burst(w->rings[r], (void **)pkts, FP_BURST, NULL);
			if (!n)
				continue;
			FP_HANDOFF_ACQUIRE(w->rings[r]);
			got += n;
			FP_ADD(w->st.worker_pkts, n);
			/* Hand-off point: the capture pipeline takes the packets here. */
			if (w->dumper || w->rec)
				for (unsigned i = 0; i < n; i++)
					record(w, pkts[i]);
			rte_pktmbuf_free_bulk(pkts, n);
		}
		if (!got && w->rec)
			recorder_tick(w->rec); /* time-based flush of a data frame */
		if (w->rec && rte_rdtsc() - w->cap.tsc >= every) {
			/* The capture counters, for telemetry, metrics and the reports. */
			w->cap.tsc = rte_rdtsc();
			fp_record_publish(w);
		}
		if (!got && stop)
			break;
	}
	/* End of input: close every connection, emit what is pending. */
	if (w->rec) {
		recorder_end_input(w->rec);
		fp_record_publish(w);
	}
	FP_HANDOFF_RELEASE(w); /* for main, after rte_eal_wait_lcore() */
	return 0;
}
