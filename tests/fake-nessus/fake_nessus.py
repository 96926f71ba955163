#!/usr/bin/env python3
"""fake_nessus.py - a test double for the Tenable Nessus REST API (Python 3 stdlib only).

Speaks HTTP/1.1 (plain or TLS) on loopback, keeps all state in memory, runs clock-driven scans
(empty -> pending -> running -> completed) and generates .nessus v2 exports from the scan targets
and SSH credentials.  Failure injection and observability live under /__fake/ (no auth):
  GET  /__fake/requests[?since=SEQ]   GET /__fake/scans        GET|POST /__fake/inject
  GET|POST /__fake/config             POST /__fake/reset
Run with --help for the command line.
"""
import argparse, copy, fnmatch, ipaddress, json, os, random, re, secrets, socket, socketserver, ssl
import subprocess, sys, tempfile, threading, time, traceback, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape, quoteattr

ADVANCED = "ad629e16-03b6-8c1d-cef6-ef8c9dd3c658d24bd260ef5f9e66"
BASIC = "731a8e52-3ea6-a291-ec0a-d2ff0619c19d7bd788d6be818b65"
TEMPLATES = [dict(uuid=u, name=n, title=t, description=d, cloud_only=False, subscription_only=False,
                  is_agent=None, more_info=None) for u, n, t, d in [
    (ADVANCED, "advanced", "Advanced Scan", "Configure a scan without using any recommendations."),
    (BASIC, "basic", "Basic Network Scan", "A full system scan suitable for any host.")]]
POLICY_NAME = {ADVANCED: "Advanced Scan", BASIC: "Basic Network Scan"}
DEFAULTS = {
    "api_keys": [{"access_key": "accesskey", "secret_key": "secretkey"}],
    "users": [{"username": "nessus", "password": "nessus"}],
    "accounts": [{"username": "scanuser", "password": "scanpass", "privileged": False},
                 {"username": "root", "password": "rootpass", "privileged": True},
                 {"username": "sudoer", "password": "sudopass", "privileged": True, "needs_escalation": True}],
    "api_token": None,             # X-API-Token served in /nessus6.js (random UUID when null)
    "pending_seconds": 0.1, "running_seconds": 0.5, "stop_seconds": 0.1,
    "essentials": False, "essentials_drop_body": False,
    "require_ajax_header": False,  # launch/stop without X-KL-kfa-Ajax-Request -> 403
    "session_idle_seconds": 1800,
    "fixture": None,               # path of a .nessus file served verbatim as every export
    "huge": None,                  # {"hosts": N, "items_per_host": M}: big streamed exports
    "max_hosts": 256, "inject": {},
}
ACTIVE = ("pending", "running")
BUSY = ("pending", "running", "paused", "pausing", "resuming", "stopping", "canceling")
LIST_INJECTIONS = ("errors", "slow", "drop")
RISK = ["None", "Low", "Medium", "High", "Critical"]
NOT_FOUND = "The requested file was not found."


def take(inj, key):
    """Value of a mode injection; the form {"value": V, "count": N} is used N times, then cleared."""
    v = inj.get(key)
    if isinstance(v, dict) and "value" in v:
        if v.get("count") is not None:
            v["count"] -= 1
            if v["count"] <= 0:
                del inj[key]
        return v["value"]
    return v


def match_rule(inj, kind, route):
    """First rule of list injection `kind` matching "METHOD /path" (fnmatch); counts it down."""
    for r in list(inj.get(kind) or []):
        pat = r.get("route", "*")
        if fnmatch.fnmatchcase(route.split(" ", 1)[1] if pat.startswith("/") else route, pat):
            if r.get("count", 1) is not None:
                r["count"] = r.get("count", 1) - 1
                if r["count"] <= 0:
                    inj[kind].remove(r)
            return r
    return None


def expand_targets(text, cap):
    """Split text_targets on commas/whitespace; expand CIDR and a-b ranges; at most cap hosts."""
    out = []
    for tok in re.split(r"[,\s]+", text or ""):
        if not tok:
            continue
        try:
            if "/" in tok:
                ips = ipaddress.ip_network(tok, strict=False).hosts()
            elif re.match(r"^[\d.]+-[\d.]+$", tok):
                a, b = tok.split("-", 1)
                b = b if "." in b else a.rsplit(".", 1)[0] + "." + b
                ips = map(ipaddress.ip_address, range(int(ipaddress.ip_address(a)),
                                                      int(ipaddress.ip_address(b)) + 1))
            else:
                ips = [tok]
        except ValueError:
            ips = [tok]
        for ip in ips:
            if len(out) >= cap:
                return out
            if str(ip) not in out:
                out.append(str(ip))
    return out


def host_in(host, targets):
    for t in targets or ["0.0.0.0/0", host]:
        try:
            if t == host or ("/" in t and ipaddress.ip_address(host) in ipaddress.ip_network(t, strict=False)):
                return True
        except ValueError:
            pass
    return False


def ssh_credential(credentials):
    """First SSH entry of a POST /scans credentials block (add.Host.SSH[0]), or None."""
    try:
        ssh = credentials["add"]["Host"]["SSH"]
        ssh = ssh[0] if isinstance(ssh, list) else ssh
        return ssh if isinstance(ssh, dict) else None
    except (KeyError, IndexError, TypeError):
        return None


def auth_result(credentials, accounts, host):
    """How SSH authentication goes on `host`: state none|ok|fail (+ priv_issue when ok)."""
    ssh = ssh_credential(credentials)
    if not ssh:
        return {"state": "none"}
    user, esc = ssh.get("username"), ssh.get("elevate_privileges_with") or "Nothing"
    want_priv = esc != "Nothing"
    for a in accounts:
        if a.get("username") == user and a.get("password") == ssh.get("password") and \
                host_in(host, a.get("targets")):
            issue = (want_priv and not a.get("privileged")) or (a.get("needs_escalation") and not want_priv) or \
                (want_priv and a.get("escalation_password") is not None and
                 ssh.get("escalation_password") != a.get("escalation_password"))
            return {"state": "ok", "user": user, "priv_issue": bool(issue), "esc": esc}
    return {"state": "fail", "user": user}


# ---------------------------------------------------------------- plugin catalog and report generator
def P(pid, name, family, port, svc, proto, sev, cves=(), cvss=None, cvss3=None, syn=None, sol="n/a",
      exploit=None, xref=(), out=None, ptype="remote"):
    return {"pid": pid, "name": name, "family": family, "port": port, "svc": svc, "proto": proto, "sev": sev,
            "cves": list(cves), "cvss": cvss, "cvss3": cvss3, "syn": syn or "The remote host is affected by: %s."
            % name, "sol": sol, "exploit": exploit, "xref": list(xref), "out": out, "ptype": ptype}


def S(pid, name, out, port=22, svc="ssh"):   # a "Settings" family (credential status) plugin
    return P(pid, name, "Settings", port, svc, "tcp", 0, syn="Credential status: %s." % name.split(" - ")[-1], out=out)


APACHE = "\n  URL               : http://{ip}/\n  Installed version : 2.4.46\n  Fixed version     : %s\n"
INFO = [
    P(11219, "Nessus SYN scanner", "Port scanners", 22, "ssh", "tcp", 0, out="Port 22/tcp was found to be open"),
    P(11219, "Nessus SYN scanner", "Port scanners", 80, "www", "tcp", 0, out="Port 80/tcp was found to be open"),
    P(22964, "Service Detection", "Service detection", 80, "www", "tcp", 0, out="A web server is running here."),
    P(10107, "HTTP Server Type and Version", "Web Servers", 80, "www", "tcp", 0,
      out="The remote web server type is :\n\nApache/2.4.46 (Ubuntu)"),
    P(10881, "SSH Protocol Versions Supported", "General", 22, "ssh", "tcp", 0,
      out="The remote SSH daemon supports the following versions of the\nSSH protocol :\n\n  - 1.99\n  - 2.0"),
    P(10267, "SSH Server Type and Version Information", "Service detection", 22, "ssh", "tcp", 0,
      out="SSH version : SSH-2.0-OpenSSH_8.4p1 Ubuntu-5ubuntu1\nSSH supported authentication : publickey,password"),
    P(45590, "Common Platform Enumeration (CPE)", "General", 0, "general", "tcp", 0,
      out="\nThe remote operating system matched the following CPE :\n\n  cpe:/o:linux:linux_kernel"),
    P(11936, "OS Identification", "General", 0, "general", "tcp", 0,
      out="\nRemote operating system : Linux Kernel\nConfidence level : 65\nMethod : SSH"),
    P(10287, "Traceroute Information", "General", 0, "general", "udp", 0,
      out="For your information, here is the traceroute from 127.0.0.1 to {ip} :\n127.0.0.1\n{ip}\n"),
]
VULNS = [
    P(187315, "SSH Terrapin Prefix Truncation Weakness (CVE-2023-48795)", "Misc.", 22, "ssh", "tcp", 2,
      ["CVE-2023-48795"], 5.4, 5.9, "The remote SSH server is vulnerable to a mitm prefix truncation attack.",
      "Contact the vendor for an update with the strict key exchange countermeasures.", True,
      out="Supports following ChaCha20-Poly1305 Client to Server algorithm : chacha20-poly1305@openssh.com"),
    P(153584, "Apache < 2.4.49 Multiple Vulnerabilities", "Web Servers", 80, "www", "tcp", 4,
      ["CVE-2021-33193", "CVE-2021-34798", "CVE-2021-36160", "CVE-2021-39275", "CVE-2021-40438"], 7.5, 9.8,
      "The remote web server is affected by multiple vulnerabilities.",
      "Upgrade to Apache version 2.4.49 or later.", True, ["IAVA:2021-A-0440-S"], out=APACHE % "2.4.49"),
    P(158900, "Apache 2.4.x < 2.4.53 Multiple Vulnerabilities", "Web Servers", 80, "www", "tcp", 4,
      ["CVE-2022-22719", "CVE-2022-22720", "CVE-2022-22721", "CVE-2022-23943"], 7.5, 9.8,
      "The remote web server is affected by multiple vulnerabilities.",
      "Upgrade to Apache version 2.4.53 or later.", True, ["IAVA:2022-A-0124-S"], out=APACHE % "2.4.53"),
    P(42873, "SSL Medium Strength Cipher Suites Supported (SWEET32)", "General", 443, "www", "tcp", 3,
      ["CVE-2016-2183"], 5.0, 7.5, "The remote service supports the use of medium strength SSL ciphers.",
      "Reconfigure the affected application to avoid use of medium strength ciphers.", False,
      out="\n  Medium Strength Ciphers (> 64-bit and < 112-bit key, or 3DES)\n\n    DES-CBC3-SHA\n"),
    P(57582, "SSL Self-Signed Certificate", "General", 443, "www", "tcp", 2, (), 6.4, 6.5,
      "The SSL certificate chain for this service ends in an unrecognized self-signed certificate.",
      "Purchase or generate a proper SSL certificate for this service.",
      out="\nThe following certificate was found at the top of the certificate\nchain sent by the remote "
      "host, but is self-signed :\n\n|-Subject : CN={ip}\n"),
    P(70658, "SSH Server CBC Mode Ciphers Enabled", "Misc.", 22, "ssh", "tcp", 1, ["CVE-2008-5161"], 2.6, 3.7,
      "The SSH server is configured to use Cipher Block Chaining.",
      "Contact the vendor or consult product documentation to disable CBC mode cipher encryption.", False,
      out="\nThe following client-to-server CBC algorithms are supported : \n\n  aes128-cbc\n  aes256-cbc\n"),
    P(10114, "ICMP Timestamp Request Remote Date Disclosure", "General", 0, "general", "icmp", 1,
      ["CVE-1999-0524"], 2.1, None, "It is possible to determine the exact time set on the remote host.",
      "Filter out the ICMP timestamp requests (13), and the outgoing ICMP timestamp replies (14).", False,
      ["CWE:200"], out="The remote clock is synchronized with the local clock.\n"),
]
LOCAL = [
    P(22869, "Software Enumeration (SSH)", "General", 0, "general", "tcp", 0, ptype="local",
      out="\nHere is the list of packages installed on the remote Debian Linux system : \n\n"
      "  ii  openssh-server 1:8.4p1-5  amd64  secure shell (SSH) server\n"),
    P(12634, "Authenticated Check : OS Name and Installed Package Enumeration", "Misc.", 0, "general", "tcp", 0,
      ptype="local", out="\nNessus can run commands on localhost to check if patches are applied.\n"
      "\nLocal checks have been enabled for this host.\nThe remote Debian system is :\n11.8\n"),
    P(33851, "Network daemons not managed by the package system", "Misc.", 0, "general", "tcp", 0,
      ptype="local", out="\nThe following running daemons are not managed by dpkg :\n\n/opt/agent/bin/agentd\n"),
    P(990001, "Debian DSA-5586-1 : openssh - security update", "Debian Local Security Checks", 0, "general",
      "tcp", 3, ["CVE-2021-41617", "CVE-2023-28531", "CVE-2023-48795", "CVE-2023-51385"], 6.8, 9.8,
      "The remote Debian host is missing one or more security-related updates.", "Upgrade the openssh packages.",
      True, ["IAVA:2023-A-0701-S"], ptype="local",
      out="\nRemote package installed : openssh-server_1:8.4p1-5\nShould be : openssh-server_1:8.4p1-5+deb11u3\n"),
    P(990002, "Debian DSA-5764-1 : openssl - security update", "Debian Local Security Checks", 0, "general",
      "tcp", 2, ["CVE-2024-5535", "CVE-2024-6119"], 5.0, 7.5,
      "The remote Debian host is missing a security-related update.", "Upgrade the openssl packages.", False,
      ptype="local", out="\nRemote package installed : libssl1.1_1.1.1w-0+deb11u1\n"),
]


def host_items(snap, host):
    """Deterministic ReportItems of one host (seeded by scan id + host) and its auth result."""
    rng = random.Random("%s:%s" % (snap["id"], host))
    auth = auth_result(snap["credentials"], snap["accounts"], host)
    items = [dict(it) for it in INFO]
    for v in VULNS:
        if rng.random() < 0.6:
            items.append(dict(v, sev=max(1, min(4, v["sev"] + rng.choice((-1, 1))))) if rng.random() < 0.15
                         else dict(v))
    user = auth.get("user")
    cred = "yes, as '%s' via ssh" % user if auth["state"] == "ok" else "no"
    items.insert(0, P(19506, "Nessus Scan Information", "Settings", 0, "general", "tcp", 0, ptype="summary",
                      syn="This plugin displays information about the Nessus scan.", out=scan_info(snap, cred)))
    login = "\n  User:     '%s'\n  Port:     22\n  Proto:    SSH\n  Method:   password\n" % user
    if auth["state"] == "none":
        items.append(S(110723, "Target Credential Status by Authentication Protocol - No Credentials Provided",
                       "\nNessus was not able to successfully authenticate directly to the remote target\n"
                       "on an available authentication protocol. Credentials were not provided.\n", 0, "general"))
    elif auth["state"] == "fail":
        items.append(S(104410, "Target Credential Status by Authentication Protocol - Failure for Provided "
                       "Credentials", "\nNessus was unable to log into the following host for which credentials "
                       "have been provided :\n\n  Protocol        : SSH\n  Port            : 22\n  User      "
                       "      : '%s'\n  Message         : \nFailed to authenticate using the supplied "
                       "credentials.\n" % user))
        items.append(S(21745, "OS Security Patch Assessment Failed", "\nThe following issues were reported :\n\n"
                       "  - Plugin      : ssh_get_info2.nasl\n    Plugin ID   : 97993\n    Protocol    : SSH\n"
                       "    Message     : \nCredentials for the SSH service were rejected.\n", 0, "general"))
    else:
        items.append(S(141118, "Target Credential Status by Authentication Protocol - Valid Credentials "
                       "Provided", "\nValid credentials were provided for the following protocol :\n" + login))
        items += [dict(it) for it in LOCAL[:3]] + [dict(it) for it in LOCAL[3:] if rng.random() < 0.8]
        if auth["priv_issue"]:
            items.append(S(110385, "Target Credential Issues by Authentication Protocol - Insufficient Privilege",
                           "\nNessus was able to log in to the remote host, however this credential\ndid not "
                           "have sufficient privileges for all planned checks :\n" + login +
                           "  Escalation: %s\n" % auth["esc"]))
        else:
            items.append(S(110095, "Target Credential Issues by Authentication Protocol - No Issues Found",
                           "\nNessus was able to log in to the remote host with no privilege or access\n"
                           "problems via the following :\n" + login))
    return items, auth


def scan_info(snap, cred):
    start = snap["start"] or snap["now"]
    return "\n".join([
        "Information about this scan : ", "", "Nessus version : 10.10.1", "Nessus build : 20010",
        "Plugin feed version : 202511060226",
        "Scanner edition used : %s" % ("Nessus Home" if snap["essentials"] else "Nessus"),
        "Scanner OS : LINUX", "Scan type : Normal", "Scan name : %s" % snap["name"],
        "Scan policy used : %s" % snap["policy"], "Scanner IP : 127.0.0.1", "Port scanner(s) : nessus_syn_scanner ",
        "Port range : default", "Ping RTT : 0.412 ms", "Thorough tests : no", "Experimental tests : no",
        "Paranoia level : 1", "Report verbosity : 1", "Safe checks : yes", "Optimize the test : yes",
        "Credentialed checks : %s" % cred, "Patch management checks : None", "Display superseded patches : yes",
        "CGI scanning : disabled", "Web application tests : disabled", "Max hosts : 30", "Max checks : 4",
        "Recv timeout : 5", "Backports : None", "Allow post-scan editing : Yes",
        "Scan Start Date : %s" % time.strftime("%Y/%m/%d %H:%M %Z", time.localtime(start)),
        "Scan duration : %d sec" % int((snap["end"] or snap["now"]) - start), "Scan for malware : no", ""])


def item_xml(it, ip, pad=""):
    sev = it["sev"]
    ch = [("cve", c) for c in it["cves"]] + [("xref", x) for x in it["xref"]]
    if it["cvss"] is not None:
        ch += [("cvss_base_score", "%.1f" % it["cvss"]), ("cvss_vector", "CVSS2#AV:N/AC:L/Au:N/C:P/I:P/A:P")]
    if it["cvss3"] is not None:
        ch += [("cvss3_base_score", "%.1f" % it["cvss3"]),
               ("cvss3_vector", "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")]
    if it["exploit"] is not None:
        ch.append(("exploit_available", "true" if it["exploit"] else "false"))
    if sev > 0:
        ch.append(("see_also", "https://www.tenable.com/plugins/nessus/%d" % it["pid"]))
    ch += [("description", "%s\n\nThis finding was produced by the fake Nessus server.%s" % (it["syn"], pad)),
           ("fname", "plugin_%d.nasl" % it["pid"]), ("plugin_modification_date", "2025/10/29"),
           ("plugin_name", it["name"]), ("plugin_publication_date", "2005/08/26"), ("plugin_type", it["ptype"]),
           ("risk_factor", RISK[sev]), ("script_version", "1.%d" % (it["pid"] % 97)),
           ("solution", it["sol"]), ("synopsis", it["syn"])]
    ch.sort(key=lambda kv: kv[0])     # real exports: children sorted by name, plugin_output last
    if it["out"] is not None:
        ch.append(("plugin_output", it["out"].replace("{ip}", ip)))
    return ('<ReportItem port="%d" svc_name=%s protocol="%s" severity="%d" pluginID="%d" pluginName=%s '
            'pluginFamily=%s>\n' % (it["port"], quoteattr(it["svc"]), it["proto"], sev, it["pid"],
                                    quoteattr(it["name"]), quoteattr(it["family"])) +
            "".join("<%s>%s</%s>\n" % (t, escape(v), t) for t, v in ch) + "</ReportItem>\n")


def host_ip(host):
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return "198.51.100.%d" % (sum(host.encode()) % 250 + 2)


def host_xml(snap, host, idx, n):
    items, auth = host_items(snap, host)
    pad = ""
    if snap.get("huge"):
        pad = "\n" + "Padding text for the huge report generator. " * 30
        base = VULNS + INFO
        items += [dict(base[k % len(base)], port=1024 + k)
                  for k in range(int(snap["huge"].get("items_per_host", 100)) - len(items))]
    ip, start, end = host_ip(host), snap["start"] or snap["now"], snap["end"] or snap["now"]
    hs = start + (end - start) * idx / max(n, 1) / 4
    tags = [("HOST_END_TIMESTAMP", "%d" % end), ("HOST_END", time.ctime(end)),
            ("Credentialed_Scan", "true" if auth["state"] == "ok" else "false"), ("policy-used", snap["policy"]),
            ("os", "linux"), ("operating-system", "Linux Kernel 5.10"), ("cpe", "cpe:/o:linux:linux_kernel"),
            ("host-ip", ip)] + ([("host-fqdn", host)] if ip != host else [])
    if auth["state"] == "ok":
        tags += [("local-checks-proto", "local"), ("ssh-login-used", auth["user"])]
    tags += [("HOST_START_TIMESTAMP", "%d" % hs), ("HOST_START", time.ctime(hs))]
    return ("<ReportHost name=%s><HostProperties>\n" % quoteattr(host) +
            "".join('<tag name="%s">%s</tag>\n' % (k, escape(v)) for k, v in tags) + "</HostProperties>\n" +
            "".join(item_xml(it, ip, pad) for it in items) + "</ReportHost>\n")


def report_chunks(snap, no_hosts=False):
    """The .nessus export as a generator of bytes, one host at a time (deterministic for a snapshot)."""
    hosts = snap["hosts"]
    if snap.get("huge"):
        hosts = ["10.%d.%d.%d" % ((i >> 16) & 255, (i >> 8) & 255, i & 255)
                 for i in range(1, int(snap["huge"].get("hosts", 100)) + 1)]
    hosts = [] if no_hosts else hosts
    ok = sum(1 for h in hosts if auth_result(snap["credentials"], snap["accounts"], h)["state"] == "ok")
    has_creds = ssh_credential(snap["credentials"]) is not None
    prefs = [("TARGET", snap["targets"]), ("scan_name", snap["name"]), ("whoami", snap["owner"]),
             ("scan_start_timestamp", "%d" % (snap["start"] or 0)), ("scan_end_timestamp", "%d" % (snap["end"] or 0)),
             ("hostCredsSuccessCount", str(ok)), ("hostCredsFailedCount", str(len(hosts) - ok if has_creds else 0)),
             ("hostCredsWithoutCount", str(0 if has_creds else len(hosts))), ("port_range", "default"),
             ("plugin_set", ";".join(sorted({str(p["pid"]) for p in INFO + VULNS + LOCAL})))]
    head = ['<?xml version="1.0" encoding="UTF-8"?>\n<NessusClientData_v2>\n<Policy><policyName>%s</policyName>\n'
            "<Preferences><ServerPreferences>" % escape(snap["policy"])]
    head += ["<preference><name>%s</name>\n<value>%s</value>\n</preference>\n" % (k, escape(v)) for k, v in prefs]
    head.append("</ServerPreferences>\n<PluginsPreferences><item><pluginName>Ping the remote host</pluginName>\n"
                "<pluginId>10180</pluginId>\n<fullName>Ping the remote host[checkbox]:Do an ARP ping</fullName>\n"
                "<preferenceName>Do an ARP ping</preferenceName>\n<preferenceType>checkbox</preferenceType>\n"
                "<preferenceValues>yes</preferenceValues>\n<selectedValue>yes</selectedValue>\n</item>\n"
                "</PluginsPreferences>\n</Preferences>\n<FamilySelection>")
    head += ["<FamilyItem><FamilyName>%s</FamilyName>\n<Status>enabled</Status>\n</FamilyItem>\n" % f for f in
             ("General", "Misc.", "Service detection", "Settings", "Web Servers", "Port scanners",
              "Debian Local Security Checks")]
    head.append("</FamilySelection>\n<IndividualPluginSelection></IndividualPluginSelection>\n</Policy>\n"
                '<Report name=%s xmlns:cm="http://www.nessus.org/cm">\n' % quoteattr(snap["name"]))
    yield "".join(head).encode()
    for i, h in enumerate(hosts):
        yield host_xml(snap, h, i, len(hosts)).encode()
    yield b"</Report>\n</NessusClientData_v2>\n"


def file_chunks(path):
    with open(path, "rb") as f:
        yield from iter(lambda: f.read(1 << 16), b"")


# ---------------------------------------------------------------- the fake's state and routes
class Resp:
    def __init__(self, status, obj=None, body=b"", ctype="application/json", headers=None, length=None,
                 action=None):
        if obj is not None:
            body = json.dumps(obj, separators=(",", ":")).encode()
        self.status, self.body, self.ctype, self.headers = status, body, ctype, headers or {}
        self.length = len(body) if length is None else length   # int, or callable run outside the lock
        self.action = action   # None | "drop" (close, no response) | "early_close" (headers only, then close)


def err(status, msg):
    return Resp(status, {"error": msg})


class Req:
    def __init__(self, method, path, query, headers, raw):
        self.method, self.path, self.query, self.headers, self.raw = method, path, query, headers, raw
        self.route, self.json = "%s %s" % (method, path), None
        try:
            self.json = json.loads(raw) if raw else None
        except ValueError:
            pass
        self.auth, self.user, self.api_token_ok, self.session = "none", None, None, None


WRITE, NOAUTH = 1, 2
ROUTES = [(m, re.compile("^%s$" % p), h, f) for m, p, h, f in [
    ("GET", r"/nessus6\.js", "nessus6_js", NOAUTH), ("POST", r"/session", "login", NOAUTH),
    ("DELETE", r"/session", "logout", 0), ("GET", r"/server/status", "server_status", NOAUTH),
    ("GET", r"/server/properties", "server_properties", NOAUTH), ("GET", r"/editor/scan/templates", "templates", 0),
    ("POST", r"/scans", "create", WRITE), ("GET", r"/scans", "list_scans", 0),
    ("GET", r"/scans/(\d+)", "details", 0), ("PUT", r"/scans/(\d+)", "update", WRITE),
    ("DELETE", r"/scans/(\d+)", "delete", WRITE), ("POST", r"/scans/(\d+)/(launch|stop|pause|resume)", "action", WRITE),
    ("POST", r"/scans/(\d+)/export", "export", 0),
    ("GET", r"/scans/(\d+)/export/(\d+)/(status|download)", "export_get", 0),
    ("GET", r"/tokens/([0-9a-fA-F]+)/(status|download)", "token_get", NOAUTH)]]


class Fake:
    def __init__(self, cfg, log_path=None):
        self.lock = threading.RLock()
        self.cfg = copy.deepcopy(DEFAULTS)
        self.cfg.update(cfg)
        self.cfg["api_token"] = self.cfg.get("api_token") or str(uuid.uuid4())
        self.base_cfg = copy.deepcopy(self.cfg)
        self.inject = copy.deepcopy(self.cfg.get("inject") or {})
        self.scanner_uuid = str(uuid.uuid4())
        self.sessions, self.scans, self.exports, self.requests, self.intervals = {}, {}, {}, [], []
        self.next_id, self.next_hist, self.seq = 5, 10, 0
        self.logf = open(log_path, "a", buffering=1) if log_path else None

    def log(self, req, t0, status, injected=None):
        with self.lock:
            self.seq += 1
            e = {"seq": self.seq, "time": round(t0, 6), "method": req.method, "path": req.path, "query": req.query,
                 "status": status, "auth": req.auth, "user": req.user, "api_token_ok": req.api_token_ok,
                 "injected": injected, "duration": round(time.time() - t0, 6), "headers": dict(req.headers.items()),
                 "body": req.json if req.json is not None else (req.raw.decode("utf-8", "replace") or None)}
            self.requests.append(e)
            if self.logf:
                self.logf.write(json.dumps(e) + "\n")

    def pre(self, req):
        """Connection-level injections, decided before the request is handled: (drop?, slow seconds)."""
        with self.lock:
            if match_rule(self.inject, "drop", req.route):
                return True, 0
            r = match_rule(self.inject, "slow", req.route)
            return False, float(r.get("seconds", 1)) if r else 0

    # ------------------------------------------------------------ clock-driven scan state machine
    def open_interval(self, scan, t):
        scan["interval"] = {"id": scan["id"], "start": t, "end": None}
        self.intervals.append(scan["interval"])

    def close_interval(self, scan, t):
        if scan.get("interval"):
            scan["interval"]["end"], scan["interval"] = t, None

    def set_status(self, scan, st, t):
        if scan["status"] != st:
            scan["status"], scan["last_modification_date"] = st, int(t)
            if scan["history"]:
                scan["history"][-1].update(status=st, last_modification_date=int(t))

    @staticmethod
    def elapsed(r, now):
        return r["elapsed"] + (now - r["seg"] if r["seg"] is not None else 0)

    def refresh(self, scan, now):
        """Advance one scan to `now`: pending for P s, running for R s, then its end state."""
        r = scan["run"]
        if not r:
            return
        if scan["status"] in ACTIVE and r["seg"] is not None:
            t = self.elapsed(r, now)
            limit = r["P"] + r["R"] / 2 if r["end_state"] == "paused" else r["P"] + r["R"]
            if t < limit:
                return self.set_status(scan, "pending" if t < r["P"] else "running", now)
            tend = r["seg"] + (limit - r["elapsed"])
            r["elapsed"], r["seg"] = limit, None
            self.close_interval(scan, tend)
            es, r["end_state"] = str(r["end_state"] or "completed"), None
            if es != "paused":
                scan["end"] = tend
            self.set_status(scan, es, tend)
        elif scan["status"] == "stopping" and now >= r["stop_until"]:
            scan["end"] = r["stop_until"]
            self.set_status(scan, "canceled", r["stop_until"])

    def progress(self, scan, now):
        r = scan["run"]
        if not r:
            return 0.0
        if r["R"] <= 0:
            return 1.0 if self.elapsed(r, now) >= r["P"] else 0.0
        return max(0.0, min(1.0, (self.elapsed(r, now) - r["P"]) / r["R"]))

    def snapshot(self, scan):
        s = {k: scan[k] for k in ("id", "name", "targets", "hosts", "credentials", "policy", "start", "end", "owner")}
        s.update(now=time.time(), accounts=copy.deepcopy(self.cfg["accounts"]), essentials=self.cfg["essentials"],
                 huge=self.cfg.get("huge"), fixture=self.cfg.get("fixture"))
        return s

    def max_concurrent(self):
        ev = sorted([(iv["start"], 1) for iv in self.intervals] +
                    [(iv["end"], -1) for iv in self.intervals if iv["end"] is not None])
        cur = best = 0
        for _, d in ev:
            cur += d
            best = max(best, cur)
        return best

    # ------------------------------------------------------------ dispatch
    def authenticate(self, req):
        h, now = req.headers, time.time()
        ck, ak = h.get("X-Cookie"), h.get("X-ApiKeys")
        m = re.search(r"token\s*=\s*([^;\s]+)", ck or "")
        sess = self.sessions.get(m.group(1)) if m else None
        if sess:
            limit = self.inject.get("session_expire_after")
            sess["calls"] += 1
            if now - sess["last"] > float(self.cfg["session_idle_seconds"]) or \
                    (limit is not None and sess["calls"] > int(limit)):
                del self.sessions[m.group(1)]
            else:
                sess["last"] = now
                req.auth, req.user, req.session = "session", sess["user"], m.group(1)
                return True
        if ak:
            a = re.search(r"accesskey\s*=\s*([^;\s]+)", ak, re.I)
            s = re.search(r"secretkey\s*=\s*([^;\s]+)", ak, re.I)
            for k in self.cfg["api_keys"]:
                if a and s and a.group(1) == k.get("access_key") and s.group(1) == k.get("secret_key"):
                    req.auth, req.user = "api_keys", k.get("username", "nessus")
                    return True
        req.auth = "invalid" if (ck or ak) else "none"
        return False

    def handle(self, req):
        try:
            with self.lock:
                return self.route(req)
        except Exception as e:  # a bug in the fake: say so loudly
            traceback.print_exc()
            return err(500, "fake-nessus internal error: %r" % e)

    def route(self, req):
        tok = req.headers.get("X-API-Token")
        req.api_token_ok = None if tok is None else tok == self.cfg["api_token"]
        r = match_rule(self.inject, "errors", req.route)
        if r:
            st = int(r.get("status", 500))
            return err(st, r.get("message", {502: "Bad Gateway", 503: "Service Unavailable"}.get(
                st, "Internal Server Error")))
        for method, rx, name, flags in ROUTES:
            m = rx.match(req.path)
            if not m or method != req.method:
                continue
            if not flags & NOAUTH and not self.authenticate(req):
                return err(401, "Invalid Credentials")
            if flags & WRITE and self.cfg["essentials"] and (req.auth == "api_keys" or not req.api_token_ok):
                return Resp(412, {"error": "API is not available"},
                            action="early_close" if self.cfg["essentials_drop_body"] else None)
            return getattr(self, "r_" + name)(req, *m.groups())
        return err(404, NOT_FOUND)

    def get_scan(self, sid):
        scan = self.scans.get(int(sid))
        if not scan or scan["deleted"]:
            return None
        self.refresh(scan, time.time())
        return scan

    # ------------------------------------------------------------ Nessus routes
    def r_nessus6_js(self, req):
        mode = take(self.inject, "nessus6_js")
        if mode == "missing":
            return err(404, NOT_FOUND)
        tok = "" if mode == "no_token" else '{key:"getApiToken",value:function(){return"%s"}},' % self.cfg["api_token"]
        js = ('/*! nessus6.js (fake) */!function(e){"use strict";var t=function(){function e(){}return n(e,[{key:'
              '"getVersion",value:function(){return"10.10.1"}},%s{key:"getBuild",value:function(){return"20010"}}'
              ']),e}();e.NessusApi=t}(window);\n' % tok)
        return Resp(200, body=js.encode(), ctype="text/javascript")

    def r_login(self, req):
        b = req.json if isinstance(req.json, dict) else {}
        if take(self.inject, "login_fail"):
            return err(401, "Invalid Credentials")
        for u in self.cfg["users"]:
            if b.get("username") == u.get("username") and b.get("password") == u.get("password"):
                tok = secrets.token_hex(32)
                self.sessions[tok] = {"user": u["username"], "calls": 0, "last": time.time()}
                req.user = u["username"]
                return Resp(200, {"token": tok})
        return err(401, "Invalid Credentials")

    def r_logout(self, req):
        self.sessions.pop(req.session, None)
        return Resp(200, {})

    def r_server_status(self, req):
        st = take(self.inject, "server_status") or "ready"
        return Resp(200, {"code": 200 if st == "ready" else 503, "status": st,
                          "progress": None if st == "ready" else 42})

    def r_server_properties(self, req):
        ess = self.cfg["essentials"]
        lic = {"type": "home", "name": "Nessus Essentials", "restricted": True, "ips": 16} if ess else \
            {"type": "manager", "name": "Nessus Manager", "restricted": False, "ips": 4096}
        lic["features"] = {"api": True, "scan_api": not ess, "users": not ess}
        return Resp(200, {"nessus_type": "Nessus Home" if ess else "Nessus Manager", "server_version": "10.10.1",
                          "nessus_ui_version": "10.10.1", "server_build": "20010", "scanner_uuid": self.scanner_uuid,
                          "uuid": self.scanner_uuid, "license": lic, "loaded_plugin_set": "202511060226"})

    def r_templates(self, req):
        return Resp(200, {"templates": TEMPLATES})

    def summary(self, scan):
        return {"id": scan["id"], "uuid": scan["run"]["uuid"] if scan["run"] else scan["uuid"], "name": scan["name"],
                "type": "local", "owner": scan["owner"], "enabled": scan["enabled"], "folder_id": scan["folder_id"],
                "read": False, "status": scan["status"], "shared": False, "user_permissions": 128,
                "creation_date": scan["creation_date"], "last_modification_date": scan["last_modification_date"],
                "control": True, "starttime": None, "timezone": None, "rrules": None, "live_results": 0}

    def r_create(self, req):
        b = req.json
        if not isinstance(b, dict):
            return err(400, "Invalid JSON body")
        if b.get("uuid") not in POLICY_NAME:
            return err(400, "Invalid 'uuid' field: template not found")
        s = b.get("settings")
        if not isinstance(s, dict) or not s.get("name") or not s.get("text_targets"):
            return err(400, "Invalid 'settings' field: name and text_targets are required")
        now, sid = time.time(), self.next_id
        self.next_id += 1
        scan = self.scans[sid] = {
            "id": sid, "uuid": "template-" + b["uuid"], "name": str(s["name"]), "targets": str(s["text_targets"]),
            "folder_id": int(s.get("folder_id") or 3), "enabled": bool(s.get("enabled", True)),
            "owner": req.user or "nessus", "creation_date": int(now), "last_modification_date": int(now),
            "credentials": b.get("credentials"), "status": "empty", "history": [], "run": None, "start": None,
            "end": None, "policy": POLICY_NAME[b["uuid"]], "deleted": False, "interval": None, "polls": 0,
            "launches": 0, "hosts": expand_targets(str(s["text_targets"]), int(self.cfg["max_hosts"]))}
        if s.get("launch_now"):
            self.launch(scan, now)
        return Resp(200, {"scan": self.summary(scan)}, action="drop" if take(self.inject, "drop_after_write") else None)

    def r_list_scans(self, req):
        q, now, out = parse_qs(req.query), time.time(), []
        for scan in self.scans.values():
            self.refresh(scan, now)
            if scan["deleted"] or ("folder_id" in q and str(scan["folder_id"]) != q["folder_id"][0]) or \
                    scan["last_modification_date"] <= int(q.get("last_modification_date", ["-1"])[0] or -1):
                continue
            out.append(self.summary(scan))
        if take(self.inject, "scans_null"):
            out = []
        return Resp(200, {"folders": [
            {"id": 2, "name": "Trash", "type": "trash", "default_tag": 0, "custom": 0, "unread_count": 0},
            {"id": 3, "name": "My Scans", "type": "main", "default_tag": 1, "custom": 0, "unread_count": 0}],
            "scans": out or None, "timestamp": int(now)})

    def r_details(self, req, sid):
        scan = self.get_scan(sid)
        if not scan:
            return err(404, NOT_FOUND)
        r, now = scan["run"], time.time()
        if r:
            scan["polls"] += 1
            if r["delete_after"] is not None and scan["polls"] > int(r["delete_after"]):
                scan["deleted"] = True
                self.close_interval(scan, now)
                return err(404, NOT_FOUND)
        hosts, vulns = [], {}
        if r and scan["status"] != "pending":
            cur = 100 if scan["status"] == "completed" else int(round(self.progress(scan, now) * 100))
            snap = self.snapshot(scan)
            for i, h in enumerate(scan["hosts"]):
                items = host_items(snap, h)[0]
                c = [sum(1 for it in items if it["sev"] == k) for k in range(5)]
                for it in items:
                    vulns.setdefault(it["pid"], {"plugin_id": it["pid"], "plugin_name": it["name"],
                                                 "plugin_family": it["family"], "count": 0, "vuln_index": len(vulns),
                                                 "severity": it["sev"], "severity_index": len(vulns)})["count"] += 1
                hosts.append({"asset_id": i + 1, "host_id": i + 1, "host_index": i, "hostname": h,
                              "progress": "%d-%d/100-100" % (cur, cur), "scanprogresscurrent": cur,
                              "scanprogresstotal": 100, "numchecksconsidered": cur * 40, "totalchecksconsidered": 4000,
                              "severitycount": {"item": [{"count": c[k], "severitylevel": k} for k in range(5)]},
                              "severity": sum(c), "score": c[4] * 10000 + c[3] * 1000 + c[2] * 100 + c[1] * 10 + c[0],
                              "critical": c[4], "high": c[3], "medium": c[2], "low": c[1], "info": c[0]})
        info = {"object_id": scan["id"], "uuid": r["uuid"] if r else scan["uuid"], "name": scan["name"],
                "status": scan["status"], "targets": scan["targets"], "folder_id": scan["folder_id"],
                "scan_start": int(scan["start"]) if scan["start"] else None,
                "scan_end": int(scan["end"]) if scan["end"] else None, "timestamp": int(now),
                "policy": scan["policy"], "scanner_name": "Local Scanner", "scan_type": "local",
                "hostcount": len(scan["hosts"]), "edit_allowed": True, "control": True, "user_permissions": 128,
                "haskb": True, "hasaudittrail": True, "alt_targets_used": False, "owner": scan["owner"]}
        return Resp(200, {"info": info, "hosts": hosts, "vulnerabilities": list(vulns.values()), "comphosts": [],
                          "compliance": [], "notes": None, "history": copy.deepcopy(scan["history"]), "filters": []})

    def r_update(self, req, sid):
        scan = self.get_scan(sid)
        if not scan:
            return err(404, NOT_FOUND)
        b = req.json if isinstance(req.json, dict) else {}
        s = b.get("settings") if isinstance(b.get("settings"), dict) else {}
        if "folder_id" in b or "folder_id" in s:
            scan["folder_id"] = int(b.get("folder_id", s.get("folder_id")))
        scan.update({k: str(s[k]) for k in ("name",) if k in s}, credentials=b.get("credentials", scan["credentials"]),
                    enabled=bool(s.get("enabled", scan["enabled"])), last_modification_date=int(time.time()))
        if "text_targets" in s:
            scan["targets"] = str(s["text_targets"])
            scan["hosts"] = expand_targets(scan["targets"], int(self.cfg["max_hosts"]))
        return Resp(200, self.summary(scan))

    def r_delete(self, req, sid):
        scan = self.get_scan(sid)
        if not scan:
            return err(404, NOT_FOUND)
        if scan["status"] in BUSY:
            return err(409, "Scan is in a transitional state and cannot be deleted.")
        scan["deleted"] = True
        return Resp(200, {})

    def launch(self, scan, now):
        run_uuid = str(uuid.uuid4())
        scan["run"] = {"uuid": run_uuid, "P": float(self.cfg["pending_seconds"]),
                       "R": float(self.cfg["running_seconds"]), "elapsed": 0.0, "seg": now, "stop_until": None,
                       "end_state": take(self.inject, "end_state"),
                       "delete_after": take(self.inject, "delete_after_polls")}
        scan.update(start=now, end=None, polls=0, launches=scan["launches"] + 1, status="pending",
                    last_modification_date=int(now))
        self.next_hist += 1
        scan["history"].append({"history_id": self.next_hist, "uuid": run_uuid, "owner_id": 1, "status": "pending",
                                "type": "local", "creation_date": int(now), "last_modification_date": int(now),
                                "alt_targets_used": False, "scheduler": 0, "is_archived": False})
        self.open_interval(scan, now)
        self.refresh(scan, now)
        return run_uuid

    def r_action(self, req, sid, act):
        if self.cfg["require_ajax_header"] and act in ("launch", "stop") and \
                req.headers.get("X-KL-kfa-Ajax-Request") is None:
            return err(403, "API restriction")
        scan = self.get_scan(sid)
        if not scan:
            return err(404, NOT_FOUND)
        now, st, r = time.time(), scan["status"], scan["run"]
        if act == "launch":
            if st in BUSY:
                return err(409, "Scan is already running")
            return Resp(200, {"scan_uuid": self.launch(scan, now)})
        if act == "stop" and st in ("pending", "running", "paused"):
            r["elapsed"], r["seg"], r["stop_until"] = self.elapsed(r, now), None, now + float(self.cfg["stop_seconds"])
            self.close_interval(scan, now)
            self.set_status(scan, "stopping", now)
        elif act == "pause" and st == "running":
            r["elapsed"], r["seg"] = self.elapsed(r, now), None
            self.close_interval(scan, now)
            self.set_status(scan, "paused", now)
        elif act == "resume" and st == "paused":
            r["seg"] = now
            self.open_interval(scan, now)
            self.set_status(scan, "running", now)
            self.refresh(scan, now)
        else:
            return err(409, "Scan cannot be %sd in status '%s'" % (act, st))
        return Resp(200, {})

    def r_export(self, req, sid):
        scan = self.get_scan(sid)
        if not scan:
            return err(404, NOT_FOUND)
        if (req.json if isinstance(req.json, dict) else {}).get("format") != "nessus":
            return err(400, "Invalid 'format' field (the fake only exports 'nessus')")
        if not scan["run"] or scan["status"] == "pending":
            return err(409, "Scan has no results to export")
        fid, tok = random.randint(10 ** 8, 2 ** 31 - 1), secrets.token_hex(32)
        self.exports[fid] = {"file": fid, "token": tok, "scan_id": scan["id"], "snap": self.snapshot(scan),
                             "loading": int(take(self.inject, "export_loading_polls") or 0),
                             "error": bool(take(self.inject, "export_error"))}
        return Resp(200, {"file": fid, "token": tok})

    def export_answer(self, ex, what):
        if what == "status":
            if ex["loading"] > 0:
                ex["loading"] -= 1
                return Resp(200, {"status": "loading"})
            return Resp(200, {"status": "error" if ex["error"] else "ready"})
        if ex["loading"] > 0 or ex["error"]:
            return err(409, "Report generation failed" if ex["error"] else "Report is not ready")
        return self.download(ex["snap"], take(self.inject, "download"))

    def r_export_get(self, req, sid, fid, what):
        ex = self.exports.get(int(fid))
        return self.export_answer(ex, what) if ex and ex["scan_id"] == int(sid) else err(404, NOT_FOUND)

    def r_token_get(self, req, tok, what):
        ex = [e for e in self.exports.values() if e["token"] == tok]
        return self.export_answer(ex[0], what) if ex else err(404, NOT_FOUND)

    def download(self, snap, mode):
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", snap["name"]) or "scan"
        hdr = {"Content-Disposition": 'attachment; filename="%s.nessus"' % name}

        def mk(body, length=None):
            return Resp(200, body=body, ctype="application/octet-stream", headers=hdr, length=length)
        fixture = snap.get("fixture")
        if not mode:   # streamed; for generated reports the length is a first (discarded) pass
            if fixture:
                return mk(file_chunks(fixture), os.path.getsize(fixture))
            return mk(report_chunks(snap), lambda: sum(len(c) for c in report_chunks(snap)))
        if mode == "not_xml":
            return mk(b"Nessus report generation failed; this is not an XML document.\n" * 3)
        if mode == "tiny":
            return mk(b'<?xml version="1.0"?><x/>\n')
        if fixture:
            with open(fixture, "rb") as f:
                data = f.read()
            if mode == "no_hosts":
                data = re.sub(rb"<ReportHost .*?</ReportHost>\n?", b"", data, flags=re.S)
        else:
            data = b"".join(report_chunks(snap, no_hosts=(mode == "no_hosts")))
        return mk(data[:len(data) // 2] if mode == "truncated" else data)

    # ------------------------------------------------------------ control routes (no auth, not logged)
    def control(self, method, path, query, raw):
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return err(400, "invalid JSON")
        body = body if isinstance(body, dict) else {}
        with self.lock:
            now = time.time()
            if (method, path) == ("GET", "/__fake/requests"):
                since = int(parse_qs(query).get("since", ["0"])[0])
                return Resp(200, {"requests": [e for e in self.requests if e["seq"] > since]})
            if (method, path) == ("GET", "/__fake/scans"):
                for s in self.scans.values():
                    self.refresh(s, now)
                return Resp(200, {"now": now, "max_concurrent_running": self.max_concurrent(),
                                  "running_intervals": self.intervals, "scans": [
                    {"id": s["id"], "name": s["name"], "status": s["status"], "targets": s["targets"],
                     "hosts": s["hosts"], "folder_id": s["folder_id"], "deleted": s["deleted"],
                     "created": s["creation_date"], "launched": s["start"], "ended": s["end"],
                     "launches": s["launches"], "polls": s["polls"], "progress": round(self.progress(s, now), 4),
                     "credentials": s["credentials"]} for s in self.scans.values()]})
            if path == "/__fake/inject" and method in ("GET", "POST"):
                for k, v in body.items() if method == "POST" else ():
                    if v is None:
                        self.inject.pop(k, None)
                    elif k in LIST_INJECTIONS:
                        self.inject.setdefault(k, []).extend(v if isinstance(v, list) else [v])
                    else:
                        self.inject[k] = v
                return Resp(200, {"inject": self.inject})
            if path == "/__fake/config" and method in ("GET", "POST"):
                if method == "POST":
                    self.cfg.update({k: v for k, v in body.items() if k != "inject"})
                    self.cfg["api_token"] = self.cfg.get("api_token") or str(uuid.uuid4())
                return Resp(200, {"config": self.cfg})
            if (method, path) == ("POST", "/__fake/reset"):
                flag = lambda k: body.get("all") or body.get(k)   # noqa: E731
                if flag("config"):
                    self.cfg = copy.deepcopy(self.base_cfg)
                self.inject = copy.deepcopy(self.cfg.get("inject") or {})
                if flag("requests"):
                    self.requests = []
                if flag("scans"):
                    self.scans, self.exports, self.intervals = {}, {}, []
                if flag("sessions"):
                    self.sessions = {}
                return Resp(200, {"ok": True, "inject": self.inject})
            return err(404, "unknown control route")


# ---------------------------------------------------------------- HTTP(S) server
class Handler(BaseHTTPRequestHandler):
    protocol_version, server_version, timeout = "HTTP/1.1", "NessusWWW", 300
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle holds
    # the body until the client ACKs the headers, which it delays up to 40 ms.
    disable_nagle_algorithm = True

    def version_string(self):
        return self.server_version

    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):   # handshake here, not in the accept loop
            self.request.settimeout(10)
            self.request.do_handshake()
        super().setup()

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("fake-nessus: %s\n" % (fmt % args))

    def read_body(self):
        if "chunked" not in (self.headers.get("Transfer-Encoding") or "").lower():
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data, n = b"", 1
        while n:   # chunked request body; trailers are not supported
            n = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            data += self.rfile.read(n)
            self.rfile.readline()
        return data

    def dispatch(self):
        fake, t0, raw, u = self.server.fake, time.time(), self.read_body(), urlsplit(self.path)
        if u.path.startswith("/__fake/"):
            return self.send(fake.control(self.command, u.path, u.query, raw))
        req = Req(self.command, u.path, u.query, self.headers, raw)
        drop, slow = fake.pre(req)
        if drop:
            self.close_connection = True
            return fake.log(req, t0, None, "drop")
        time.sleep(slow)
        resp = fake.handle(req)
        try:
            self.send(resp)
        finally:
            fake.log(req, t0, resp.status, "slow" if slow else
                     {"drop": "drop_after_write", "early_close": "essentials_drop_body"}.get(resp.action))

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = dispatch

    def send(self, resp):
        if resp.action == "drop":
            self.close_connection = True
            return
        length = resp.length() if callable(resp.length) else resp.length
        self.send_response(resp.status)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", resp.ctype)
        self.send_header("Content-Length", str(length))
        self.send_header("Cache-Control", "no-cache")
        if resp.action == "early_close":   # real Essentials: status + headers, then FIN without the body
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.flush()
            return
        self.end_headers()
        try:
            for chunk in [resp.body] if isinstance(resp.body, bytes) else resp.body:
                self.wfile.write(chunk)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads, allow_reuse_address, request_queue_size = True, True, 64
    ctx, verbose, fake = None, False, None

    def server_bind(self):
        socketserver.TCPServer.server_bind(self)   # skip HTTPServer's reverse DNS lookup
        self.server_name, self.server_port = self.server_address[:2]

    def get_request(self):
        sock, addr = self.socket.accept()
        if self.ctx:
            sock = self.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        if self.verbose:
            super().handle_error(request, client_address)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fake Tenable Nessus REST API server for tests.")
    ap.add_argument("--port", type=int, default=0, help="TCP port (default 0 = pick a free one)")
    ap.add_argument("--port-file", help="write the chosen port here (temp file + rename) once listening")
    ap.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ap.add_argument("--tls", action="store_true", help="serve HTTPS")
    ap.add_argument("--cert", help="PEM certificate for --tls")
    ap.add_argument("--key", help="PEM private key for --tls")
    ap.add_argument("--state-dir", help="--tls without --cert/--key: make or reuse DIR/cert.pem, DIR/key.pem")
    ap.add_argument("--config", help="JSON config file")
    ap.add_argument("--log", help="append one NDJSON line per request to this file")
    ap.add_argument("--verbose", action="store_true", help="log requests and errors to stderr")
    a = ap.parse_args(argv)
    with open(a.config or os.devnull) as f:
        cfg = json.load(f) if a.config else {}
    if ":" in a.bind:
        Server.address_family = socket.AF_INET6
    srv = Server((a.bind, a.port), Handler)
    srv.verbose, srv.fake = a.verbose, Fake(cfg, a.log)
    if a.tls:
        cert, key = a.cert, a.key
        if not (cert and key):
            d = a.state_dir or tempfile.mkdtemp(prefix="fake-nessus-")
            cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
            if not (os.path.exists(cert) and os.path.exists(key)):
                subprocess.run(["sh", os.path.join(os.path.dirname(os.path.abspath(__file__)), "mkcert.sh"), d],
                               check=True)
        srv.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        srv.ctx.load_cert_chain(cert, key)
    port = srv.server_address[1]
    if a.port_file:
        tmp = "%s.tmp.%d" % (a.port_file, os.getpid())
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, a.port_file)
    sys.stderr.write("fake-nessus: listening on %s://%s:%d\n" % ("https" if a.tls else "http", a.bind, port))
    sys.stderr.flush()
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
