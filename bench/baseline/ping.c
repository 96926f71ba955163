/*
 * baseline-ping: the least a command that reads Redis can do: connect
 * with hiredis (unix socket), send one PING, read the PONG, exit. The
 * floor np-metrics is measured against. Links against hiredis only.
 *
 *   baseline-ping SOCKET
 */
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

int
main(int argc, char **argv)
{
	redisContext *c;
	redisReply *r;

	if (argc != 2) {
		fprintf(stderr, "usage: baseline-ping SOCKET\n");
		return 64;
	}
	c = redisConnectUnix(argv[1]);
	if (c == NULL || c->err) {
		fprintf(stderr, "baseline-ping: %s: %s\n", argv[1],
		    c ? c->errstr : "out of memory");
		return 75;
	}
	r = redisCommand(c, "PING");
	if (r == NULL || r->type != REDIS_REPLY_STATUS ||
	    strcmp(r->str, "PONG") != 0) {
		fprintf(stderr, "baseline-ping: no PONG\n");
		return 75;
	}
	puts(r->str);
	freeReplyObject(r);
	redisFree(c);
	return 0;
}
