/* Opens, connects and sends that bypass the syscalls a sensor hooks (built and run by
 * tests/evasion_records.rs): io_uring operations, done with raw syscalls (no liburing), and
 * open_by_handle_at.
 *
 *   uring FILE1 FILE2 TCP_PORT UDP_PORT
 *     io_uring OPENAT of FILE1, CONNECT to 127.0.0.1:TCP_PORT, CONNECT of a UDP socket to
 *     127.0.0.1:53 then SEND of a DNS query for uring.example on it, SENDMSG of a datagram to
 *     127.0.0.1:UDP_PORT; then open_by_handle_at of FILE2.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
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

static int ring;
static unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
static struct io_uring_sqe *sqes;
static struct io_uring_cqe *cqes;

static void setup(void)
{
	struct io_uring_params p = { 0 };
	char *sq, *cq;

	ring = syscall(__NR_io_uring_setup, 8, &p);
	if (ring < 0)
		die("io_uring_setup");
	sq = mmap(NULL, p.sq_off.array + p.sq_entries * sizeof(unsigned), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
	cq = mmap(NULL, p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe),
		  PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_CQ_RING);
	sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED)
		die("mmap ring");
	sq_tail = (unsigned *)(sq + p.sq_off.tail);
	sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
	sq_array = (unsigned *)(sq + p.sq_off.array);
	cq_head = (unsigned *)(cq + p.cq_off.head);
	cq_tail = (unsigned *)(cq + p.cq_off.tail);
	cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
	cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
}

/* Submit one operation, wait for it, return its result. */
static int run(const struct io_uring_sqe *sqe, const char *what)
{
	unsigned tail = *sq_tail, idx = tail & *sq_mask, head;
	int res;

	sqes[idx] = *sqe;
	sq_array[idx] = idx;
	__atomic_store_n(sq_tail, tail + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
		die("io_uring_enter");
	head = *cq_head;
	if (head == __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE)) {
		fprintf(stderr, "%s: no completion\n", what);
		exit(1);
	}
	res = cqes[head & *cq_mask].res;
	__atomic_store_n(cq_head, head + 1, __ATOMIC_RELEASE);
	if (res < 0) {
		fprintf(stderr, "%s: %s\n", what, strerror(-res));
		exit(1);
	}
	return res;
}

static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sa;
}

int main(int argc, char **argv)
{
	static const unsigned char q[] = {
		0x43, 0x21, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
		5, 'u', 'r', 'i', 'n', 'g', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 1, 0, 1,
	};
	struct io_uring_sqe sqe;
	struct sockaddr_in tcp, dns, udp;
	struct iovec iov = { .iov_base = (void *)q, .iov_len = sizeof(q) };
	struct msghdr msg = { .msg_name = &udp, .msg_namelen = sizeof(udp), .msg_iov = &iov,
			      .msg_iovlen = 1 };
	int s;

	if (argc != 5) {
		fprintf(stderr, "usage: uring FILE1 FILE2 TCP_PORT UDP_PORT\n");
		return 2;
	}
	tcp = loopback(atoi(argv[3]));
	dns = loopback(53);
	udp = loopback(atoi(argv[4]));
	setup();

	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = IORING_OP_OPENAT;
	sqe.fd = AT_FDCWD;
	sqe.addr = (unsigned long)argv[1];
	sqe.open_flags = O_RDONLY;
	run(&sqe, "openat");

	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = IORING_OP_CONNECT;
	sqe.fd = socket(AF_INET, SOCK_STREAM, 0);
	sqe.addr = (unsigned long)&tcp;
	sqe.off = sizeof(tcp);
	run(&sqe, "connect tcp");

	s = socket(AF_INET, SOCK_DGRAM, 0);
	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = IORING_OP_CONNECT;
	sqe.fd = s;
	sqe.addr = (unsigned long)&dns;
	sqe.off = sizeof(dns);
	run(&sqe, "connect udp");
	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = IORING_OP_SEND;
	sqe.fd = s;
	sqe.addr = (unsigned long)q;
	sqe.len = sizeof(q);
	run(&sqe, "send");

	memset(&sqe, 0, sizeof(sqe));
	sqe.opcode = IORING_OP_SENDMSG;
	sqe.fd = socket(AF_INET, SOCK_DGRAM, 0);
	sqe.addr = (unsigned long)&msg;
	sqe.len = 1;
	run(&sqe, "sendmsg");

	struct {
		struct file_handle h;
		unsigned char b[128];
	} fh = { .h.handle_bytes = 128 };
	char dir[4096];
	int mount_id, root;

	/* The mount fd must be on the file's filesystem: its directory is. */
	snprintf(dir, sizeof(dir), "%s", argv[2]);
	*strrchr(dir, '/') = 0;
	root = open(dir, O_RDONLY | O_DIRECTORY);

	if (name_to_handle_at(AT_FDCWD, argv[2], &fh.h, &mount_id, 0))
		die("name_to_handle_at");
	if (open_by_handle_at(root, &fh.h, O_RDONLY) < 0)
		die("open_by_handle_at");
	return 0;
}
