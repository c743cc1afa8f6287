#!/usr/bin/env python3
"""Builds a small, real, pure-Python wheel for the integration tests.

usage: make_wheel.py OUTDIR NAME VERSION [REQUIRES-DIST ...]
Writes OUTDIR/NAME-VERSION-py3-none-any.whl with a module NAME whose __version__ is
VERSION, a METADATA (Requires-Dist lines as given), WHEEL and a RECORD of sha256 hashes,
then prints "<sha256-of-the-wheel> <size> <path>".
"""
import base64, hashlib, os, sys, zipfile


def record_hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def main():
    out, name, version, *requires = sys.argv[1:]
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f'__version__ = "{version}"\n'.encode(),
        f"{dist}/METADATA": ("Metadata-Version: 2.1\n"
                             f"Name: {name}\nVersion: {version}\n"
                             "Requires-Python: >=3.8\n"
                             + "".join(f"Requires-Dist: {r}\n" for r in requires)).encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: cy-llm-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{p},{record_hash(d)},{len(d)}\n" for p, d in files.items()) + f"{dist}/RECORD,,\n"
    files[f"{dist}/RECORD"] = record.encode()
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"{name}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for p, d in files.items():
            z.writestr(zipfile.ZipInfo(p, date_time=(2026, 1, 1, 0, 0, 0)), d)
    data = open(path, "rb").read()
    print(hashlib.sha256(data).hexdigest(), len(data), path)


if __name__ == "__main__":
    main()
