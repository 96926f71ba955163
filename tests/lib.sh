# shellcheck shell=bash
# tests/lib.sh: a private redis-server for tests, on a unix socket in a
# temporary directory (never the system's Redis). Sourced by tests/run and
# tests/helpers.bash.

# redis_start [DIR]: starts redis-server in DIR (a new temp dir when not
# given) and exports NP_REDIS_URL, REDIS_SOCK and REDIS_DIR. Extra
# redis-server arguments can be passed in REDIS_ARGS.
redis_start() {
	REDIS_DIR=${1:-$(mktemp -d /tmp/np-redis.XXXXXX)}
	REDIS_SOCK=$REDIS_DIR/redis.sock
	# REDIS_ARGS is split into words, never globbed (ACL rules hold '*').
	set -f
	# shellcheck disable=SC2086
	redis-server --port 0 --unixsocket "$REDIS_SOCK" --unixsocketperm 700 \
		--dir "$REDIS_DIR" --save '' --appendonly no --daemonize yes \
		--pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" \
		${REDIS_ARGS:-} || { set +f; return 1; }
	set +f
	local i
	for i in $(seq 100); do
		if redis-cli -s "$REDIS_SOCK" ping 2>&1 | grep -qE 'PONG|NOAUTH'; then
			NP_REDIS_URL=unix://$REDIS_SOCK
			export NP_REDIS_URL REDIS_SOCK REDIS_DIR
			return 0
		fi
		sleep 0.05
	done
	echo "redis-server did not start in $REDIS_DIR" >&2
	return 1
}

# redis_stop: stops the server redis_start started and waits for it.
redis_stop() {
	local pid i
	[ -n "${REDIS_DIR:-}" ] && [ -f "$REDIS_DIR/redis.pid" ] || return 0
	pid=$(cat "$REDIS_DIR/redis.pid")
	kill "$pid" 2>/dev/null
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	rm -f "$REDIS_DIR/redis.pid"
	: "$i"
}
