/* SPDX-License-Identifier: MIT */
/*
 * fuzz_cfgfile - libFuzzer target for the config file reader
 * (common/cfgfile.h): any bytes as a file; every entry it returns must
 * have a valid name ([a-z0-9-]+, not starting with '-'), a line number
 * within the file's, and a value without a line break or edge blanks.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/cfgfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64], err[512];
	snprintf(path, sizeof(path), "/tmp/fuzz_cfgfile.%ld", (long)getpid());
	FILE *f = fopen(path, "wb");
	if (!f)
		return 0;
	size_t w = size ? fwrite(data, 1, size, f) : 0;
	if (fclose(f) != 0 || w != size) {
		unlink(path);
		return 0;
	}
	struct cfg c;
	if (cfg_load(path, &c, err, sizeof(err)) == 0) {
		unsigned lines = 1;
		for (size_t i = 0; i < size; i++)
			lines += data[i] == '\n';
		for (size_t i = 0; i < c.n; i++) {
			const struct cfg_entry *e = &c.entries[i];
			size_t nl = strlen(e->name);
			if (!nl || e->name[0] == '-' ||
			    strspn(e->name, "abcdefghijklmnopqrstuvwxyz0123456789-") != nl ||
			    e->line < 1 || e->line > lines ||
			    (i && e->line <= c.entries[i - 1].line))
				__builtin_trap();
			if (e->value) {
				size_t vl = strlen(e->value);
				if (strchr(e->value, '\n') ||
				    (vl && strchr(" \t\r", e->value[vl - 1])) ||
				    (vl && strchr(" \t", e->value[0])))
					__builtin_trap();
			}
		}
		cfg_release(&c);
	}
	unlink(path);
	return 0;
}
