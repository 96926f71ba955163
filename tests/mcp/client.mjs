// tests/mcp/client.mjs: drives np-mcp with the official TypeScript SDK
// (Client + StdioClientTransport), as an MCP host would. Run by
// tests/mcp.bats from a folder whose node_modules holds
// @modelcontextprotocol/sdk; needs Redis, a fake Nessus and a running
// np-worker (the bats test starts them) and these variables:
//   NP_MCP          the np-mcp binary
//   NP_TEST_SECRET  the SSH password the fake scanner accepts for scanuser
// Prints one "ok N - what" or "not ok N - what" line per check and exits
// 1 when any failed.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const secret = process.env.NP_TEST_SECRET;
let n = 0;
let failed = 0;
const seen = [];	// every answer's text, to look for the secret

function check(cond, what, detail) {
	n++;
	console.log(`${cond ? "ok" : "not ok"} ${n} - ${what}`);
	if (!cond) {
		failed++;
		if (detail !== undefined)
			console.log(`# ${JSON.stringify(detail).slice(0, 2000)}`);
	}
	return cond;
}

// The server's environment: ours minus the test's secret, so that only
// the tool call carries it.
const env = { ...process.env };
delete env.NP_TEST_SECRET;
env.NP_LOG_LEVEL = "debug";	// the most the server ever logs
const transport = new StdioClientTransport({ command: process.env.NP_MCP,
	args: [], env, stderr: "pipe" });
let stderr = "";
transport.stderr.on("data", (d) => { stderr += d; });
const client = new Client({ name: "np-tests", version: "0.0.1" });

async function call(name, args) {
	const r = await client.callTool({ name, arguments: args });
	for (const c of r.content)
		seen.push(c.text);
	return r;
}

// A result's JSON body: structuredContent, or the text of an error.
const body = (r) => r.structuredContent ?? JSON.parse(r.content[0].text);
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

async function waitDone(id) {
	const end = Date.now() + 90000;
	let s;
	while (Date.now() < end) {
		s = body(await call("get_scan_status", { task_id: id }));
		if (["completed", "failed", "timeout", "cancelled"].includes(s.status))
			return s;
		await sleep(200);
	}
	return s;
}

async function tools() {
	const list = (await client.listTools()).tools;
	const names = list.map((t) => t.name).sort();
	check(names.join() === ["cancel_scan", "get_pool_status",
		"get_queue_status", "get_scan_results", "get_scan_status",
		"list_dead_letters", "list_pools", "list_scanners", "list_tasks",
		"run_authenticated_scan", "run_untrusted_scan"].join(),
	"tools/list: the reference's nine tools, cancel_scan, list_dead_letters",
	names);
	check(list.every((t) => t.description && t.inputSchema.type === "object" &&
		t.outputSchema?.type === "object" && t.annotations),
	"every tool has a description, an inputSchema, an outputSchema, annotations");
}

async function submit() {
	const u = await call("run_untrusted_scan", { targets: "10.0.0.1 10.0.0.2",
		name: "sdk untrusted", idempotency_key: "sdk-untrusted-1" });
	check(!u.isError && /^\d{8}T\d{6}Z-[0-9a-f]{16}$/.test(u.structuredContent.task_id) &&
		u.structuredContent.status === "queued",
	"run_untrusted_scan answers at once with a queued task_id", u);
	check(JSON.stringify(JSON.parse(u.content[0].text)) ===
		JSON.stringify(u.structuredContent),
	"the text block holds the same object as structuredContent");
	const again = await call("run_untrusted_scan", { targets: "10.0.0.1 10.0.0.2",
		name: "sdk untrusted", idempotency_key: "sdk-untrusted-1" });
	check(!again.isError && again.structuredContent.idempotent === true &&
		again.structuredContent.task_id === u.structuredContent.task_id,
	"the same idempotency_key returns the same task", again);
	const a = await call("run_authenticated_scan", { targets: "10.0.0.3",
		name: "sdk authenticated", scan_type: "authenticated",
		ssh_username: "scanuser", ssh_password: secret });
	check(!a.isError && a.structuredContent.scan_type === "authenticated",
		"run_authenticated_scan answers at once", a);
	return [u.structuredContent.task_id, a.structuredContent.task_id];
}

async function pages(id) {
	let page = 1, vulns = 0, total = -1, calls = 0;
	while (page !== null && calls++ < 50) {
		const r = await call("get_scan_results", { task_id: id, page, page_size: 10 });
		if (!check(!r.isError && Array.isArray(r.structuredContent.lines),
			`get_scan_results page ${page}`, r))
			return;
		const lines = r.structuredContent.lines;
		const pg = lines.find((l) => l.type === "pagination");
		vulns += lines.filter((l) => l.type === "vulnerability").length;
		total = pg.total_findings;
		if (page === 1)
			check(lines[0].type === "schema" && lines[1].type === "scan_metadata",
				"a page starts with schema and scan_metadata lines", lines.slice(0, 2));
		page = pg.next_page;
	}
	check(total > 10 && vulns === total,
		`paging with next_page reads all ${total} findings`, { vulns, total });
	const all = body(await call("get_scan_results", { task_id: id, page: 0 }));
	check(all.lines.filter((l) => l.type === "vulnerability").length === total &&
		all.lines.find((l) => l.type === "pagination")?.next_page === null,
	"page 0 returns every finding, no next page", all.lines.at(-1));
	const f = body(await call("get_scan_results", { task_id: id, page: 0,
		custom_fields: ["host", "severity"], filters: { severity: ">=2" } }));
	const v = f.lines.filter((l) => l.type === "vulnerability");
	check(v.length > 0 && v.length < total && v.every((l) => l.severity >= 2 &&
		Object.keys(l).sort().join() === "host,severity,type"),
	"custom_fields and filters narrow the findings", v.slice(0, 3));
}

async function reads(ids) {
	const t = body(await call("list_tasks", { limit: 10 }));
	check(t.total === 2 && t.tasks.length === 2, "list_tasks wraps the tasks", t);
	const tf = body(await call("list_tasks", { target_filter: "10.0.0.0/30",
		status_filter: "completed" }));
	check(tf.total === 2, "list_tasks filters by target and state", tf);
	const s = body(await call("list_scanners", {}));
	check(s.total === 1 && s.scanners[0].instance_id === "s1" &&
		s.pools.join() === "nessus", "list_scanners", s);
	const p = body(await call("list_pools", {}));
	check(p.total === 1 && p.default_pool === "nessus", "list_pools", p);
	const ps = body(await call("get_pool_status", {}));
	check(ps.pool === "nessus" && ps.scanners.length === 1,
		"get_pool_status defaults to the default pool", ps);
	const q = body(await call("get_queue_status", { scanner_pool: "nessus" }));
	check(q.pool === "nessus" && q.queue_depth === 0, "get_queue_status", q);
	const d = body(await call("list_dead_letters", {}));
	check(d.total === 0, "list_dead_letters", d);
	const st = body(await call("get_scan_status", { task_id: ids[1] }));
	check(st.scan_type === "authenticated" && st.ssh_username === "scanuser" &&
		!JSON.stringify(st).includes(secret),
	"the authenticated task's record has the user, not the password", st);
}

async function failures(ids) {
	const nf = await call("get_scan_status", { task_id: "20200101T000000Z-0000000000000000" });
	check(nf.isError === true && body(nf).status_code === 404 && body(nf).error,
		"an unknown task is an isError result with status_code 404", nf);
	const c = await call("cancel_scan", { task_id: ids[0] });
	check(c.isError === true && body(c).status_code === 409,
		"cancelling a completed task is a 409 conflict", c);
	const bad = await call("get_scan_results", { task_id: ids[0], page: "two" });
	check(bad.isError === true && body(bad).field === "page",
		"a bad argument is an isError result naming the field", bad);
	try {
		await client.callTool({ name: "no_such_tool", arguments: {} });
		check(false, "an unknown tool is a JSON-RPC error");
	} catch (e) {
		check(e.code === -32602, "an unknown tool is JSON-RPC error -32602", e.message);
	}
}

async function main() {
	await client.connect(transport);
	check(client.getServerVersion()?.name === "np-mcp" &&
		client.getServerCapabilities()?.tools, "initialize: serverInfo and tools",
		client.getServerVersion());
	check(JSON.stringify(await client.ping()) === "{}", "ping");
	await tools();
	const ids = await submit();
	for (const id of ids) {
		const s = await waitDone(id);
		check(s?.status === "completed", `task ${id} completed (polled with get_scan_status)`, s);
	}
	await pages(ids[0]);
	await reads(ids);
	await failures(ids);
	await client.close();
	check(!seen.some((t) => t.includes(secret)), "no answer holds the SSH password");
	check(stderr.length > 0 && !stderr.includes(secret),
		"the server's debug log does not hold the SSH password");
}

try {
	await main();
} catch (e) {
	check(false, `unexpected exception: ${e.stack}`);
	await client.close().catch(() => {});
}
console.log(`# ${n - failed} of ${n} checks passed`);
process.exit(failed ? 1 : 0);
