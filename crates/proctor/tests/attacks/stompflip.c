/* A timestomp the record cannot see (built and run by tests/evasion_records.rs).
 *
 * The kernel copies utimensat's times from the caller's memory as the call starts; a program
 * at the call's exit can only read that memory again. Another thread of the caller rewrites
 * the times to UTIME_OMIT ("leave it") in between: the file gets the chosen time, and a reader
 * at exit finds "leave it". The thread waits a different number of spins for each file, so some
 * rewrites land before the kernel's copy (nothing is set), some after the exit's read (the
 * record sees the chosen time), and some in between.
 *
 *   stompflip DIR N    for each of DIR/f0 .. DIR/f(N-1), which must exist: a child process
 *                      appends a line (the tree changed it, as `echo >> f` would), then this
 *                      one sets its times to 2001-09-09 while the other thread rewrites them;
 *                      print the path of each file whose mtime is then 2001
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHOSEN 1000000000L /* 2001-09-09T01:46:40Z */

static struct timespec times[2];
static atomic_int armed, done;
static atomic_int spins;

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void *rewriter(void *arg)
{
	(void)arg;
	for (;;) {
		while (!atomic_load(&armed))
			if (atomic_load(&done))
				return NULL;
		for (volatile int i = 0; i < atomic_load(&spins); i++)
			;
		times[0].tv_nsec = UTIME_OMIT;
		times[1].tv_nsec = UTIME_OMIT;
		atomic_store(&armed, 0);
	}
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: stompflip DIR N\n");
		return 2;
	}
	int n = atoi(argv[2]);
	pthread_t t;
	if (pthread_create(&t, NULL, rewriter, NULL))
		die("pthread_create");
	for (int i = 0; i < n; i++) {
		char path[4096];
		struct stat st;
		snprintf(path, sizeof(path), "%s/f%d", argv[1], i);
		pid_t child = fork();
		if (child < 0)
			die("fork");
		if (child == 0) {
			int fd = open(path, O_WRONLY | O_APPEND);
			if (fd < 0 || write(fd, "changed\n", 8) != 8)
				die(path);
			_exit(0);
		}
		int status;
		if (waitpid(child, &status, 0) != child || status != 0)
			die("the appending child");
		times[0] = (struct timespec){ .tv_sec = CHOSEN };
		times[1] = (struct timespec){ .tv_sec = CHOSEN };
		atomic_store(&spins, (i % 32) * 40);
		atomic_store(&armed, 1);
		if (utimensat(AT_FDCWD, path, times, 0))
			die("utimensat");
		while (atomic_load(&armed))
			;
		if (stat(path, &st))
			die("stat");
		if (st.st_mtime == CHOSEN)
			printf("%s\n", path);
	}
	atomic_store(&done, 1);
	pthread_join(t, NULL);
	return 0;
}
