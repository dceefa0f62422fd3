/* SPDX-License-Identifier: MIT */
/*
 * fuzz_store_reader - the store reader on arbitrary bytes: open from
 * memory, read every record, render it as JSON, seek by time and read on.
 * Must never crash, hang, leak or read out of bounds (docs/format.md §3).
 * Seed corpus: tests/store/corpus/ (made by `store_testgen corpus DIR`).
 */
#include <stddef.h>
#include <stdint.h>

#include "common/dbuf.h"
#include "common/log.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void drain(struct store_reader *r, struct dbuf *out, int limit)
{
	const struct store_record *rec;
	while (limit-- > 0 && store_reader_next(r, &rec) == 1) {
		dbuf_reset(out);
		if (rec->type == STORE_REC_SESSION)
			store_session_json(out, &rec->u.session, 0);
		else
			store_result_json(out, &rec->u.result, STORE_JSON_NO_BODY);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	log_set_level(LOG_ERROR);
	struct store_reader *r = store_reader_open_mem(data, size, err, sizeof(err));
	if (!r)
		return 0;
	const struct store_file_meta *m = store_reader_meta(r);
	size_t n = 0;
	for (size_t i = 0; i < m->n_rules; i++)
		n += m->rules[i][0] != 0;
	(void)n;
	struct dbuf out;
	dbuf_init(&out, 1 << 20);
	drain(r, &out, 100000);
	const struct store_read_status *st = store_reader_status(r);
	int64_t mid = st->first_ts_ns / 2 + st->last_ts_ns / 2;
	for (size_t i = 0; i < st->n_counters; i++)
		n += st->counters[i].name[0] != 0;
	store_reader_seek_time(r, mid);
	drain(r, &out, 100000);
	store_reader_seek_time(r, INT64_MIN);
	drain(r, &out, 3);
	dbuf_release(&out);
	store_reader_free(r);
	return 0;
}
