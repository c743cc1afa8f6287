#!/usr/bin/env python3
"""Builds a small, real wheel for the tests, honest or deliberately malicious.

usage: make_wheel.py [--tag TAG] [--requires-python SPEC] [--evil KIND] [--bomb-mib N]
                     OUTDIR NAME VERSION [REQUIRES-DIST ...]
Writes OUTDIR/NAME-VERSION-TAG.whl (TAG defaults to py3-none-any) with a module NAME whose
__version__ is VERSION, a METADATA (Requires-Dist lines as given), WHEEL and a RECORD of
sha256 hashes, then prints "<sha256-of-the-wheel> <size> <path>".

--evil KIND breaks one thing, for the tests that must see the wheel refused:
  traversal        a member "../evil.py" (listed in RECORD, with a correct hash)
  absolute         a member "/tmp/evil.py"
  backslash        a member "NAME\\evil.py"
  drive            a member "C:/evil.py"
  symlink          a member NAME/link.py that is a symbolic link to /etc/passwd
  duplicate        NAME/__init__.py stored twice
  hash-mismatch    RECORD's hash of NAME/__init__.py is of other bytes
  size-mismatch    RECORD's size of NAME/__init__.py is one more than the real one
  unlisted         a member NAME/extra.py that RECORD does not list
  missing-file     RECORD lists NAME/gone.py, which the archive lacks
  no-hash          RECORD lists NAME/__init__.py without a hash
  md5              RECORD uses md5 for NAME/__init__.py
  missing-name     METADATA without Name
  version-mismatch METADATA Version is VERSION + ".1"
  name-mismatch    METADATA Name is "other-package"
  bad-requires     METADATA has "Requires-Dist: !!bad"
  no-record        no RECORD at all
  bomb             a member NAME/zeros.bin of --bomb-mib MiB of zero bytes (default 64),
                   correctly listed in RECORD: only its compression ratio gives it away
"""
import argparse, base64, hashlib, os, sys, zipfile


def record_hash(data, algo="sha256"):
    return f"{algo}=" + base64.urlsafe_b64encode(hashlib.new(algo, data).digest()).rstrip(b"=").decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tag", default="py3-none-any")
    ap.add_argument("--requires-python", default=">=3.8")
    ap.add_argument("--evil", default="")
    ap.add_argument("--bomb-mib", type=int, default=64)
    ap.add_argument("out")
    ap.add_argument("name")
    ap.add_argument("version")
    ap.add_argument("requires", nargs="*")
    a = ap.parse_args()
    name, version, evil = a.name, a.version, a.evil
    dist = f"{name}-{version}.dist-info"
    md_name = {"missing-name": None, "name-mismatch": "other-package"}.get(evil, name)
    md_version = version + ".1" if evil == "version-mismatch" else version
    requires = list(a.requires) + (["!!bad"] if evil == "bad-requires" else [])
    metadata = "Metadata-Version: 2.1\n"
    if md_name is not None:
        metadata += f"Name: {md_name}\n"
    metadata += (f"Version: {md_version}\n"
                 f"Summary: a test package\n  continued on a second line\n"
                 f"Requires-Python: {a.requires_python}\n"
                 + "".join(f"Requires-Dist: {r}\n" for r in requires)
                 + "\nThe description.\nName: not-a-header-in-the-body\n")
    init = f'__version__ = "{version}"\n'.encode()
    files = [
        (f"{name}/__init__.py", init),
        (f"{dist}/METADATA", metadata.encode()),
        (f"{dist}/WHEEL", f"Wheel-Version: 1.0\nGenerator: cy-llm-tests\nRoot-Is-Purelib: true\n"
                          f"Tag: {a.tag}\n".encode()),
    ]
    extra = {"traversal": "../evil.py", "absolute": "/tmp/evil.py", "backslash": f"{name}\\evil.py",
             "drive": "C:/evil.py"}
    if evil in extra:
        files.append((extra[evil], b"print('owned')\n"))
    if evil == "bomb":
        files.append((f"{name}/zeros.bin", bytes(a.bomb_mib << 20)))
    rows = []
    for p, d in files:
        h, size = record_hash(d), len(d)
        if p == f"{name}/__init__.py":
            if evil == "hash-mismatch":
                h = record_hash(d + b"# tampered\n")
            elif evil == "size-mismatch":
                size += 1
            elif evil == "no-hash":
                h = ""
            elif evil == "md5":
                h = record_hash(d, "md5")
        rows.append(f"{p},{h},{size}\n")
    if evil == "missing-file":
        rows.append(f"{name}/gone.py,{record_hash(b'x')},1\n")
    if evil == "symlink":
        rows.append(f"{name}/link.py,{record_hash(b'/etc/passwd')},11\n")
    record = "".join(rows) + f"{dist}/RECORD,,\n"
    if evil != "no-record":
        files.append((f"{dist}/RECORD", record.encode()))
    if evil == "unlisted":
        files.append((f"{name}/extra.py", b"x = 1\n"))
    if evil == "duplicate":
        files.append((f"{name}/__init__.py", init))
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, f"{name}-{version}-{a.tag}.whl")
    import warnings
    warnings.simplefilter("ignore")  # zipfile warns about the duplicate on purpose
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for p, d in files:
            info = zipfile.ZipInfo(p, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100644 << 16
            z.writestr(info, d)
        if evil == "symlink":
            info = zipfile.ZipInfo(f"{name}/link.py", date_time=(2026, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = (0o120777 << 16)
            z.writestr(info, b"/etc/passwd")
    data = open(path, "rb").read()
    print(hashlib.sha256(data).hexdigest(), len(data), path)


if __name__ == "__main__":
    main()
