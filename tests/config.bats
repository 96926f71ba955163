#!/usr/bin/env bats
# The config file: strict YAML, ${VAR} substitution, secrets and their
# permissions (np.yaml(5)). Errors exit 78 and name file:line: key.
# shellcheck disable=SC2154

load helpers

setup_file() {
	redis_start ""
	export NP_REDIS_URL REDIS_SOCK REDIS_DIR
}

teardown_file() {
	redis_stop
}

setup() {
	np_setup
	S=$BATS_TEST_TMPDIR/secret
	C=$BATS_TEST_TMPDIR/np.yaml
}

# cfg: writes a config whose single scanner has the extra lines on stdin.
cfg() {
	{
		printf 'pools:\n  nessus:\n    - instance_id: s1\n'
		printf '      url: https://127.0.0.1:8834\n'
		printf '      access_key: ak\n      secret_key_file: %s\n' "$S"
		sed 's/^/      /'
	} | np_config "$C"
}

@test "a good config loads" {
	run -0 np-select --pools
	assert_line --partial '"pool":"nessus"'
	assert_line --partial '"pool":"dmz"'
}

@test "missing config file: 78, names the file" {
	NP_CONFIG=$BATS_TEST_TMPDIR/nope.yaml run -78 np-select --pools
	assert_output --partial "nope.yaml"
}

@test "YAML syntax error: 78 with file and line" {
	printf 'pools:\n  nessus:\n    - instance_id: [s1\n' | np_config "$C"
	run -78 np-select --pools
	assert_output --regexp "np.yaml:[0-9]+:"
}

@test "unknown top-level key: 78 naming file:line: key" {
	cfg < /dev/null
	printf 'colour: blue\n' >> "$C"
	run -78 np-select --pools
	assert_output "np-select: $C:7: colour: unknown key"
}

@test "unknown scanner key names the scanner" {
	printf 'max_scans: 3\n' | cfg
	run -78 np-select --pools
	assert_output --partial "pools.nessus[0].max_scans: unknown key"
}

@test "bad value types: 78 naming the key" {
	printf 'max_concurrent_scans: two\n' | cfg
	run -78 np-select --pools
	assert_output --partial "max_concurrent_scans: expected an integer"
	printf 'max_concurrent_scans: "2"\n' | cfg
	run -78 np-select --pools
	assert_output --partial "max_concurrent_scans: expected an integer"
	printf 'max_concurrent_scans: 0\n' | cfg
	run -78 np-select --pools
	printf 'enabled: maybe\n' | cfg
	run -78 np-select --pools
	assert_output --partial "enabled: expected true or false"
	printf 'url: [1, 2]\n' | cfg
	run -78 np-select --pools
}

@test "bad durations and unknown settings" {
	cfg < /dev/null
	printf 'settings:\n  poll_interval: 5 minutes\n' >> "$C"
	run -78 np-select --pools
	assert_output --partial "settings.poll_interval: expected a duration"
	cfg < /dev/null
	printf 'settings:\n  pol_interval: 5m\n' >> "$C"
	run -78 np-select --pools
	assert_output --partial "settings.pol_interval: unknown key"
}

@test "duplicate keys and duplicate instance ids are refused" {
	printf 'max_concurrent_scans: 2\nmax_concurrent_scans: 3\n' | cfg
	run -78 np-select --pools
	assert_output --partial "duplicate key"
	cfg < /dev/null
	printf '    - instance_id: s1\n      url: https://h:1\n      access_key: a\n      secret_key_file: %s\n' "$S" >> "$C"
	run -78 np-select --pools
	assert_output --partial "duplicate instance_id 's1'"
}

@test "no fallback: a config without pools, or empty, stops" {
	printf 'default_pool: nessus\n' | np_config "$C"
	run -78 np-select --pools
	assert_output --partial "pools: required"
	: | np_config "$C"
	run -78 np-select --pools
	printf 'pools:\n  nessus: []\n' | np_config "$C"
	run -78 np-select --pools
	assert_output --partial "pool has no scanners"
}

@test "default_pool must name a pool" {
	cfg < /dev/null
	printf 'default_pool: other\n' >> "$C"
	run -78 np-select --pools
	assert_output --partial "default_pool: no pool named 'other'"
}

@test "bad pool and instance names" {
	printf 'pools:\n  "a b":\n    - instance_id: s1\n' | np_config "$C"
	run -78 np-select --pools
	assert_output --partial "must match"
	printf 'pools:\n  p:\n    - instance_id: ../x\n      url: https://h:1\n' | np_config "$C"
	run -78 np-select --pools
	assert_output --partial "instance_id '../x' must match"
}

@test "auth modes: exactly one of API keys or username" {
	printf 'pools:\n  p:\n    - instance_id: s\n      url: https://h:1\n' | np_config "$C"
	run -78 np-select --pools
	assert_output --partial "give either access_key"
	printf 'username: u\n' | cfg
	run -78 np-select --pools
	printf 'pools:\n  p:\n    - instance_id: s\n      url: https://h:1\n      access_key: a\n' | np_config "$C"
	run -78 np-select --pools
	assert_output --partial "secret_key"
}

@test "TLS: http:// needs insecure: true; ca_file must exist" {
	printf 'pools:\n  p:\n    - instance_id: s\n      url: http://h:1\n      access_key: a\n      secret_key_file: %s\n' "$S" | np_config "$C"
	run -78 np-select --pools
	assert_output --partial "plain http:// needs insecure: true"
	printf 'insecure: true\n' >> "$C.add"
	printf 'ca_file: /nonexistent/ca.pem\n' | cfg
	run -78 np-select --pools
	assert_output --partial "ca_file /nonexistent/ca.pem"
}

@test "\${VAR} and \${VAR:-default} are substituted in values" {
	printf 'pools:\n  p:\n    - instance_id: s\n      url: https://${NP_T_HOST}:${NP_T_PORT:-8834}/x${NP_T_EMPTY:-}\n      access_key: a\n      secret_key_file: %s\n' "$S" | np_config "$C"
	NP_T_HOST=scanner.example run -0 np-select --list
	assert_output --partial '"url":"https://scanner.example:8834/x"'
	NP_T_HOST=h NP_T_PORT=9 run -0 np-select --list
	assert_output --partial '"url":"https://h:9/x"'
}

@test "an unset \${VAR} without default is an error naming it" {
	printf 'pools:\n  p:\n    - instance_id: s\n      url: https://${NP_T_UNSET_VAR}:1\n      access_key: a\n      secret_key_file: %s\n' "$S" | np_config "$C"
	run -78 np-select --pools
	assert_output --partial "environment variable NP_T_UNSET_VAR is not set"
}

@test "world-readable secret file: 78 naming the file" {
	cfg < /dev/null
	chmod 644 "$S"
	run -78 np-select --pools
	assert_output --partial "$S holds a secret and is readable by group or others"
	chmod 640 "$S"
	run -78 np-select --pools
}

@test "missing secret file: 78" {
	printf 'pools:\n  p:\n    - instance_id: s\n      url: https://h:1\n      access_key: a\n      secret_key_file: /nonexistent/key\n' | np_config "$C"
	run -78 np-select --pools
	assert_output --partial "/nonexistent/key"
}

@test "config holding a secret must not be readable by others" {
	printf 'pools:\n  p:\n    - instance_id: s\n      url: https://h:1\n      access_key: a\n      secret_key: inline-secret\n' | np_config "$C"
	run -0 np-select --pools
	chmod 644 "$C"
	run -78 np-select --pools
	assert_output --partial "holds a secret and is readable by group or others"
	refute_output --partial "inline-secret"
}

@test "config with secrets only from the environment may be world-readable" {
	printf 'pools:\n  p:\n    - instance_id: s\n      url: https://h:1\n      access_key: ${NP_T_AK}\n      secret_key: ${NP_T_SK}\n' | np_config "$C"
	chmod 644 "$C"
	NP_T_AK=a NP_T_SK=b run -0 np-select --pools
}

@test "relative secret files come from \$CREDENTIALS_DIRECTORY first" {
	mkdir -m 700 "$BATS_TEST_TMPDIR/creds"
	printf 'x\n' > "$BATS_TEST_TMPDIR/creds/s.key"
	chmod 600 "$BATS_TEST_TMPDIR/creds/s.key"
	printf 'pools:\n  p:\n    - instance_id: s\n      url: https://h:1\n      access_key: a\n      secret_key_file: s.key\n' | np_config "$C"
	run -78 np-select --pools
	CREDENTIALS_DIRECTORY=$BATS_TEST_TMPDIR/creds run -0 np-select --pools
}

@test "YAML aliases (billion laughs) are refused" {
	cat > "$C" <<-'YAML'
	a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
	b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
	c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
	pools: *c
	YAML
	run -78 timeout 5 np-select --pools
	assert_output --partial "aliases are not supported"
}

@test "a huge config is refused, not read whole" {
	head -c 5000000 /dev/zero | tr '\0' '#' > "$C"
	run -78 np-select --pools
	assert_output --partial "larger than"
}
