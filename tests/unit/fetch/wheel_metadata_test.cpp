// The METADATA and RECORD parsers on hand-written text: continuations, case, the body,
// CSV quoting, and the exact refusals.
#include <doctest/doctest.h>

#include "cyllm/wheelhouse.h"

using namespace cyllm;
using cyllm::wheelhouse::parse_wheel_metadata;
using cyllm::wheelhouse::parse_wheel_record;

TEST_CASE("METADATA headers, continuations and the body") {
  auto m = parse_wheel_metadata(
      "Metadata-Version: 2.1\r\n"
      "name: Torch\r\n"
      "VERSION: 2.9.0+cu128\r\n"
      "Summary: Tensors and\r\n"
      "  dynamic neural networks\r\n"
      "Requires-Python: >=3.9.0\r\n"
      "Requires-Dist: filelock\r\n"
      "Requires-Dist: sympy>=1.13.3;\r\n"
      "\tpython_version >= \"3.9\"\r\n"
      "Requires-Dist:   typing-extensions>=4.10.0   \r\n"
      "\r\n"
      "Name: in-the-body\r\n"
      "Requires-Dist: also-body\r\n");
  REQUIRE_MESSAGE(m.ok(), m.error().to_string());
  CHECK(m->metadata_version == "2.1");
  CHECK(m->name == "Torch");
  CHECK(m->version == "2.9.0+cu128");
  CHECK(m->requires_python == ">=3.9.0");
  CHECK(m->requires_dist ==
        std::vector<std::string>{"filelock", "sympy>=1.13.3; python_version >= \"3.9\"", "typing-extensions>=4.10.0"});
}

TEST_CASE("METADATA: a non-header line starts the body, as in Python's email parser") {
  auto m = parse_wheel_metadata("Name: a\nVersion: 1\nthis is not a header\nRequires-Dist: b\n");
  REQUIRE(m.ok());
  CHECK(m->requires_dist.empty());
}

TEST_CASE("METADATA refusals") {
  struct Case {
    const char* text;
    const char* message;
  };
  for (auto c : {Case{"Version: 1.0\n", "fetch.bad_wheel: METADATA has no Name"},
                 Case{"Name: a\n", "fetch.bad_wheel: METADATA has no Version"},
                 Case{"Name:\nVersion: 1\n", "fetch.bad_wheel: METADATA has no Name"},
                 Case{"Name: a\nName: b\nVersion: 1\n", "fetch.bad_wheel: METADATA line 2: Name appears twice"},
                 Case{"Name: a\nVersion: 1\nVersion: 2\n", "fetch.bad_wheel: METADATA line 3: Version appears twice"},
                 Case{" leading continuation\nName: a\n",
                      "fetch.bad_wheel: METADATA line 1: continuation line \" leading continuation\" without a "
                      "header before it"},
                 Case{"", "fetch.bad_wheel: METADATA has no Name"}}) {
    CAPTURE(c.text);
    auto m = parse_wheel_metadata(c.text);
    REQUIRE(!m.ok());
    CHECK(m.error().to_string() == c.message);
  }
  std::string huge(wheelhouse::kMaxMetadataBytes + 1, 'x');
  CHECK(parse_wheel_metadata(huge).error().code() == Errc::BadWheel);
}

TEST_CASE("RECORD rows, hashes and CSV quoting") {
  auto r = parse_wheel_record(
      "pkg/__init__.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\n"
      "\"pkg/a,b.py\",sha256=n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg,1\r\n"
      "\"pkg/q\"\"uote.py\",sha512=z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg_SpIdNs6c5H0NE8XYXysP-DGNKHfuwvY7kxvUdBeoGlODJ6-SfaPg,2\n"
      "\n"
      "pkg-1.0.dist-info/RECORD,,\n");
  REQUIRE_MESSAGE(r.ok(), r.error().to_string());
  REQUIRE(r->size() == 4);
  CHECK((*r)[0].path == "pkg/__init__.py");
  CHECK((*r)[0].hash_algorithm == "sha256");
  CHECK((*r)[0].digest.size() == 32);
  CHECK(static_cast<unsigned char>((*r)[0].digest[0]) == 0xe3);  // sha256("") starts e3b0c442
  CHECK((*r)[0].size_bytes == 0u);
  CHECK((*r)[1].path == "pkg/a,b.py");
  CHECK((*r)[2].path == "pkg/q\"uote.py");
  CHECK((*r)[2].hash_algorithm == "sha512");
  CHECK((*r)[2].digest.size() == 64);
  CHECK((*r)[3].path == "pkg-1.0.dist-info/RECORD");
  CHECK((*r)[3].hash_algorithm.empty());
  CHECK(!(*r)[3].size_bytes);
}

TEST_CASE("RECORD refusals name the row") {
  struct Case {
    const char* text;
    const char* message;
  };
  for (auto c : {
           Case{"a.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU\n",
                "fetch.bad_wheel: RECORD row 1: expected 3 fields (path,hash,size), found 2"},
           Case{"ok,,\na.py,md5=1B2M2Y8AsgTpgAmY7PhCfg,0\n",
                "fetch.bad_wheel: RECORD row 2: hash algorithm \"md5\" of \"a.py\" is not accepted (sha256, sha384 or "
                "sha512)"},
           Case{"a.py,sha256=tooshort,0\n",
                "fetch.bad_wheel: RECORD row 1: digest \"sha256=tooshort\" of \"a.py\" is not urlsafe base64 of 32 "
                "bytes"},
           Case{"a.py,sha256=47DEQpj8HBSa+/TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\n",
                "fetch.bad_wheel: RECORD row 1: digest \"sha256=47DEQpj8HBSa+/TImW-5JCeuQeRkm5NMpJWZG3hSuFU\" of "
                "\"a.py\" is not urlsafe base64 of 32 bytes"},
           Case{"a.py,nohash,0\n", "fetch.bad_wheel: RECORD row 1: hash \"nohash\" of \"a.py\" is not ALGORITHM=DIGEST"},
           Case{"a.py,,-1\n", "fetch.bad_wheel: RECORD row 1: size \"-1\" of \"a.py\" is not a number"},
           Case{"a.py,,99999999999999999999999\n",
                "fetch.bad_wheel: RECORD row 1: size \"99999999999999999999999\" of \"a.py\" is not a number"},
           Case{",,\n", "fetch.bad_wheel: RECORD row 1: empty path"},
           Case{"\"a.py,,\n", "fetch.bad_wheel: RECORD row 1: unterminated or misplaced quote"},
           Case{"\"a\"x.py,,\n", "fetch.bad_wheel: RECORD row 1: unterminated or misplaced quote"},
       }) {
    CAPTURE(c.text);
    auto r = parse_wheel_record(c.text);
    REQUIRE(!r.ok());
    CHECK(r.error().to_string() == c.message);
  }
}
