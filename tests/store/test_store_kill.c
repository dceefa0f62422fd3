/* SPDX-License-Identifier: MIT */
/*
 * test_store_kill - a writer process killed with SIGKILL loses at most the
 * records added after its last flush (docs/format.md §1.2, §3).
 *
 * Runs store_testgen (path in argv[1]) as the writer. First at a known
 * point (55 records added, 50 flushed), then at random moments of a
 * stream of flushes; the file it leaves must hold exactly a prefix of the
 * records, at least as many as were reported flushed, all intact.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "store/store.h"
#include "tests/store/store_sample.h"
#include "tests/tap.h"

/* Start `gen MODE path`, read its progress lines, kill it; returns the last flushed count. */
static long run_and_kill(const char *gen, const char *mode, const char *path, int lines_before,
			 unsigned extra_us)
{
	int fds[2];
	if (pipe(fds) != 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execl(gen, gen, mode, path, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	FILE *f = fdopen(fds[0], "r");
	char line[128];
	long flushed = 0;
	int n = 0;
	while (fgets(line, sizeof(line), f)) {
		long v;
		if (sscanf(line, "flushed %ld", &v) == 1)
			flushed = v;
		if (!strncmp(line, "pending", 7) || ++n >= lines_before)
			break;
	}
	if (extra_us)
		usleep(extra_us);
	kill(pid, SIGKILL);
	int status;
	waitpid(pid, &status, 0);
	fclose(f);
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? flushed : -1;
}

struct got {
	uint64_t n;
	int prefix_ok;
	const struct store_read_status *st;
};

static struct got read_back(struct store_reader *r)
{
	struct got g = {0, 1, NULL};
	const struct store_record *rec;
	struct sample x;
	while (store_reader_next(r, &rec) == 1) {
		sample_fill(&x, g.n);
		if (rec->type != STORE_REC_SESSION || sample_session_diff(&rec->u.session, &x.s))
			g.prefix_ok = 0;
		g.n++;
	}
	g.st = store_reader_status(r);
	return g;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		TAP_SKIP_ALL("store_testgen path not given");
	const char *gen = argv[1];
	char dir[] = "/tmp/test_store_kill.XXXXXX", path[128], part[160], err[256];
	if (!mkdtemp(dir)) {
		printf("Bail out! mkdtemp failed\n");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/killed.dyt", dir);
	/* A writer writes PATH.partial and renames it at its close: a killed one
	 * leaves PATH.partial, and never a PATH (docs/format.md §3). */
	snprintf(part, sizeof(part), "%s%s", path, STORE_PARTIAL_SUFFIX);
	log_set_level(LOG_ERROR);

	long flushed = run_and_kill(gen, "crash", path, 1000, 0);
	TAP_EQ_U64(flushed, 50, "writer reported 50 flushed records, then was killed");
	struct stat sb;
	TAP_OK(stat(path, &sb) != 0 && errno == ENOENT, "the killed writer left no %s", path);
	struct store_reader *r = store_reader_open(path, err, sizeof(err));
	TAP_OK(!r && strstr(err, part), "opening it names the partial file (%.200s)", err);
	store_reader_free(r);
	r = store_reader_open(part, err, sizeof(err));
	TAP_OK(r != NULL, "killed writer's file opens (%.150s)", r ? "ok" : err);
	if (r) {
		struct got g = read_back(r);
		TAP_EQ_U64(g.n, 50, "exactly the flushed records recovered");
		TAP_OK(g.prefix_ok, "recovered records intact and in order");
		TAP_OK(!g.st->has_index && !g.st->cut && !g.st->damaged_frames,
		       "file is unfinished (no index), not cut, not damaged");
		store_reader_free(r);
	}

	srand((unsigned)time(NULL));
	int bad = 0;
	for (int k = 0; k < 6; k++) {
		int lines = 1 + rand() % 40;
		unsigned us = (unsigned)(rand() % 3000);
		flushed = run_and_kill(gen, "stream", path, lines, us);
		r = store_reader_open(part, err, sizeof(err));
		if (flushed < 0 || !r) {
			printf("# round %d: flushed %ld, open: %s\n", k, flushed, r ? "ok" : err);
			bad++;
			store_reader_free(r);
			continue;
		}
		struct got g = read_back(r);
		if (g.n < (uint64_t)flushed || !g.prefix_ok || g.st->damaged_frames) {
			printf("# round %d: %llu records, %ld flushed, prefix %d, damaged %llu\n",
			       k, (unsigned long long)g.n, flushed, g.prefix_ok,
			       (unsigned long long)g.st->damaged_frames);
			bad++;
		} else {
			printf("# round %d: killed after %ld flushed, %llu recovered%s\n", k,
			       flushed, (unsigned long long)g.n, g.st->cut ? " (cut)" : "");
		}
		store_reader_free(r);
	}
	TAP_EQ_U64(bad, 0,
		   "killed at random moments: a whole prefix of at least the flushed records");
	unlink(path);
	unlink(part);
	rmdir(dir);
	return tap_done();
}
