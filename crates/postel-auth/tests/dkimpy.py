"""dkimpy (Debian's python3-dkim) on the other side of postel-auth's DKIM.

  dkimpy.py sign ALGORITHM CANON SELECTOR DOMAIN KEYFILE [expired]
      signs the message on stdin; writes it signed to stdout.
  dkimpy.py arcsign SELECTOR DOMAIN KEYFILE SRVID
      adds an ARC set (rsa-sha256) to the message on stdin, which carries
      the Authentication-Results of SRVID; writes it sealed to stdout.
  dkimpy.py verify DNSFILE
      verifies every DKIM-Signature of the message on stdin, DNS answers
      from DNSFILE (JSON: name -> TXT value); one line per signature,
      "pass" or "fail".
"""
import base64
import json
import sys
import time

import dkim


def ed25519_seed(pem):
    """The 32-octet seed of a PKCS #8 Ed25519 key, base64, as dkimpy takes it."""
    der = base64.b64decode("".join(l for l in pem.splitlines() if not l.startswith("-----")))
    at = der.find(b"\x04\x22\x04\x20")
    return base64.b64encode(der[at + 4 : at + 36])


def sign(args, message):
    algorithm, canon, selector, domain, keyfile = args[:5]
    expired = args[5:] == ["expired"]
    pem = open(keyfile).read()
    key = ed25519_seed(pem) if algorithm == "ed25519-sha256" else pem.encode()
    header, body = canon.split("/")
    if expired:
        # dkimpy writes no x= tag: add one an hour past, with t= before it.
        original = dkim.DKIM.gen_header

        def gen_header(self, fields, *rest, **kw):
            now = int(time.time())
            fields = [(k, str(now - 7200).encode()) if k == b"t" else (k, v) for k, v in fields]
            at = [k for k, _ in fields].index(b"h")
            fields.insert(at, (b"x", str(now - 3600).encode()))
            return original(self, fields, *rest, **kw)

        dkim.DKIM.gen_header = gen_header
    signature = dkim.sign(
        message,
        selector.encode(),
        domain.encode(),
        key,
        canonicalize=(header.encode(), body.encode()),
        signature_algorithm=algorithm.encode(),
        include_headers=[b"from", b"to", b"subject", b"date"],
    )
    sys.stdout.buffer.write(signature + message)


def arcsign(args, message):
    selector, domain, keyfile, srv_id = args
    fields = dkim.arc_sign(
        message, selector.encode(), domain.encode(), open(keyfile, "rb").read(), srv_id.encode()
    )
    sys.stdout.buffer.write(b"".join(fields) + message)


def verify(args, message):
    answers = json.load(open(args[0]))

    def dnsfunc(name, timeout=5):
        return answers.get(name.decode().rstrip("."), "").encode() or None

    d = dkim.DKIM(message)
    count = sum(1 for name, _ in d.headers if name.lower() == b"dkim-signature")
    for i in range(count):
        try:
            ok = d.verify(idx=i, dnsfunc=dnsfunc)
        except dkim.ValidationError:
            ok = False
        print("pass" if ok else "fail")


if __name__ == "__main__":
    data = sys.stdin.buffer.read()
    {"sign": sign, "arcsign": arcsign, "verify": verify}[sys.argv[1]](sys.argv[2:], data)
