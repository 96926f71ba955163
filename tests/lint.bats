#!/usr/bin/env bats
# Static checks: man pages, shell scripts, a man page for every command.

load helpers

@test "man pages pass mandoc -T lint -W warning" {
	run -0 mandoc -T lint -W warning "$BATS_TEST_DIRNAME"/../man/*
	assert_output ""
}

@test "every command has a man page" {
	local c n
	for c in "$BATS_TEST_DIRNAME"/../cmd/np-*.c; do
		n=$(basename "$c" .c)
		ls "$BATS_TEST_DIRNAME"/../man/"$n".[1-8]
	done
}

@test "shell scripts pass shellcheck" {
	local f scripts=()
	cd "$BATS_TEST_DIRNAME/.."
	# Every sh/bash script of the project, found by its first line.
	for f in scripts/* tests/run tests/lib.sh tests/helpers.bash .ci/run \
		tests/fake-nessus/*.sh tests/fuzz/* tests/chaos/*.bash bench/*; do
		[ -f "$f" ] || continue
		head -n 1 "$f" | grep -Eq '^#!.*(ba)?sh|shellcheck shell=' && scripts+=("$f")
	done
	[ "${#scripts[@]}" -gt 4 ]
	run -0 shellcheck -x "${scripts[@]}"
	assert_output ""
}

@test "every command answers --help on stdout with status 0 and --version" {
	local c
	for c in "$NP_BIN"/np-*; do
		run -0 --separate-stderr "$c" --help
		assert_output --partial "usage:"
		run -0 "$c" --version
		assert_output --regexp "^np-[a-z]+ [0-9]+\.[0-9]+"
	done
}

@test "every command refuses an unknown option with status 64" {
	local c
	for c in "$NP_BIN"/np-*; do
		run -64 "$c" --no-such-option
	done
}
