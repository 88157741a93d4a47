/* Attacks on syscall-entry argument reads (built and run by tests/evasion_records.rs).
 *
 * A probe at syscall entry cannot fault user pages in: an argument in a page the process has
 * never touched reads as an error (zeros) there, although the kernel itself copies it a moment
 * later. Each argument below sits in a fresh shared mapping of a memfd: the bytes are in the page
 * cache, but not yet in this process's page tables.
 *
 *   untouched connect PORT          TCP connect to 127.0.0.1:PORT (sockaddr untouched)
 *   untouched sendto PORT           UDP sendto 127.0.0.1:PORT of a DNS query for
 *                                   untouched.example (sockaddr and payload untouched)
 *   untouched openat2 PATH          openat2(PATH, O_WRONLY|O_APPEND|O_CREAT) (path and how untouched)
 *   untouched flip PORT_A PORT_B N  N UDP connects to PORT_A while another thread flips the
 *                                   sockaddr's port between A and B; prints the port each socket
 *                                   really got (getpeername), one per line
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static void die(const char *what)
{
	perror(what);
	exit(1);
}

/* len bytes of data in a page this process has never touched. */
static void *untouched(const void *data, size_t len)
{
	int fd = memfd_create("untouched", 0);
	void *p;

	if (fd < 0 || write(fd, data, len) != (ssize_t)len || ftruncate(fd, 4096))
		die("memfd");
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	close(fd);
	return p;
}

static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sa;
}

static volatile int stop, started;
static struct sockaddr_in *flipped;
static int port_a, port_b;

static void *flipper(void *unused)
{
	(void)unused;
	/* Each port holds for a while, so the kernel's copy and a probe's read of the same
	 * sockaddr often see different ports. */
	for (unsigned i = 0; !stop; i++) {
		*(volatile in_port_t *)&flipped->sin_port = htons(i & 1 ? port_b : port_a);
		started = 1;
		for (volatile int spin = 0; spin < 200; spin++)
			;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "connect")) {
		struct sockaddr_in sa = loopback(atoi(argv[2]));
		int s = socket(AF_INET, SOCK_STREAM, 0);

		if (connect(s, untouched(&sa, sizeof(sa)), sizeof(sa)))
			die("connect");
		return 0;
	}
	if (argc >= 3 && !strcmp(argv[1], "sendto")) {
		static const unsigned char q[] = {
			0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
			9, 'u', 'n', 't', 'o', 'u', 'c', 'h', 'e', 'd',
			7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 16, 0, 1,
		};
		struct sockaddr_in sa = loopback(atoi(argv[2]));
		int s = socket(AF_INET, SOCK_DGRAM, 0);
		unsigned char page[256];

		memcpy(page, &sa, sizeof(sa));
		memcpy(page + 64, q, sizeof(q));
		unsigned char *p = untouched(page, sizeof(page));
		if (sendto(s, p + 64, sizeof(q), 0, (struct sockaddr *)p, sizeof(sa)) < 0)
			die("sendto");
		return 0;
	}
	if (argc >= 3 && !strcmp(argv[1], "openat2")) {
		struct open_how how = { .flags = O_WRONLY | O_APPEND | O_CREAT, .mode = 0600 };
		unsigned char page[4096] = { 0 };
		size_t n = strlen(argv[2]) + 1;

		if (n > sizeof(page) - 64)
			die("path too long");
		memcpy(page, &how, sizeof(how));
		memcpy(page + 64, argv[2], n);
		unsigned char *p = untouched(page, 64 + n);
		long fd = syscall(SYS_openat2, AT_FDCWD, p + 64, p, sizeof(how));
		if (fd < 0)
			die("openat2");
		return 0;
	}
	if (argc >= 5 && !strcmp(argv[1], "flip")) {
		int n = atoi(argv[4]);
		struct sockaddr_in sa;
		pthread_t t;

		port_a = atoi(argv[2]);
		port_b = atoi(argv[3]);
		sa = loopback(port_a);
		flipped = untouched(&sa, sizeof(sa));
		if (pthread_create(&t, NULL, flipper, NULL))
			die("pthread_create");
		while (!started)
			;
		for (int i = 0; i < n; i++) {
			struct sockaddr_in peer;
			socklen_t len = sizeof(peer);
			int s = socket(AF_INET, SOCK_DGRAM, 0);

			if (connect(s, (struct sockaddr *)flipped, sizeof(*flipped)))
				die("connect");
			if (getpeername(s, (struct sockaddr *)&peer, &len))
				die("getpeername");
			printf("%d\n", ntohs(peer.sin_port));
			close(s);
		}
		stop = 1;
		pthread_join(t, NULL);
		return 0;
	}
	fprintf(stderr, "usage: untouched connect|sendto|openat2|flip ...\n");
	return 2;
}
