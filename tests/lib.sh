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

# fake_start NAME DIR [CONFIG_JSON] [http]: starts a fake Nessus named NAME
# with its files in DIR (HTTPS with a certificate in DIR/tls unless the
# fourth argument is "http") and writes its base URL to DIR/NAME.url.
fake_start() {
	local name=$1 dir=$2 conf=${3:-"{}"} proto=${4:-https} root i
	root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
	mkdir -p "$dir"
	if [ "$proto" = https ] && [ ! -s "$dir/tls/cert.pem" ]; then
		"$root/tests/fake-nessus/mkcert.sh" "$dir/tls" > /dev/null 2>&1 || return 1
	fi
	printf '%s\n' "$conf" > "$dir/$name.json"
	rm -f "$dir/$name.port"
	local args=(--port 0 --port-file "$dir/$name.port" --config "$dir/$name.json"
		--log "$dir/$name.log")
	[ "$proto" = https ] && args+=(--tls --cert "$dir/tls/cert.pem" --key "$dir/tls/key.pem")
	python3 "$root/tests/fake-nessus/fake_nessus.py" "${args[@]}" \
		> "$dir/$name.out" 2> "$dir/$name.err" 3>&- &
	echo $! > "$dir/$name.pid"
	for i in $(seq 200); do
		[ -s "$dir/$name.port" ] && break
		sleep 0.05
	done
	[ -s "$dir/$name.port" ] || { cat "$dir/$name.err" >&2; return 1; }
	echo "$proto://127.0.0.1:$(cat "$dir/$name.port")" > "$dir/$name.url"
	: "$i"
}

# fake_stop DIR: stops every fake started in DIR.
fake_stop() {
	local f
	for f in "$1"/*.pid; do
		[ -f "$f" ] || continue
		[ "$(basename "$f")" = redis.pid ] && continue
		kill "$(cat "$f")" 2> /dev/null
		rm -f "$f"
	done
}
