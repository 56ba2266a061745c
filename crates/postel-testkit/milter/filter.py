"""A test filter on Debian's pymilter (the real libmilter underneath).

Behaviour "noop" accepts everything and records nothing (for load runs).

    /usr/bin/python3 filter.py PORT BEHAVIOUR LOG

Listens on 127.0.0.1:PORT and behaves as BEHAVIOUR says, one behaviour per
test case; every event it sees (with the macros it was given) is appended
to LOG as a JSON line, so a test can check what the MTA sent.
"""

import json
import sys

import Milter

PORT, BEHAVIOUR, LOG = int(sys.argv[1]), sys.argv[2], sys.argv[3]

MACROS = {
    "connect": ["j", "{daemon_name}", "{daemon_addr}", "v", "_", "{client_addr}", "{client_name}"],
    "hello": ["{tls_version}", "{cipher}"],
    "envfrom": ["i", "{auth_type}", "{auth_authen}", "{mail_addr}", "{mail_host}", "{mail_mailer}"],
    "envrcpt": ["{rcpt_addr}", "{rcpt_host}", "{rcpt_mailer}"],
    "eom": ["i"],
}


def text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


class Filter(Milter.Base):
    def __init__(self):
        self.seen = b""

    def log(self, event, *args):
        if BEHAVIOUR == "noop":
            return
        macros = {}
        for name in MACROS.get(event, []):
            value = self.getsymval(name)
            if value is not None:
                macros[name] = value
        with open(LOG, "a") as f:
            f.write(json.dumps({"event": event, "args": [text(a) for a in args], "macros": macros}) + "\n")

    def connect(self, hostname, family, hostaddr):
        self.log("connect", hostname, str(hostaddr[0]) if hostaddr else "")
        if BEHAVIOUR == "reject-connect":
            self.setreply("554", "5.7.1", "Connection refused by filter")
            return Milter.REJECT
        return Milter.CONTINUE

    def hello(self, name):
        self.log("hello", name)
        if BEHAVIOUR == "reject-helo":
            return Milter.REJECT
        return Milter.CONTINUE

    def envfrom(self, sender, *params):
        self.seen = b""
        self.log("envfrom", sender, *params)
        if BEHAVIOUR == "reject-mail":
            self.setreply("550", "5.7.1", "Sender refused by filter")
            return Milter.REJECT
        if BEHAVIOUR == "tempfail":
            return Milter.TEMPFAIL
        return Milter.CONTINUE

    def envrcpt(self, rcpt, *params):
        self.log("envrcpt", rcpt, *params)
        if BEHAVIOUR == "reject-rcpt" and "refused" in rcpt:
            self.setreply("550", "5.7.1", "Recipient refused by filter")
            return Milter.REJECT
        return Milter.CONTINUE

    def unknown(self, command):
        self.log("unknown", command)
        if BEHAVIOUR == "record":
            self.setreply("502", "5.5.2", "Unknown to the filter too")
            return Milter.REJECT
        return Milter.CONTINUE

    def data(self):
        self.log("data")
        if BEHAVIOUR == "reject-data":
            self.setreply("554", "5.7.1", "No message from you today")
            return Milter.REJECT
        return Milter.CONTINUE

    def header(self, name, value):
        self.log("header", name, value)
        return Milter.CONTINUE

    def eoh(self):
        self.log("eoh")
        return Milter.CONTINUE

    def body(self, chunk):
        if BEHAVIOUR != "noop":
            self.seen += chunk
        return Milter.CONTINUE

    def eom(self):
        self.log("eom", text(self.seen))
        b = BEHAVIOUR
        if b == "reject-body" and b"REJECTME" in self.seen:
            self.setreply("550", "5.7.1", "Marker found in the body")
            return Milter.REJECT
        if b == "discard":
            return Milter.DISCARD
        if b == "quarantine":
            self.quarantine("held by the test filter")
        if b == "headers":
            self.addheader("X-Added", "at the end")
            self.addheader("X-Inserted", "at the top", 0)
            self.chgheader("Subject", 1, "changed subject")
            self.chgheader("X-Remove", 1, "")
            self.addheader("X-Folded", "first\n\tsecond")
        if b == "replace-body":
            self.replacebody(b"Replaced body\r\nsecond line\r\n")
        if b == "add-rcpt":
            self.addrcpt("<carol@a.test>")
        if b == "add-rcpt-par":
            self.addrcpt("<carol@a.test>", "NOTIFY=NEVER")
        if b == "del-rcpt":
            self.delrcpt("<bob@a.test>")
        if b == "chgfrom":
            self.chgfrom("<changed@a.test>")
        return Milter.ACCEPT

    def abort(self):
        self.log("abort")
        return Milter.CONTINUE

    def close(self):
        self.log("close")
        return Milter.CONTINUE


class Fewer(Filter):
    """Asks for no HELO and no header events, does not answer RCPT, and
    wants only {mail_addr} at MAIL."""

    @Milter.nocallback
    def hello(self, name):
        return Milter.CONTINUE

    @Milter.nocallback
    def header(self, name, value):
        return Milter.CONTINUE

    def negotiate(self, opts):
        # As Milter.Base.negotiate, with the macro list set here: the
        # @symlist decorator hands libmilter bytes, which it refuses.
        self._actions, steps, _, _ = opts
        self._ctx.setsymlist(Milter.M_ENVFROM, "{mail_addr}")
        opts[1] = self._protocol = steps & ~self.protocol_mask()
        opts[2] = 0
        opts[3] = 0
        return Milter.CONTINUE

    @Milter.noreply
    def envrcpt(self, rcpt, *params):
        self.log("envrcpt", rcpt, *params)
        return Milter.CONTINUE


Milter.factory = Fewer if BEHAVIOUR == "fewer" else Filter
Milter.set_flags(
    Milter.ADDHDRS | Milter.CHGHDRS | Milter.CHGBODY | Milter.ADDRCPT
    | Milter.DELRCPT | Milter.CHGFROM | Milter.QUARANTINE | Milter.SETSYMLIST
    | Milter.ADDRCPT_PAR
)
Milter.runmilter("postel-test", "inet:%d@127.0.0.1" % PORT, 60)
