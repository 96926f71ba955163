#!/usr/bin/env bats
# make install / uninstall into a DESTDIR; the systemd units verify clean
# and are hardened; np-worker speaks sd_notify.
# shellcheck disable=SC2154

load helpers

ROOT=$BATS_TEST_DIRNAME/..

@test "make install DESTDIR=... installs the whole tree; uninstall removes it" {
	d=$BATS_TEST_TMPDIR/dest
	run -0 make -s -C "$ROOT" install DESTDIR="$d" PREFIX=/usr
	for c in "$ROOT"/cmd/np-*.c; do
		n=$(basename "$c" .c)
		[ -x "$d/usr/bin/$n" ]
		ls "$d"/usr/share/man/man[18]/"$n".[18]
	done
	[ -f "$d/usr/share/man/man7/np.7" ] || [ ! -f "$ROOT/man/np.7" ]
	for u in np-worker@.service np-housekeep.service np-housekeep.timer np-metrics.service np-metrics.timer; do
		[ -f "$d/usr/lib/systemd/system/$u" ]
		[ "$(stat -c %a "$d/usr/lib/systemd/system/$u")" = 644 ]
	done
	grep -q '^ExecStart=/usr/bin/np-worker --pools %i$' "$d/usr/lib/systemd/system/np-worker@.service"
	grep -q '^u np ' "$d/usr/lib/sysusers.d/np.conf"
	grep -q '^d /var/lib/np ' "$d/usr/lib/tmpfiles.d/np.conf"
	[ -f "$d/etc/np/np.yaml.example" ]
	[ -f "$d/usr/share/np/np-alerts.yml" ]
	run -0 make -s -C "$ROOT" uninstall DESTDIR="$d" PREFIX=/usr
	[ -z "$(find "$d" -type f)" ]
}

@test "the example config is a valid config" {
	e=$BATS_TEST_TMPDIR/ex
	mkdir -p "$e/ca"
	sed -e "s|/etc/np/ca/|$e/ca/|" "$ROOT/etc/np.yaml.example" > "$e/np.yaml"
	: > "$e/ca/scanner1.pem"
	: > "$e/ca/dmz1.pem"
	for f in scanner1.secret dmz1.password; do printf 'x\n' > "$e/$f"; chmod 600 "$e/$f"; done
	NP_CONFIG=$e/np.yaml NESSUS1_ACCESS_KEY=k CREDENTIALS_DIRECTORY=$e run -75 np-select --pools
	refute_output --partial "np.yaml:"
}

@test "every unit: systemd-analyze verify prints nothing; services pass security --threshold=20" {
	command -v systemd-analyze > /dev/null || skip "systemd-analyze not installed"
	u=$BATS_TEST_TMPDIR/units
	mkdir "$u"
	for f in "$ROOT"/systemd/*.service "$ROOT"/systemd/*.timer; do
		sed "s|/usr/local/bin/|$NP_BIN/|" "$f" > "$u/$(basename "$f")"
	done
	run -0 systemd-analyze verify --man=no "$u"/*.service "$u"/*.timer
	assert_output ""
	for s in "$u"/*.service; do
		run -0 systemd-analyze security --offline=true --threshold=20 "$s"
	done
}

# notify_listen FILE: a datagram socket that appends what it gets to FILE.
notify_listen() {
	python3 - "$1" "$2" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as out:
    while True:
        msg = s.recv(4096).decode()
        out.write(msg.replace("\n", "|") + "\n")
        out.flush()
PY
	for _ in $(seq 50); do [ -S "$1" ] && return 0; sleep 0.05; done
	return 1
}

wait_for() {
	for _ in $(seq 100); do grep -q "$1" "$2" && return 0; sleep 0.05; done
	cat "$2" >&2
	return 1
}

@test "np-worker: READY=1, RELOADING=1 then READY=1 on SIGHUP, WATCHDOG=1, STOPPING=1 on SIGTERM" {
	redis_start ""
	np_setup
	sock=$BATS_TEST_TMPDIR/notify.sock
	log=$BATS_TEST_TMPDIR/notify.log
	: > "$log"
	notify_listen "$sock" "$log"
	listener=$!
	NOTIFY_SOCKET=$sock WATCHDOG_USEC=400000 np-worker 2> "$BATS_TEST_TMPDIR/w.log" &
	w=$!
	wait_for '^READY=1' "$log"
	wait_for 'STATUS=0 scan' "$log"
	wait_for '^WATCHDOG=1' "$log"
	kill -HUP "$w"
	wait_for '^RELOADING=1' "$log"
	[ "$(grep -c '^READY=1' "$log")" -ge 2 ] || wait_for 'READY=1.*' "$log"
	kill -TERM "$w"
	wait "$w"
	wait_for '^STOPPING=1' "$log"
	kill "$listener"
	redis_stop
	# Order: the first READY comes before RELOADING, another READY after it.
	awk '/^RELOADING=1/ { r = NR } /^READY=1/ { if (!first) first = NR; last = NR }
	    END { exit !(first < r && last > r) }' "$log"
}
