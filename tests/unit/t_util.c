/* Unit tests: hashes, durations, times, ids, names. */
#include <string.h>

#include "np.h"
#include "tap.h"

int
main(void)
{
	char h[65], id[NP_TASKID_LEN + 1], ts[32];
	int64_t ms;
	long l;

	plan(31);
	np_sha256_hex("", 0, h);
	ok(!strcmp(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
	    "sha256 of empty");
	np_sha256_hex("abc", 3, h);
	ok(!strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
	    "sha256 of abc");
	np_sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, h);
	ok(!strcmp(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
	    "sha256 of the 56-byte FIPS vector (two blocks of padding)");

	ok(np_parse_duration("500ms", &ms) == 0 && ms == 500, "500ms");
	ok(np_parse_duration("30s", &ms) == 0 && ms == 30000, "30s");
	ok(np_parse_duration("5m", &ms) == 0 && ms == 300000, "5m");
	ok(np_parse_duration("24h", &ms) == 0 && ms == 86400000, "24h");
	ok(np_parse_duration("7d", &ms) == 0 && ms == 604800000, "7d");
	ok(np_parse_duration("90", &ms) == 0 && ms == 90000, "bare seconds");
	ok(np_parse_duration("5x", &ms) == -1, "unknown unit refused");
	ok(np_parse_duration("-5s", &ms) == -1, "negative refused");
	ok(np_parse_duration("", &ms) == -1, "empty refused");
	ok(np_parse_duration("99999999999999999999d", &ms) == -1, "overflow refused");

	ok(np_parse_int("42", 1, 100, &l) == 0 && l == 42, "int in range");
	ok(np_parse_int("0", 1, 100, &l) == -1, "int below range");
	ok(np_parse_int("4x", 1, 100, &l) == -1, "int with junk");

	np_rfc3339(1700000000123LL, ts);
	ok(!strcmp(ts, "2023-11-14T22:13:20.123Z"), "rfc3339 out: %s", ts);
	ok(np_parse_rfc3339(ts, &ms) == 0 && ms == 1700000000123LL,
	    "rfc3339 round trip");
	ok(np_parse_rfc3339("2023-11-14T22:13:20Z", &ms) == 0 &&
	    ms == 1700000000000LL, "rfc3339 without fraction");
	ok(np_parse_rfc3339("2023-11-14T22:13:20+02:00", &ms) == -1,
	    "non-UTC offset refused");

	np_task_id_new(id);
	ok(np_task_id_valid(id), "new id %s is valid", id);
	ok(!np_task_id_valid("../x"), "../x is not an id");
	ok(!np_task_id_valid("20261123T185000Z-../../../etc/pas"), "path in id");
	ok(!np_task_id_valid("20261123T185000Z-9F86D081884C7D65"), "upper hex");
	ok(!np_task_id_valid("20261123T185000Z-9f86d081884c7d6"), "short id");
	ok(!np_task_id_valid(NULL), "NULL id");

	ok(np_name_valid("nessus_dmz-2"), "pool name");
	ok(!np_name_valid("a/b"), "slash in name");
	ok(!np_name_valid(""), "empty name");
	ok(!np_name_valid("a:b"), "colon in name (would break key names)");
	ok(np_state_allowed("failed", "queued") && !np_state_allowed("completed",
	    "queued") && !np_state_allowed("queued", "completed"),
	    "state machine");
	done();
}
