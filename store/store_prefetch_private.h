/* SPDX-License-Identifier: MIT */
/*
 * store_prefetch_private - the reader's frame prefetcher (store_prefetch.c).
 * Internal to store/.
 */
#ifndef DYETAP_STORE_STORE_PREFETCH_PRIVATE_H
#define DYETAP_STORE_STORE_PREFETCH_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store_prefetch;

/* A helper thread reading data frames of @p fd before @p data_end; NULL on failure. */
struct store_prefetch *store_prefetch_start(int fd, uint64_t data_end, char *err, size_t errlen);

/* Start decompressing the frame at file offset @p pos (after the previous job). */
void store_prefetch_request(struct store_prefetch *p, uint64_t pos);

/*
 * The frame requested at @p pos, if the helper decompressed and verified
 * it: waits for the job, swaps the buffer in @p buf (capacity @p cap) with
 * the helper's (the caller's old buffer becomes the helper's) and gives the
 * content and compressed sizes. False when nothing usable was prefetched
 * for @p pos.
 */
bool store_prefetch_take(struct store_prefetch *p, uint64_t pos, uint8_t **buf, size_t *cap,
			 size_t *d, size_t *cs);

/* End the thread (after its job) and free everything. NULL is fine. */
void store_prefetch_stop(struct store_prefetch *p);

#endif
